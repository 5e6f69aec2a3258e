"""Studies: from data frames to findings, each with its baseline and out-of-sample check."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from research.engine import hypothesis, microstructure, patterns, statarb
from research.engine.errors import ResearchInputError
from research.engine.findings import FindingData, StudyOutput

PAIR_DEFAULTS = {"entry": 2.0, "exit": 0.5, "lookback": 100}


def _split(frame: pd.DataFrame, holdout: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not 0 <= holdout < 1:
        raise ResearchInputError("holdout must be in [0, 1)")
    cut = int(len(frame) * (1 - holdout))
    return frame.iloc[:cut], frame.iloc[cut:]


def pairs_study(
    closes: pd.DataFrame,
    *,
    alpha: float = 0.01,
    correction: str = "bh",
    holdout: float = 0.3,
    lags: int | None = 1,
    strategy: dict[str, Any] | None = None,
) -> StudyOutput:
    """Scan every pair in-sample, confirm the significant ones on the held-out tail."""
    closes = closes.dropna()
    train, test = _split(closes, holdout)
    method = hypothesis.CORRECTIONS.get(correction)
    if method is None:
        raise ResearchInputError(f"unknown correction {correction!r}")
    results = statarb.scan_pairs(train, alpha=alpha, method=method, lags=lags)
    form = {**PAIR_DEFAULTS, **(strategy or {})}
    out = StudyOutput()
    for res in results:
        out.findings.append(_pair_finding(res, train, test, alpha, form, lags))
    confirmed = [f for f in out.findings if f.significant and f.details.get("holdout_confirmed")]
    out.summary = {
        "pairs": len(results),
        "in_sample_bars": len(train),
        "holdout_bars": len(test),
        "significant": sum(f.significant for f in out.findings),
        "confirmed_out_of_sample": len(confirmed),
        # What chance alone gives: alpha x pairs uncorrected, far fewer after the correction.
        "baseline_uncorrected_false_positives": alpha * len(results),
        "correction": correction,
    }
    if 3 <= closes.shape[1] <= 12:
        out.findings.append(_johansen_finding(train))
    out.figures.append(_pvalue_figure(results, alpha))
    if results:
        out.figures.append(_spread_figure(results[0], closes))
    return out


def _pair_finding(
    res: statarb.CointResult,
    train: pd.DataFrame,
    test: pd.DataFrame,
    alpha: float,
    form: dict[str, Any],
    lags: int | None,
) -> FindingData:
    details: dict[str, Any] = res.as_dict()
    significant = res.p_adjusted <= alpha
    y, x = train[res.y].to_numpy(), train[res.x].to_numpy()
    if significant:
        betas, _ = statarb.hedge_ratio_kalman(np.log(y), np.log(x))
        details["kalman_hedge_ratio_last"] = float(betas[-1])
        window = max(statarb.MIN_OBSERVATIONS, len(y) // 4)
        rolling = statarb.rolling_cointegration(y, x, window=window, step=max(1, window // 2))
        details["rolling_share_p05"] = float((rolling["p_value"] <= 0.05).mean())
        details["rolling_hedge_ratio_std"] = float(rolling["hedge_ratio"].std())
        details["strategy"] = _pairs_form(res, form)
    if significant and len(test) >= statarb.MIN_OBSERVATIONS:
        held = statarb.engle_granger(test[res.y].to_numpy(), test[res.x].to_numpy(), lags=lags)
        details["holdout_p_value"] = held.p_value
        details["holdout_confirmed"] = held.p_value <= 0.05
    title = f"cointegration {res.y}/{res.x}"
    if significant:
        title = f"pairs {res.y}/{res.x}, z {form['entry']}/{form['exit']}"
    return FindingData(
        title=title,
        statistic=res.statistic,
        p_value=res.p_adjusted,
        effect_size=res.half_life,
        significant=bool(significant),
        description="Engle-Granger on log prices; p corrected over all pairs; effect = "
        "half-life in bars",
        details=details,
    )


def _pairs_form(res: statarb.CointResult, form: dict[str, Any]) -> dict[str, Any]:
    params = {"symbol_a": res.y, "symbol_b": res.x, **form}
    return {"strategy": "pairs", "symbols": [res.y, res.x], "params": params}


def _johansen_finding(train: pd.DataFrame) -> FindingData:
    jo = statarb.johansen(train)
    return FindingData(
        title=f"Johansen basket {'/'.join(jo.symbols)}: rank {jo.rank}",
        statistic=jo.trace[0],
        effect_size=float(jo.rank),
        significant=jo.rank > 0,
        description="Johansen trace test at 95 %; effect = cointegration rank",
        details={"trace": jo.trace, "critical_95": jo.critical_95, "vector": jo.vector},
    )


def _pvalue_figure(results: list[statarb.CointResult], alpha: float) -> go.Figure:
    names = [f"{r.y}/{r.x}" for r in results]
    fig = go.Figure(go.Bar(x=names, y=[-math.log10(max(r.p_adjusted, 1e-300)) for r in results]))
    fig.add_hline(y=-math.log10(alpha), line_dash="dot", annotation_text=f"alpha {alpha}")
    fig.update_layout(title="Pairs: -log10 corrected p-value", height=400)
    return fig


def _spread_figure(res: statarb.CointResult, closes: pd.DataFrame) -> go.Figure:
    spread = np.log(closes[res.y]) - res.hedge_ratio * np.log(closes[res.x]) - res.intercept
    z = (spread - spread.mean()) / spread.std()
    fig = go.Figure(go.Scatter(x=closes.index, y=z, name="spread z"))
    fig.update_layout(title=f"Spread z-score {res.y}/{res.x} (in-sample fit)", height=400)
    return fig


def microstructure_study(
    symbol: str,
    trades: pd.DataFrame,
    quotes: pd.DataFrame | None,
    *,
    book: pd.DataFrame | None = None,
    interval: str = "1min",
    permutations: int = 200,
    seed: int = 0,
) -> StudyOutput:
    """Measure impact, spreads, volatility and flow toxicity of one symbol's trades, quotes and
    book snapshots, over the whole range and per UTC hour of day."""
    out = StudyOutput()
    kyle = microstructure.kyle_lambda(trades, interval=interval)
    baseline = _shuffled_lambdas(trades, interval, permutations, seed)
    p_perm = float((np.abs(baseline) >= abs(kyle.coefficient)).mean())
    out.findings.append(
        FindingData(
            title=f"{symbol} Kyle's lambda",
            statistic=kyle.t_statistic,
            p_value=kyle.p_value,
            effect_size=kyle.coefficient,
            significant=kyle.p_value <= 0.01 and p_perm <= 0.01,
            description="price change per unit of signed volume per interval",
            details={
                "r_squared": kyle.r_squared,
                "n": kyle.n,
                "permutation_p": p_perm,
                "baseline_abs_mean": float(np.abs(baseline).mean()),
            },
        )
    )
    prices = trades["price"]
    out.findings += _spread_findings(symbol, trades, quotes, interval)
    acf = microstructure.sign_autocorrelation(trades, lags=min(20, len(trades) // 4))
    band = 1.96 / math.sqrt(len(trades))
    out.findings.append(
        FindingData(
            title=f"{symbol} trade-sign autocorrelation",
            statistic=float(acf[0]),
            effect_size=float(acf[0]),
            significant=abs(acf[0]) > band,
            description="lag-1 autocorrelation of trade signs; baseline band +-1.96/sqrt(n)",
            details={"acf": [float(v) for v in acf], "white_noise_band": band},
        )
    )
    if book is not None and len(book) >= 10:
        out.findings += _book_findings(symbol, book, interval)
    signature = microstructure.signature_plot(prices, intervals=["1s", "10s", "1min", "5min"])
    hours = microstructure.by_hour(trades, quotes, book, interval=interval)
    out.summary = {
        "symbol": symbol,
        "trades": len(trades),
        "quotes": 0 if quotes is None else len(quotes),
        "book_snapshots": 0 if book is None else len(book),
        "signature": signature.to_dict(),
        "by_hour": hours.to_dict(orient="records"),
    }
    if len(hours):
        fig = go.Figure()
        for column in ("kyle_lambda", "roll_spread", "sign_acf1", "imbalance_impact"):
            if column in hours:
                fig.add_trace(go.Bar(x=hours["hour"], y=hours[column], name=column))
        fig.update_layout(title=f"{symbol} statistics by UTC hour of day", height=350)
        out.figures.append(fig)
    out.figures.append(
        go.Figure(
            go.Scatter(x=list(signature.index), y=signature.values, mode="lines+markers")
        ).update_layout(title=f"{symbol} volatility signature plot", height=350)
    )
    return out


def _book_findings(symbol: str, book: pd.DataFrame, interval: str) -> list[FindingData]:
    """Order-flow imbalance of the book's touch and the depth imbalance's next-interval impact."""
    return [
        _regression_finding(
            f"{symbol} book order-flow imbalance impact",
            microstructure.ofi_impact(book, interval=interval),
            "mid change per unit of order-flow imbalance at the book's touch per "
            "interval (book snapshots)",
        ),
        _regression_finding(
            f"{symbol} book depth imbalance -> next mid change",
            microstructure.imbalance_impact(book, interval=interval),
            "next interval's mid change per unit of depth imbalance "
            "(bid - ask)/(bid + ask) at this interval's last snapshot; baseline: slope 0",
        ),
    ]


def _regression_finding(title: str, fit, description: str) -> FindingData:
    """One slope's finding: t-statistic, p-value, coefficient; significant at 1 %."""
    return FindingData(
        title=title,
        statistic=fit.t_statistic,
        p_value=fit.p_value,
        effect_size=fit.coefficient,
        significant=fit.p_value <= 0.01,
        description=description,
        details={"r_squared": fit.r_squared, "n": fit.n},
    )


