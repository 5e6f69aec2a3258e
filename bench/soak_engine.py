"""The engine process of ``bench/soak.py``: ``manage.py runtrader`` on N simulated symbols.

The simulated market knows five symbols by name; the soak needs fifty. This process registers
``SOAK01-USD`` ... as extra symbol specs (the five defaults' profiles, cycled, at other prices)
in the simulated market's table, then runs the real ``runtrader`` command with its arguments:

    python bench/soak_engine.py N <runtrader arguments...>
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def soak_symbols(n: int) -> list[str]:
    """Return the names of the soak's symbols: the five defaults, then SOAK06-USD ..."""
    from marketdata.engine.constants import DEFAULT_SYMBOLS

    names = [s.symbol for s in DEFAULT_SYMBOLS][:n]
    return names + [f"SOAK{i:02d}-USD" for i in range(len(names) + 1, n + 1)]


def register(n: int) -> list[str]:
    """Add the extra specs to the simulated market's table; return every soak symbol."""
    from marketdata.engine.constants import DEFAULT_SYMBOLS, DEFAULT_SYMBOLS_BY_NAME

    names = soak_symbols(n)
    for i, name in enumerate(names):
        if name not in DEFAULT_SYMBOLS_BY_NAME:
            base = DEFAULT_SYMBOLS[i % len(DEFAULT_SYMBOLS)]
            DEFAULT_SYMBOLS_BY_NAME[name] = dataclasses.replace(
                base, symbol=name, base_asset=name.split("-")[0],
                base_price=base.base_price * (1 + 0.01 * i),
            )
    return names


def main() -> None:
    """Register the symbols, store their rows, run runtrader with the rest of argv."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from marketdata.services import symbols_ensure

    names = register(int(sys.argv[1]))
    symbols_ensure(names)
    call_command("runtrader", *sys.argv[2:], "--symbols", ",".join(names))


if __name__ == "__main__":
    main()
