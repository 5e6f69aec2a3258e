"""Command-line specs of structure planted in the simulated market (reproducible research proofs).

``--plant-pair FOLLOWER:LEADER[:BETA[:HALF_LIFE_HOURS[:SPREAD_SIGMA]]]`` plants a cointegrated
pair (defaults: beta 1, half-life 6 h, spread sigma 0.01 in log units); ``--plant-impact
SYMBOL:COEFFICIENT`` plants a flow impact (quote units of mid per base unit of net aggressor
flow, live stream only). Bad specs raise SimulationConfigError with the expected form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from marketdata.engine.errors import SimulationConfigError
from marketdata.engine.sim_model import CointegratedPair, FlowImpact

PAIR_FORM = "FOLLOWER:LEADER[:BETA[:HALF_LIFE_HOURS[:SPREAD_SIGMA]]], e.g. ETH-USD:BTC-USD:1.2:12"
IMPACT_FORM = "SYMBOL:COEFFICIENT, e.g. BTC-USD:1.5"


def _numbers(parts: Sequence[str], spec: str, form: str) -> list[float]:
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise SimulationConfigError(f"{spec!r}: expected {form}") from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise SimulationConfigError(f"{spec!r}: numbers must be finite and > 0 ({form})")
    return values


def parse_pair(spec: str) -> CointegratedPair:
    """Parse one ``--plant-pair`` spec."""
    parts = [p.strip() for p in spec.split(":")]
    if not 2 <= len(parts) <= 5 or not all(parts[:2]):
        raise SimulationConfigError(f"{spec!r}: expected {PAIR_FORM}")
    follower, leader = parts[0].upper(), parts[1].upper()
    values = _numbers(parts[2:], spec, PAIR_FORM)
    fields: dict[str, float] = {}
    for name, value in zip(("beta", "half_life", "spread_sigma"), values, strict=False):
        fields[name] = value * 3600.0 if name == "half_life" else value
    return CointegratedPair(follower, leader, **fields)


def parse_impact(spec: str) -> FlowImpact:
    """Parse one ``--plant-impact`` spec."""
    parts = [p.strip() for p in spec.split(":")]
    if len(parts) != 2 or not parts[0]:
        raise SimulationConfigError(f"{spec!r}: expected {IMPACT_FORM}")
    (coefficient,) = _numbers(parts[1:], spec, IMPACT_FORM)
    return FlowImpact(parts[0].upper(), coefficient)


def parse_plants(
    pairs: Sequence[str] = (), impacts: Sequence[str] = ()
) -> tuple[tuple[CointegratedPair, ...], tuple[FlowImpact, ...]]:
    """Parse every ``--plant-pair`` and ``--plant-impact`` spec of a command line."""
    return tuple(parse_pair(p) for p in pairs), tuple(parse_impact(i) for i in impacts)


def describe(pairs: Sequence[CointegratedPair], impacts: Sequence[FlowImpact]) -> list[str]:
    """Return the plants as specs again (hours for half-lives), e.g. for a run's parameters."""
    out = [
        f"pair {p.follower}:{p.leader}:{p.beta:g}:{p.half_life / 3600:g}:{p.spread_sigma:g}"
        for p in pairs
    ]
    return out + [f"impact {i.symbol}:{i.coefficient:g}" for i in impacts]
