"""The engine's order and fill messages write a client order id in the API's form."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from monitoring.engine.payloads import fill_payload, order_id_text, order_payload
from trading.engine.orders import Fill, Order

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_engine_ids_in_hex_are_written_as_the_dashed_uuid_the_api_and_snapshots_use():
    cid = uuid.uuid4()
    order = Order(
        symbol="BTC-USD", side="buy", quantity=Decimal("0.5"), account="paper",
        client_order_id=cid.hex,
    )  # fmt: skip
    fill = Fill(cid.hex, "BTC-USD", "buy", Decimal("0.5"), Decimal(100), Decimal(0), "taker", T0)
    assert order_payload(order, "paper")["client_order_id"] == str(cid)
    assert fill_payload(fill, "paper")["client_order_id"] == str(cid)


def test_an_id_that_is_not_a_uuid_is_left_as_it_is():
    assert order_id_text("venue-123") == "venue-123"
    assert order_id_text(uuid.UUID(int=7)) == str(uuid.UUID(int=7))
