"""Pure backtesting logic. No Django imports."""
