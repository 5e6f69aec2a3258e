"""Pure market-data logic: event types, validation, aggregation, simulation. No Django imports."""
