"""REST endpoints of market data: symbols, bars (cursor pages, resampled), quote and book."""
