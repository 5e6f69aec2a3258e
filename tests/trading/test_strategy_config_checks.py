"""A StrategyConfig row the commands cannot load is refused with its field named.

The admin edits ``params`` and ``symbols`` as free JSON: a list of parameters made ``backtest
--config`` and ``runtrader --config`` end in ``TypeError: 'list' object is not a mapping``, and
one symbol written as text was read letter by letter ("the simulated market has no B, T, C, -,
U, S, D"). The admin accepted both, and unknown strategies and parameters too.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backtesting.models import BacktestRun
from trading.models import StrategyConfig

pytestmark = pytest.mark.django_db
BACKTEST = ["--symbols", "BTC-USD", "--timeframe", "1h", "--start", "2024-01-01",
            "--end", "2024-01-10", "--source", "sim", "--json"]  # fmt: skip
BAD_ROWS = [
    ({"params": [5, 20]}, "params: a JSON object of parameter names and values.*got a list"),
    ({"symbols": "BTC-USD"}, "symbols: a JSON list of symbol names.*got text"),
    ({"symbols": [1, None]}, "symbols: '1' is not a symbol name"),
    ({"params": {"": 3}}, "params: parameter names must be non-empty text"),
]


def stored(name: str, **fields) -> StrategyConfig:
    row = {"strategy_class": "sma_cross", "params": {"fast": 5}, "symbols": ["BTC-USD"], **fields}
    return StrategyConfig.objects.create(name=name, **row)


@pytest.mark.parametrize(("fields", "message"), BAD_ROWS)
def test_backtest_refuses_a_row_it_cannot_load_naming_the_field(fields, message) -> None:
    stored("bad", **fields)
    with pytest.raises(CommandError, match=f"--config: strategy config 'bad' cannot be loaded "
                                           f"\\({message}.*fix it in the admin"):  # fmt: skip
        call_command("backtest", "--config", "bad", *BACKTEST)
    assert not BacktestRun.objects.exists()


@pytest.mark.parametrize(("fields", "message"), BAD_ROWS)
def test_runtrader_refuses_a_row_it_cannot_load_naming_the_field(fields, message) -> None:
    stored("bad", **fields)
    with pytest.raises(CommandError, match=f"--config: strategy config 'bad'.*{message}"):
        call_command("runtrader", "--paper", "--config", "bad", "--duration", "1")


def test_a_good_row_still_loads() -> None:
    stored("good", params={"fast": 5, "slow": 20}, symbols=["ETH-USD"])
    call_command("backtest", "--config", "good", *BACKTEST)
    run = BacktestRun.objects.get()
    assert (run.strategy, run.params, run.symbols) == ("sma_cross", {"fast": 5, "slow": 20},
                                                       ["ETH-USD"])  # fmt: skip


def admin_post(client, **fields):
    data = {"name": "cfg", "strategy_class": "sma_cross", "params": '{"fast": 5}',
            "symbols": '["BTC-USD"]', "timeframe": "1m", "enabled": "on", **fields}  # fmt: skip
    return client.post("/admin/trading/strategyconfig/add/", data)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"params": "[5, 20]"}, "a JSON object of parameter names and values"),
        ({"params": "null"}, "got null"),
        ({"symbols": '"BTC-USD"'}, "a JSON list of symbol names"),
        ({"symbols": '["BTC-USD", "btc-usd"]'}, "a symbol is listed twice"),
        ({"strategy_class": "no_such_strategy"}, "unknown strategy"),
        ({"params": '{"fast": "x"}'}, "fast must be a number"),
        ({"params": '{"nope": 1}'}, "nope"),
    ],
)
def test_the_admin_refuses_a_row_the_commands_could_not_load(admin_client, fields, message):
    response = admin_post(admin_client, **fields)
    assert response.status_code == 200  # the form again, with the error
    assert message in response.content.decode()
    assert not StrategyConfig.objects.exists()


def test_the_admin_stores_a_good_row(admin_client) -> None:
    response = admin_post(admin_client, params='{"fast": 5, "slow": 20}')
    assert response.status_code == 302
    row = StrategyConfig.objects.get()
    assert row.params == {"fast": 5, "slow": 20} and row.symbols == ["BTC-USD"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"account": "other"},
            "it is for account 'other', not 'paper'; run it with --account other",
        ),
        ({"timeframe": "1h"}, "it trades 1h bars, not 1m; run it with --timeframe 1h"),
    ],
)
def test_runtrader_never_trades_a_row_on_another_account_or_timeframe(fields, message) -> None:
    # The admin shows each row's account and timeframe; runtrader --config ignored both and
    # traded DEFAULT_ACCOUNT on 1m bars.
    from tests.factories import AccountFactory

    if "account" in fields:
        fields = {**fields, "account": AccountFactory(name="other")}
    stored("mine", **fields)
    with pytest.raises(CommandError, match=f"--config mine: {message}"):
        call_command("runtrader", "--paper", "--config", "mine", "--duration", "1")
