"""The per-connection outbox: market data conflates, nothing else is ever dropped, seq tells."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.engine.stream import (
    ChannelError,
    Outbox,
    OutboxOverflow,
    channel_parse,
    decimal_text,
)

MARKET = ["market.BTC-USD", "market.ETH-USD"]
RELIABLE = ["orders", "fills"]

# One step: ("put", channel index, kind index) or ("pop", how many).
steps = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 3), st.integers(0, 2)),
        st.tuples(st.just("pop"), st.integers(1, 20), st.just(0)),
    ),
    max_size=400,
)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_conflation_drops_only_market_data_and_every_drop_is_told(script):
    box = Outbox(market_backlog=8, reliable_limit=10_000)
    sent: list[dict] = []
    put: dict[str, int] = {}
    for op, a, b in script:
        if op == "put":
            channel = (MARKET + RELIABLE)[a]
            kind = ("bar", "trade", "quote")[b] if a < 2 else "order"
            box.put(channel, kind, "t", {"n": put.get(channel, 0)}, market=a < 2)
            put[channel] = put.get(channel, 0) + 1
            # bounded: the backlog, one waiting message per market (channel, kind), the notices
            # and the reliable messages
            assert len(box) <= 8 + 6 + 2 + sum(put.get(c, 0) for c in RELIABLE)
        else:
            sent += [m for m in (box.pop() for _ in range(a)) if m is not None]
    while (message := box.pop()) is not None:
        sent.append(message)
    for channel in MARKET + RELIABLE:
        mine = [m for m in sent if m["channel"] == channel]
        seqs = [m["seq"] for m in mine]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # in order, no repeats
        data = [m for m in mine if m["type"] != "conflated"]
        told = sum(m["data"]["dropped"] for m in mine if m["type"] == "conflated")
        missing = (max(seqs) if seqs else 0) - len(seqs)
        assert missing == told, (channel, missing, told)  # every gap in seq is a told drop
        assert len(data) + told == put.get(channel, 0)  # nothing vanishes unsaid
        if channel in RELIABLE:
            assert told == 0 and [m["data"]["n"] for m in data] == list(range(put.get(channel, 0)))
        else:
            # what survives is the latest of each kind: the last put always arrives
            assert not data or data[-1]["data"]["n"] == put[channel] - 1


def test_a_backed_up_outbox_keeps_the_latest_per_channel_and_kind():
    box = Outbox(market_backlog=2)
    for n in range(5):
        box.put("market.BTC-USD", "quote", "t", {"n": n}, market=True)
    box.put("orders", "order", "t", {"n": 0}, market=False)
    out = [box.pop() for _ in range(len(box))]
    assert [(m["type"], m["seq"], m["data"]) for m in out] == [
        ("order", 1, {"n": 0}),  # account messages go first
        ("quote", 1, {"n": 0}),
        ("conflated", 3, {"dropped": 3}),
        ("quote", 6, {"n": 4}),
    ]
    assert box.dropped == 3 and box.pop() is None


def test_a_notice_never_waits_behind_market_data():
    box = Outbox(market_backlog=256)
    for n in range(200):
        box.put("market.BTC-USD", "trade", "t", {"n": n}, market=True)
    box.put("orders", "order", "t", {"n": 0}, market=False)
    box.put_reply({"type": "pong"})
    box.put("fills", "fill", "t", {"n": 0}, market=False)
    first = [box.pop() for _ in range(3)]
    assert [m["type"] for m in first] == ["order", "pong", "fill"]
    rest = [box.pop() for _ in range(200)]
    assert [m["data"]["n"] for m in rest] == list(range(200)) and box.pop() is None


def test_undroppable_overflow_raises_so_the_connection_closes():
    box = Outbox(market_backlog=2, reliable_limit=3)
    for n in range(3):
        box.put("fills", "fill", "t", {"n": n}, market=False)
    with pytest.raises(OutboxOverflow):
        box.put("fills", "fill", "t", {"n": 3}, market=False)


def test_reset_forgets_a_channel_and_restarts_its_seq():
    box = Outbox()
    box.put("risk", "state", "t", {}, market=False)
    box.reset("risk")
    assert len(box) == 0 and box.next_seq("risk") == 1


@pytest.mark.parametrize(
    "name,reason",
    [("market.btc-usd", "malformed symbol"), ("backtests.0", "malformed backtest id"),
     ("weather", "unknown channel"), (42, "a channel name is a string")],
)
def test_bad_channel_names_say_why(name, reason):
    with pytest.raises(ChannelError, match=reason):
        channel_parse(name)


def test_numbers_are_plain_decimal_strings():
    from decimal import Decimal

    assert decimal_text(1e-05) == "0.00001"
    assert decimal_text(Decimal("0E-10")) == "0.0000000000"
    assert decimal_text(50123.45) == "50123.45" and decimal_text(None) is None
