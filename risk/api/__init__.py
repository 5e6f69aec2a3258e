"""REST endpoints of risk: limits, events, the VaR/drawdown report, halt/pause/resume."""
