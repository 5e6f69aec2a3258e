"""REST endpoints of backtesting."""
