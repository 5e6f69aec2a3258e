"""A strategy asking for a negative or non-finite quantity gets an error naming it and the value.

``ctx.buy(sym, -3)``, NaN or inf used to produce no trade and no message in a backtest; a signal
strategy's ``size`` of -5 (or inf) silently became the default fraction.
"""

from __future__ import annotations

import textwrap

import pytest

from backtesting.engine.runner import BacktestConfig, run_backtest
from tests.backtesting.engine.helpers import walk_frame
from trading.engine.signal_strategy import StrategyCodeError
from trading.engine.strategies import create_strategy

EVENT = """
from decimal import Decimal

from trading.engine.strategy import Strategy


class Asks(Strategy):
    default_params = {"qty": "1", "side": "buy"}

    def on_bar(self, bar, ctx):
        getattr(ctx, self.params["side"])(bar.symbol, Decimal(self.params["qty"]))
"""

SIGNAL = """
from trading.engine.signal_strategy import SignalStrategy


class Sized(SignalStrategy):
    default_params = {**SignalStrategy.default_params, "size": 0.2}

    def indicators(self, df):
        df["size"] = self.params["size"]
        return df

    def entries(self, df):
        df["enter_long"] = df.index == 10
        return df
"""


def spec_of(tmp_path, text: str, cls: str) -> str:
    path = tmp_path / f"{cls.lower()}.py"
    path.write_text(textwrap.dedent(text))
    return f"{path}:{cls}"


@pytest.mark.parametrize("side", ["buy", "sell"])
@pytest.mark.parametrize("qty", ["-3", "NaN", "Infinity", "-Infinity"])
def test_a_bad_quantity_fails_the_backtest_naming_strategy_and_value(tmp_path, side, qty):
    spec = spec_of(tmp_path, EVENT, "Asks")
    with pytest.raises(StrategyCodeError) as caught:
        run_backtest(create_strategy(spec, qty=qty, side=side), walk_frame(30), BacktestConfig())
    message = str(caught.value)
    assert f"{side} " in message and f"quantity Decimal('{qty}')" in message, message
    assert "strategy Asks" in message and "line 11" in message and "on_bar: the" in message


def test_a_good_quantity_still_trades(tmp_path):
    spec = spec_of(tmp_path, EVENT, "Asks")
    result = run_backtest(create_strategy(spec, qty="0.001"), walk_frame(30), BacktestConfig())
    assert len(result.orders) == 30


@pytest.mark.parametrize("size", [-5.0, 0.0, float("inf")])
def test_a_bad_signal_size_names_the_bar(tmp_path, size):
    spec = spec_of(tmp_path, SIGNAL, "Sized")
    bars = walk_frame(30)
    with pytest.raises(StrategyCodeError) as caught:
        run_backtest(create_strategy(spec, size=size), bars, BacktestConfig())
    message = str(caught.value)
    assert f"size {size!r} on the {bars['symbol'].iloc[0]} bar of" in message, message
    assert bars["ts"].iloc[10].isoformat() in message


def test_a_nan_size_uses_the_fraction_and_a_good_one_is_used(tmp_path):
    spec = spec_of(tmp_path, SIGNAL, "Sized")
    bars = walk_frame(30)
    price = bars["close"].iloc[10]
    sized = {}
    for size in (float("nan"), 0.1, 0.3):
        result = run_backtest(create_strategy(spec, size=size), bars, BacktestConfig())
        (order,) = result.orders
        sized[size] = float(order.quantity) * price / 100_000
    nan, tenth, third = sized.values()
    assert nan == pytest.approx(tenth, rel=0.02) and third == pytest.approx(0.3, rel=0.02)


PRICED = """
from trading.engine.strategy import Strategy


class Priced(Strategy):
    default_params = {"call": "limit", "value": "NaN"}

    def on_bar(self, bar, ctx):
        value = float(self.params["value"])
        if self.params["call"] == "limit":
            ctx.buy(bar.symbol, 1, type="limit", price=value)
        elif self.params["call"] == "stop":
            ctx.sell(bar.symbol, 1, type="stop", stop_price=value)
        else:
            ctx.target_position(bar.symbol, value)
"""


@pytest.mark.parametrize(
    ("call", "value", "said"),
    [("limit", "nan", "price nan"), ("limit", "-1", "price -1.0"), ("limit", "0", "price 0.0"),
     ("stop", "inf", "stop_price inf"), ("target", "nan", "target position BTC-USD nan")],
)  # fmt: skip
def test_a_bad_price_or_target_names_the_strategy_and_value(tmp_path, call, value, said):
    spec = spec_of(tmp_path, PRICED, "Priced")
    bars = walk_frame(30)
    with pytest.raises(StrategyCodeError) as caught:
        run_backtest(create_strategy(spec, call=call, value=value), bars, BacktestConfig())
    message = str(caught.value)
    assert (
        "strategy Priced" in message and said.replace("BTC-USD", bars["symbol"].iloc[0]) in message
    ), message
