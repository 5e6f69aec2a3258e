"""REST endpoints of trading: orders, positions, accounts and engine control."""
