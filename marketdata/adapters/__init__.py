"""Market-data feed adapters: translate venue wire formats into ``marketdata.engine.events``.

Adapters are pure Python (no Django), connect lazily and never write state.
"""
