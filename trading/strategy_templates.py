"""The files ``manage.py strategy new NAME --style signal|event`` writes (they run as they are)."""

SIGNAL = '''"""{name}: a signal-style strategy (see README, "Writing your own strategy").

Three functions of a pandas DataFrame of bars (ts, open, high, low, close, volume; oldest
first). Backtests run them once over the whole series (fast: the decision-table path); live,
the engine reruns them on the last ``live_window`` bars at each closed bar and acts on the last
row. Only look back (rolling, shift(1)...): ``manage.py strategy check {name}`` verifies it.
"""

from trading.engine.params import IntParam
from trading.engine.signal_strategy import SignalStrategy


class {name}(SignalStrategy):
    # Typed parameters: defaults, checked ranges, and what --optimize searches without --space.
    # ``fraction`` (share of equity per entry, default 0.1) and ``lot`` are always there.
    parameters = {{
        "fast": IntParam(10, 2, 50, step=2),
        "slow": IntParam(30, 10, 200, step=10),
    }}
    live_window = 250  # bars kept live: must cover the longest lookback (slow)

    def indicators(self, df):
        """Add the columns the rules read."""
        df["fast"] = df["close"].rolling(self.params["fast"]).mean()
        df["slow"] = df["close"].rolling(self.params["slow"]).mean()
        return df

    def entries(self, df):
        """enter_long / enter_short: booleans per bar (optional: size, stop_loss, take_profit)."""
        df["enter_long"] = df["fast"] > df["slow"]
        return df

    def exits(self, df):
        """exit_long / exit_short: booleans per bar."""
        df["exit_long"] = df["fast"] < df["slow"]
        return df
'''

EVENT = '''"""{name}: an event-style strategy (see README, "Writing your own strategy").

``on_bar`` runs on every closed bar with only the data up to it; orders are asked for through
``ctx`` (buy, sell, target_position, size_for, history, position, cancel...) and sent by the
engine after the callback returns. Here: an SMA crossover kept with running sums (O(1) a bar).
"""

from collections import deque
from decimal import Decimal

from trading.engine.errors import StrategyConfigError
from trading.engine.params import IntParam
from trading.engine.strategy import Strategy


class {name}(Strategy):
    parameters = {{
        "fast": IntParam(10, 2, 50, step=2),
        "slow": IntParam(30, 10, 200, step=10),
    }}
    default_params = {{"fraction": 0.1, "lot": "0.0001"}}

    def __init__(self, **params):
        super().__init__(**params)  # checks each parameter against its declared range
        if not self.params["fast"] < self.params["slow"]:  # a sweep skips such a pair
            raise StrategyConfigError(
                f"{name}: need fast < slow, got {{self.params['fast']}} and {{self.params['slow']}}"
            )

    def on_start(self, ctx):
        self.closes = {{}}  # per symbol: the last ``slow`` closes
        self.sums = {{}}  # per symbol: [sum of the last fast, sum of the last slow]

    def on_bar(self, bar, ctx):
        fast, slow = self.params["fast"], self.params["slow"]
        closes = self.closes.setdefault(bar.symbol, deque(maxlen=slow))
        sums = self.sums.setdefault(bar.symbol, [0.0, 0.0])
        if len(closes) == slow:
            sums[1] -= closes[0]
        if len(closes) >= fast:
            sums[0] -= closes[-fast]
        closes.append(bar.close)
        sums[0] += bar.close
        sums[1] += bar.close
        if len(closes) < slow:
            return
        want_long = sums[0] / fast > sums[1] / slow
        held = ctx.expected_position(bar.symbol)
        if want_long and held <= 0:
            lot = Decimal(str(self.params["lot"]))
            size = ctx.size_for(bar.symbol, self.params["fraction"], lot, bar.close)
            ctx.target_position(bar.symbol, size, signal="{name}:long")
        elif not want_long and held > 0:
            ctx.target_position(bar.symbol, 0, signal="{name}:flat")
'''

TEMPLATES = {"signal": SIGNAL, "event": EVENT}