def _shuffled_lambdas(trades: pd.DataFrame, interval: str, n: int, seed: int) -> np.ndarray:
    """Kyle's lambda with trade signs shuffled: what 'no information in flow' looks like."""
    rng = np.random.default_rng(seed)
    signs = microstructure.trade_signs(trades).to_numpy()
    out = np.empty(n)
    for i in range(n):
        shuffled = trades.assign(side=np.where(rng.permutation(signs) > 0, "buy", "sell"))
        out[i] = microstructure.kyle_lambda(shuffled, interval=interval).coefficient
    return out


def _spread_findings(
    symbol: str, trades: pd.DataFrame, quotes: pd.DataFrame | None, interval: str
) -> list[FindingData]:
    roll = microstructure.roll_spread(trades["price"])
    found = [
        FindingData(
            title=f"{symbol} Roll spread",
            effect_size=roll,
            description="2 sqrt(-cov(dp_t, dp_t-1)) from trade prices (None: positive cov)",
        )
    ]
    if quotes is None or len(quotes) < 10:
        return found
    eff = microstructure.effective_spread(trades, quotes)
    found.append(
        FindingData(
            title=f"{symbol} effective spread",
            effect_size=float(eff.mean()),
            description="mean 2|p - mid|/mid against the prevailing quote",
            details={"median": float(eff.median()), "n": int(eff.size)},
        )
    )
    ofi = microstructure.ofi_impact(quotes, interval=interval)
    found.append(
        FindingData(
            title=f"{symbol} order-flow imbalance impact",
            statistic=ofi.t_statistic,
            p_value=ofi.p_value,
            effect_size=ofi.coefficient,
            significant=ofi.p_value <= 0.01,
            description="mid change per unit of order-flow imbalance per interval",
            details={"r_squared": ofi.r_squared, "n": ofi.n},
        )
    )
    return found


