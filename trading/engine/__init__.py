"""Pure trading logic: orders, matching, portfolio accounting, strategies. No Django imports."""
