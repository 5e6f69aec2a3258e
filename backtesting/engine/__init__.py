"""Pure backtesting logic (no Django imports).

Modules: ``runner`` (event-driven backtests through trading.engine and risk.engine), ``fills``
(fill models as a venue wrapper), ``vectorised`` (numpy path for sweeps), ``metrics``,
``optimize`` (grid / random / genetic search, walk-forward), ``montecarlo``, ``lookahead``,
``report`` (offline HTML) and ``result`` (round trips and the result object).
"""
