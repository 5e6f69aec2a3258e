"""Venue adapters: translate between ``trading.engine`` types and an exchange's API.

Adapters are pure Python (no Django), connect lazily and never write state to storage; the live
venue contract, its errors and the live-trading gate live in ``trading.adapters.base``.
"""
