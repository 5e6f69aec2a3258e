"""Pure monitoring logic (health aggregation). No Django imports."""
