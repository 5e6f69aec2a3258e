"""``manage.py strategy new`` refuses names no ``--strategy NAME`` could reach, and ``strategy
list`` says when a user's class is hidden behind a built-in of the same name.

``strategy new sma_cross`` wrote a template that ``--strategy sma_cross`` never ran (the built-in
is found first: a user edits their file and runs someone else's code), and ``strategy new
_Private`` wrote one the folders' scan skips, while printing ``--strategy _Private`` as the way
to run it.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.trading.test_user_strategies import SIGNAL_SMA
from trading.engine import user_strategies
from trading.engine.strategies import STRATEGIES


@pytest.fixture
def folder(tmp_path):
    before = user_strategies.strategy_paths()
    user_strategies.set_strategy_paths([tmp_path])
    yield tmp_path
    user_strategies.set_strategy_paths(before)
    for key in [k for k in STRATEGIES if str(tmp_path) in k]:
        del STRATEGIES[key]


@pytest.mark.parametrize(
    ("name", "reason"),
    [("sma_cross", "built-in strategy's name"), ("rsi_reversion", "built-in"), ("_Mine", "'_'")],
)
def test_new_refuses_a_name_that_would_never_run(folder, name, reason):
    with pytest.raises(CommandError, match=reason):
        call_command("strategy", "new", name, "--dir", str(folder), stdout=StringIO())
    assert list(folder.iterdir()) == []


def test_new_still_writes_an_ordinary_name(folder):
    out = StringIO()
    call_command("strategy", "new", "SmaCrossMine", "--dir", str(folder), stdout=out)
    assert (folder / "sma_cross_mine.py").exists()
    assert "--strategy SmaCrossMine" in out.getvalue()


def test_list_says_a_user_class_is_hidden_by_a_built_in(folder):
    (folder / "mine.py").write_text(SIGNAL_SMA.replace("class UserSma", "class sma_cross"))
    out, err = StringIO(), StringIO()
    call_command("strategy", "list", stdout=out, stderr=err)
    assert f"{(folder / 'mine.py').resolve()}:sma_cross" in out.getvalue()
    assert "hidden:" in err.getvalue() and "runs the built-in" in err.getvalue()
    out = StringIO()
    call_command("strategy", "list", "--json", stdout=out, stderr=StringIO())
    document = json.loads(out.getvalue())
    assert len(document["hidden"]) == 1 and "sma_cross" in document["hidden"][0]
