"""``manage.py ingest``: bad input is one clear error with no rows; no message stops the feed.

Against the local Polygon fake (its real wire protocol): hostile frames, a trade dated 2200, an
unsubscribed pair, a stop in the middle of a minute; and a venue that never answers.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from marketdata.models import Bar, DataQualityEvent, Symbol, TradeTick
from tests.fakes import FakePolygonServer, Script, polygon_trade
from tests.fakes.polygon_ws import BASE_MS
from tests.fakes.threaded import served
from tests.marketdata.test_ingest import counts_line, ingest_polygon, interrupt_when

pytestmark = pytest.mark.timeout(60)

MINUTE_MS = 60_000


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbols", "NOPE-XYZ"], "the simulated market has no NOPE-XYZ"),
        (["--symbols", "BTC-" + "X" * 40], "is longer than 32 characters"),
        (["--symbols", "BTC-USD,NOTAPAIR"], "'NOTAPAIR' is not BASE-QUOTE"),
        (["--symbols", "BTC\x00-USD"], "is not BASE-QUOTE"),
        (["--duration", "-5"], "--duration must be a finite number of seconds above 0"),
        (["--duration", "0"], "--duration must be a finite number of seconds above 0"),
        (["--duration", "nan"], "--duration must be a finite number of seconds above 0"),
        (["--speed", "-1"], "--speed must be a finite number >= 0"),
        (["--speed", "nan"], "--speed must be a finite number >= 0"),
        (["--speed", "inf"], "--speed must be a finite number >= 0"),
        (["--source", "coinbase", "--url", "not-a-url"], "--url 'not-a-url' is not a feed URL"),
        (["--source", "coinbase", "--url", "ftp://127.0.0.1/"], "is not a feed URL"),
        (["--source", "coinbase", "--url", "ws://127.0.0.1:99999/"], "has an invalid port"),
        (["--source", "coinbase", "--future-horizon", "-1"], "--future-horizon must be"),
        (["--source", "coinbase", "--past-horizon", "inf"], "--past-horizon must be"),
    ],
)
def test_bad_input_is_one_clear_error_and_creates_no_symbol(args, message):
    with pytest.raises(CommandError) as refused:
        call_command("ingest", "--symbols", "BTC-USD", *args)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert Symbol.objects.count() == 0


def free_port() -> int:
    """Return a port on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_a_venue_that_never_answers_is_an_error_not_a_clean_exit():
    url = f"ws://127.0.0.1:{free_port()}/"
    with pytest.raises(CommandError) as failed:
        call_command("ingest", "--source", "coinbase", "--url", url, "--duration", "50")
    text = str(failed.value)
    assert text.startswith("feed unavailable: coinbase: no connection to " + url)
    assert "after 5 attempts" in text and "\n" not in text
    assert TradeTick.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_hostile_frames_cost_one_quarantined_frame_each_and_the_feed_goes_on():
    good = [[polygon_trade(50_000.0 + n, 0.01, BASE_MS + n * 1_000, i=str(n))] for n in range(90)]
    nul_pair = polygon_trade(i="nul", pair="BTC\u0000-USD")
    hostile = ["[" * 200_000, json.dumps([nul_pair]), '[{"ev":"XT","pair":"BTC-USD","p":NaN}]']
    frames = good[:30] + hostile[:1] + good[30:60] + hostile[1:] + good[60:]
    with served(FakePolygonServer(Script(frames=frames))) as server:
        watcher = interrupt_when(
            lambda: (
                TradeTick.objects.count() == 90
                and DataQualityEvent.objects.filter(rule="malformed").count() == 3
            )
        )
        out = ingest_polygon(server.url)
        watcher.join(5)
        assert server.connections == 1
    counts = counts_line(out)
    assert counts["malformed"] == 3 and counts["accepted"] == 90
    assert TradeTick.objects.count() == 90
    assert Bar.objects.filter(timeframe="1m").count() >= 1  # the bar builder kept running
    stored = DataQualityEvent.objects.filter(rule="malformed")
    assert all("\x00" not in json.dumps(e.payload) for e in stored)


@pytest.mark.django_db(transaction=True)
def test_a_trade_dated_2200_and_an_unsubscribed_pair_stop_no_bars():
    def minute(m: int) -> list[dict]:
        return [
            polygon_trade(50_000.0 + m, 0.01, BASE_MS + m * MINUTE_MS + s * 1_000, i=f"{m}-{s}")
            for s in (5, 35)
        ]

    y2200 = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp() * 1000)
    frames = [minute(0), minute(1), [polygon_trade(t=y2200, i="future")]]
    frames.append(json.dumps([polygon_trade(t=y2200, i="doge", pair="DOGE-USD")]))  # unasked
    frames += [minute(m) for m in range(2, 6)]
    with served(FakePolygonServer(Script(frames=frames))) as server:
        watcher = interrupt_when(
            lambda: (
                Bar.objects.filter(timeframe="1m").count() >= 5
                and DataQualityEvent.objects.filter(rule="time_horizon").exists()
            )
        )
        out = ingest_polygon(server.url)
        watcher.join(5)
    counts = counts_line(out)
    assert counts["unsubscribed"] == 1 and counts["quarantined"] == 1
    start = datetime.fromtimestamp(BASE_MS / 1000, UTC).replace(second=0)
    minutes = sorted(Bar.objects.filter(timeframe="1m").values_list("ts", flat=True))
    assert minutes == [start + timedelta(minutes=m) for m in range(6)]
    assert not Symbol.objects.filter(name="DOGE-USD").exists()
    assert not TradeTick.objects.filter(trade_id__in=["1:future", "1:doge"]).exists()
    event = DataQualityEvent.objects.get(rule="time_horizon")
    assert event.verdict == "quarantine" and event.event_ts.year == 2200


@pytest.mark.django_db(transaction=True)
def test_a_stop_mid_minute_stores_no_partial_bar():
    now_ms = int(time.time() * 1000)
    frames = [[polygon_trade(50_000.0 + n, 0.01, now_ms - 2_000 + n, i=str(n))] for n in range(20)]
    with served(FakePolygonServer(Script(frames=frames))) as server:
        watcher = interrupt_when(lambda: TradeTick.objects.count() == 20)
        out = ingest_polygon(server.url)
        watcher.join(5)
    stopped = datetime.now(UTC)
    counts = counts_line(out)
    assert counts["partial_bars"] >= 1 and TradeTick.objects.count() == 20
    for ts, timeframe in Bar.objects.values_list("ts", "timeframe"):
        seconds = {"1s": 1, "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400}.get(
            timeframe, 86400
        )
        assert ts + timedelta(seconds=seconds) <= stopped, (timeframe, ts)  # only ended windows