def patterns_study(
    bars_by_symbol: dict[str, pd.DataFrame],
    *,
    horizons: list[int],
    alpha: float = 0.05,
    correction: str = "bh",
    candles: bool = True,
    min_events: int = 10,
    seed: int = 0,
    overlap: str = "thin",
) -> StudyOutput:
    """Test every pattern's forward returns against random bars, corrected over all tests.

    Overlapping forward returns (horizon > 1) are handled by ``overlap``: Newey-West standard
    errors ("hac") or non-overlapping samples only ("thin", the default).
    """
    stats = []
    for symbol, bars in bars_by_symbol.items():
        found = patterns.scan_patterns(
            bars, horizons=horizons, candles=candles, seed=seed, overlap=overlap
        )
        stats += [(symbol, s) for s in found if s.events >= min_events]
    reject, adjusted = hypothesis.adjust_pvalues(
        [s.p_value for _, s in stats], method=correction, alpha=alpha
    )
    out = StudyOutput()
    for (symbol, s), sig, p in zip(stats, reject, adjusted, strict=True):
        out.findings.append(
            FindingData(
                title=f"{symbol} {s.pattern} +{s.horizon} bars",
                statistic=s.statistic,
                p_value=p,
                effect_size=s.mean - s.baseline_mean,
                significant=sig,
                description="mean forward log return after the pattern minus other bars; "
                f"overlapping horizons: {overlap}",
                details={
                    "events": s.events,
                    "mean": s.mean,
                    "baseline_mean": s.baseline_mean,
                    "raw_p_value": s.p_value,
                    "horizon": s.horizon,
                },
            )
        )
    out.summary = {
        "tests": len(stats),
        "significant": sum(reject),
        "baseline_uncorrected_false_positives": alpha * len(stats),
        "correction": correction,
        "horizons": horizons,
        "overlap": overlap,
    }
    effects = [f.effect_size for f in out.findings]
    out.figures.append(
        go.Figure(go.Histogram(x=effects, nbinsx=40)).update_layout(
            title="Pattern edge over random bars (all tests)", height=350
        )
    )
    return out


