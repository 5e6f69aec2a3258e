"""What each backtest figure means: the report's glossary and the command's text output.

Every key ``metrics.summarize`` returns has a definition here (a test holds it to that). Return
figures are fractions (0.25 = 25 %); "a year" is the calendar the run's bars follow
(``calendars``): 24/7, 252 equity sessions or five FX days a week.
"""

from __future__ import annotations

import math

# Figures that count something: shown as integers.
INTEGER_METRICS = frozenset({"trades", "max_drawdown_duration"})

METRIC_DEFINITIONS: dict[str, str] = {
    "total_return": "Final equity / starting capital − 1.",
    "annualised_return": (
        "Geometric mean return per bar compounded over a year of bars (periods per year); "
        "never below −100 %. Equals CAGR when the bars cover the calendar evenly."
    ),
    "cagr": (
        "Compound annual growth rate: (final / initial)^(1 / years) − 1, years being the elapsed "
        "calendar time from the first bar's start to the last bar's end (365-day years)."
    ),
    "volatility": "Standard deviation of per-bar returns (ddof 1) × √(periods per year).",
    "sharpe": "Mean per-bar return / its standard deviation × √(periods per year); no risk-free.",
    "sortino": (
        "Mean per-bar return / downside deviation (below 0, over all bars) × √(periods per year)."
    ),
    "calmar": "CAGR / maximum drawdown.",
    "omega": "Sum of per-bar gains / sum of per-bar losses (threshold 0).",
    "max_drawdown": "Deepest fall of equity from a running peak, as a positive fraction.",
    "max_drawdown_duration": "Longest drawdown, in bars, from its peak to recovery (or the end).",
    "var_95": "Historical 95 % value at risk of one bar, as a positive loss fraction.",
    "cvar_95": "Mean loss of the bars beyond the 95 % VaR (expected shortfall), positive.",
    "skew": "Bias-corrected sample skewness of per-bar returns.",
    "kurtosis": "Bias-corrected excess kurtosis of per-bar returns.",
    "final_equity": "Cash plus positions at the last close.",
    "trades": "Closed round trips (flat to flat); a trade still open at the end is not counted.",
    "win_rate": "Share of closed trades with positive net P&L.",
    "profit_factor": "Gross profit / gross loss of closed trades (∞ without a loss).",
    "expectancy": "Mean net P&L per closed trade (money).",
    "average_win": "Mean net P&L of winning closed trades (money).",
    "average_loss": "Mean net P&L of losing closed trades (money, negative).",
    "best_trade": "Best closed trade's return on its entry notional.",
    "worst_trade": "Worst closed trade's return on its entry notional.",
    "average_trade": "Mean closed trade's return on its entry notional.",
    "sqn": "System Quality Number: √n × mean / standard deviation of closed trades' P&L.",
    "kelly": "Kelly fraction W − (1 − W) / (average win / |average loss|).",
    "exposure_time": "Share of bars after which a position was open.",
    "turnover": "Traded notional / mean equity.",
    "alpha": "Annualised alpha against buy-and-hold of the traded symbols (empyrical's formula).",
    "beta": "Beta of per-bar returns against buy-and-hold of the traded symbols.",
    "probabilistic_sharpe": "Probability that the true Sharpe ratio is above zero (PSR).",
    "deflated_sharpe": "PSR against the Sharpe the best of the sweep's trials reaches by luck.",
}


def format_metric(name: str, value: object) -> str:
    """Return ``value`` for text output: counts as integers, other numbers to four decimals."""
    if value is None:
        return "—"
    if isinstance(value, float | int) and not isinstance(value, bool):
        number = float(value)
        if math.isnan(number):
            return "—"
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        if name in INTEGER_METRICS and number.is_integer():
            return str(int(number))
        return f"{number:.4f}"
    return str(value)


__all__ = ["INTEGER_METRICS", "METRIC_DEFINITIONS", "format_metric"]
