"""Live book and flow inputs (from the events the engine sees) equal training's (stored rows)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from marketdata.engine.events import Bar, Quote, Side, Trade
from marketdata.feature_inputs import feature_inputs_frame
from marketdata.models import Quote as QuoteRow
from marketdata.models import TradeTick
from models_ml.live_inputs import LiveInputsPredictor
from tests.factories import SymbolFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def events(seed: int = 5) -> list[Trade | Quote]:
    """Trades and quotes over five minutes, some exactly on bar boundaries."""
    rng = np.random.default_rng(seed)
    out: list[Trade | Quote] = []
    for i, second in enumerate(sorted(rng.choice(300, 120, replace=False))):
        ts = T0 + timedelta(seconds=int(second))
        if i % 3 == 0:
            out.append(
                Quote(
                    "BTC-USD", ts, 99.0, float(rng.uniform(0, 5)), 101.0, float(rng.uniform(0, 5))
                )
            )
        else:
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            out.append(
                Trade("BTC-USD", ts, 100.0, float(rng.uniform(0.1, 2)), trade_id=str(i), side=side)
            )
    out.append(Quote("BTC-USD", T0 + timedelta(minutes=2), 99.5, 7.0, 100.5, 1.0))  # at a close
    return sorted(out, key=lambda e: e.ts)


def test_stream_inputs_equal_the_stored_join():
    symbol = SymbolFactory(name="BTC-USD")
    stream = events()
    for e in stream:
        if isinstance(e, Quote):
            QuoteRow.objects.update_or_create(
                symbol=symbol,
                venue="sim",
                ts=e.ts,
                defaults={
                    "bid": e.bid,
                    "ask": e.ask,
                    "bid_size": e.bid_size,
                    "ask_size": e.ask_size,
                },
            )
        else:
            TradeTick.objects.create(
                symbol=symbol,
                venue="sim",
                trade_id=e.trade_id,
                ts=e.ts,
                price=e.price,
                size=e.size,
                side=str(e.side),
            )
    index = pd.date_range(T0, periods=5, freq="1min", tz="UTC")
    stored = feature_inputs_frame(
        symbol="BTC-USD", timeframe="1m", index=index, groups=["book", "flow"]
    )
    live = LiveInputsPredictor(None, symbol="BTC-USD", timeframe="1m", groups=["book", "flow"])
    pending = list(stream)
    for ts in index:
        close = ts + timedelta(minutes=1)
        # The engine has seen everything up to the close (and the bar is emitted after it).
        while pending and pending[0].ts <= close:
            live.observe(pending.pop(0))
        bar = Bar("BTC-USD", "1m", ts.to_pydatetime(), 100.0, 100.0, 100.0, 100.0, 1.0)
        got = live.stream_inputs(bar)
        expected = stored.loc[ts]
        for column in ("bid", "ask", "bid_size", "ask_size", "buy_volume", "sell_volume"):
            assert got[column] == pytest.approx(expected[column], nan_ok=True), (ts, column)