def overfitting_study(
    returns: pd.DataFrame, *, blocks: int = 16, reps: int = 1000, seed: int = 0
) -> StudyOutput:
    """Judge a set of strategies/parameter sets: PBO, deflated Sharpe, Reality Check, SPA."""
    matrix = returns.to_numpy(dtype=float)
    selection = hypothesis.selection_report(matrix, blocks=blocks)
    snoop = hypothesis.data_snooping_test(matrix, reps=reps, seed=seed)
    names = [str(c) for c in returns.columns]
    winner = names[selection["best"]]
    out = StudyOutput()
    out.findings.append(
        FindingData(
            title=f"best of {len(names)}: {winner}",
            statistic=selection["best_sharpe"],
            p_value=snoop.reality_check_p,
            effect_size=selection["deflated_sharpe"],
            significant=snoop.reality_check_p <= 0.05 and snoop.spa_p <= 0.05,
            description="statistic = per-period Sharpe; p = White's Reality Check; "
            "effect = deflated Sharpe ratio",
            details={"spa_p": snoop.spa_p, "pbo": selection["pbo"], "candidate": winner},
        )
    )
    tests = [hypothesis.mean_return_test(matrix[:, i], seed=seed) for i in range(len(names))]
    reject, adjusted = hypothesis.adjust_pvalues([t.p_value for t in tests], method="holm")
    for name, t, sig, p in zip(names, tests, reject, adjusted, strict=True):
        out.findings.append(
            FindingData(
                title=f"mean return of {name}",
                statistic=t.t_statistic,
                p_value=p,
                effect_size=t.mean,
                significant=sig,
                description="t-test of mean return, Holm-corrected; bootstrap CI in details",
                details={"raw_p_value": t.p_value, "ci": [t.ci_low, t.ci_high], "n": t.n},
            )
        )
    out.summary = {
        **selection,
        "best": winner,
        "reality_check_p": snoop.reality_check_p,
        "spa_p": snoop.spa_p,
        "baseline_pbo_of_noise": 0.5,
    }
    fig = go.Figure()
    for name in names[:50]:
        fig.add_trace(go.Scatter(y=returns[name].cumsum().to_numpy(), name=name, mode="lines"))
    out.figures.append(fig.update_layout(title="Cumulative returns of the trials", height=400))
    return out
