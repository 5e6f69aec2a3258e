"""Pure risk logic: limits, pre-trade checks, sizing, stops, monitors, kill switch. No Django."""
