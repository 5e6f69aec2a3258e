"""The simulated market: the embedded default feed of RRR.

Model, per step of ``step`` (default one second):
- correlated log returns (Cholesky factor of a crypto-like correlation matrix) whose volatility
  follows a two-state Markov regime (calm / stressed), plus rare market-wide jumps;
- top of book around the mid with a spread of a few bps that widens in the stressed regime, and a
  10-level book per symbol; trades print at the touch (buys at the ask, sells at the bid) and never
  exceed the displayed touch size;
- Poisson trade counts (more trades when stressed), lognormal sizes rounded to the lot size, and
  aggressor sides leaning with the step's return and the symbol's sentiment;
- a mean-reverting (Ornstein-Uhlenbeck) sentiment latent per symbol, reported as tanh(x) in [-1, 1].

Random numbers are drawn in fixed chunks of steps from one numpy Generator, so the event stream
for a seed is identical however the caller slices it (``events(10)`` twice == ``events(20)``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import TYPE_CHECKING

import numpy as np

from marketdata.engine.constants import (
    BOOK_LEVELS,
    REGIME_SPREAD_MULTIPLIERS,
    REGIME_VOL_MULTIPLIERS,
    REGIME_VOLUME_MULTIPLIERS,
    SENTIMENT_MEAN_REVERSION_PER_HOUR,
    SENTIMENT_VOL_PER_SQRT_HOUR,
    SymbolSpec,
)
from marketdata.engine.errors import SimulationConfigError
from marketdata.engine.events import (
    BookSnapshot,
    MarketEvent,
    Quote,
    SentimentReading,
    Side,
    Trade,
)
from marketdata.engine.sim_model import (
    CointegratedPair,
    FlowImpact,
    MarketProfile,
    cholesky,
    correlation_matrix,
    ou_path,
    regime_path,
    resolve_impacts,
    resolve_pairs,
    resolve_specs,
    round_to,
    stationary_regime,
)

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
CHUNK_STEPS = 256
TRADE_SIZE_LOG_SIGMA = 0.6
SPREAD_LOG_SIGMA = 0.15
BOOK_SIZE_LOG_SIGMA = 0.4
# Aggressor imbalance: how strongly the step's return and the sentiment tilt buy probability.
SIDE_RETURN_TILT = 0.3
SIDE_SENTIMENT_TILT = 0.1
UNPACED_YIELD_EVERY = 256
_BUY, _SELL = Side.BUY, Side.SELL


@dataclass(slots=True)
class _Chunk:
    """Pre-drawn randomness and derived prices of CHUNK_STEPS steps, as Python lists."""

    bids: list[list[list[float]]]  # [step][symbol][level]
    bid_sizes: list[list[list[float]]]
    asks: list[list[list[float]]]
    ask_sizes: list[list[list[float]]]
    sentiment: list[list[float]]  # [step][symbol]
    trade_bounds: list[int]  # trades of step j are trade_* [bounds[j]:bounds[j+1]]
    trade_symbol: list[int]
    trade_offset_us: list[int]
    trade_price: list[float]
    trade_size: list[float]
    trade_buy: list[bool]


class SimulatedMarket:
    """Deterministic simulated crypto market producing trades, quotes, books and sentiment."""

    def __init__(
        self,
        symbols: Sequence[str | SymbolSpec] | None = None,
        seed: int = 42,
        start: datetime | None = None,
        step: timedelta = timedelta(seconds=1),
        trades_per_step: float = 5.0,
        *,
        book_every: int = 1,
        sentiment_every: int = 60,
        correlations: dict[frozenset[str], float] | None = None,
        cointegrated: Sequence[CointegratedPair] = (),
        impacts: Sequence[FlowImpact] = (),
        venue: str = "sim",
    ) -> None:
        start = DEFAULT_START if start is None else start
        if start.tzinfo is None:
            raise SimulationConfigError("start must be timezone-aware (UTC)")
        if step <= timedelta(0) or trades_per_step < 0 or book_every < 1 or sentiment_every < 1:
            raise SimulationConfigError("step must be positive; rates and intervals >= 1")
        specs = resolve_specs(symbols)
        self.profile = MarketProfile(
            specs=specs,
            seed=seed,
            anchor=start.astimezone(UTC),
            step_seconds=step.total_seconds(),
            trades_per_step=float(trades_per_step),
            chol=cholesky(correlation_matrix(specs, correlations)),
            pairs=resolve_pairs(specs, cointegrated),
            impacts=resolve_impacts(specs, impacts),
        )
        self.step = step
        self.book_every = book_every
        self.sentiment_every = sentiment_every
        self.venue = venue
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1])))
        self._log_mid = np.log([s.base_price for s in specs])
        self._regime = stationary_regime(self._rng, self.profile.step_seconds)
        self._sentiment_x = np.zeros(len(specs))
        self._spreads = np.zeros(len(self.profile.pairs))  # planted pairs start on their line
        self._impact_offset = np.zeros(len(specs))  # planted flow impact so far (quote units)
        self._step_index = 0
        self._trade_ids = [count(1) for _ in specs]
        # Trade ids name their stream (seed and start): stored trades are unique per venue,
        # symbol and id, so a stream that numbered from 1 again (every restart of runtrader or
        # ingest) had its trades dropped as duplicates of the last run's until it passed them.
        # The same seed and start give the same ids: a replay stores nothing twice.
        anchor_us = round(self.profile.anchor.timestamp() * 1_000_000)
        self._trade_id_prefix = f"{seed}.{anchor_us}-"
        self._chunk: tuple[int, _Chunk] | None = None

    @property
    def symbols(self) -> tuple[str, ...]:
        """Return the simulated symbol names."""
        return self.profile.names

    @property
    def specs(self) -> tuple[SymbolSpec, ...]:
        """Return the simulated symbols' specs."""
        return self.profile.specs

    @property
    def correlation(self) -> np.ndarray:
        """Return the target correlation matrix of returns (model order)."""
        chol = self.profile.chol
        return chol @ chol.T

    @property
    def now(self) -> datetime:
        """Return the timestamp of the next step to be generated."""
        return self.profile.anchor + self.step * self._step_index

    def mids(self) -> dict[str, float]:
        """Return the current model mid price of each symbol."""
        mids = np.exp(self._log_mid) + self._impact_offset
        return dict(zip(self.symbols, mids.tolist(), strict=True))

    def events(self, n_steps: int) -> Iterator[MarketEvent]:
        """Yield the events of the next n_steps steps, ordered by timestamp.

        Each step yields, at the step's time, a Quote and (every ``book_every`` steps) a
        BookSnapshot per symbol, a SentimentReading per symbol every ``sentiment_every`` steps,
        then the step's trades of all symbols at increasing times inside the step. A step counts
        as consumed once its first event is yielded (abandoning mid-step skips its remainder).
        """
        if n_steps < 0:
            raise SimulationConfigError("n_steps must be >= 0")
        emitted = 0
        while emitted < n_steps:
            chunk_start = self._step_index - self._step_index % CHUNK_STEPS
            chunk = self._chunk_for(chunk_start)
            j = self._step_index - chunk_start
            self._step_index += 1
            emitted += 1
            yield from self._step_events(chunk, j, self._step_index - 1)

    async def stream(
        self,
        n_steps: int | None = None,
        speed: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> AsyncIterator[MarketEvent]:
        """Yield events paced in real time at ``speed``x (0 or inf: as fast as possible).

        ``clock`` (seconds, monotonic) and ``sleep`` are injectable so tests run without waiting;
        n_steps=None streams forever.
        """
        if speed < 0 or math.isnan(speed):
            raise SimulationConfigError(f"speed must be >= 0, got {speed}")
        unpaced = speed == 0 or math.isinf(speed)
        wall0: float | None = None
        sim0: datetime | None = None
        produced = 0
        while n_steps is None or produced < n_steps:
            batch = CHUNK_STEPS if n_steps is None else min(CHUNK_STEPS, n_steps - produced)
            produced += batch
            for seen, event in enumerate(self.events(batch)):
                if unpaced:
                    if seen % UNPACED_YIELD_EVERY == 0:
                        await sleep(0)  # let consumers and timers run between bursts
                else:
                    if wall0 is None or sim0 is None:
                        wall0, sim0 = clock(), event.ts
                    delay = wall0 + (event.ts - sim0).total_seconds() / speed - clock()
                    if delay > 0:
                        await sleep(delay)
                yield event

    def history_bars(
        self,
        symbols: str | Sequence[str] | None,
        timeframe: str,
        start: datetime,
        end: datetime,
    ) -> pd.DataFrame:
        """Return simulated bars with ts in [start, end) as a long DataFrame (vectorised).

        Columns: ts (UTC), symbol, open, high, low, close, volume, vwap, trade_count; sorted by
        ts then symbol. Prices equal the base prices at the market's ``start`` and the same
        (seed, timeframe, window) always gives the same bar, whatever range is requested.
        """
        from marketdata.engine.history import history_bars

        return history_bars(self.profile, symbols, timeframe, start, end)

    # -- generation --------------------------------------------------------------------------

    def _chunk_for(self, chunk_start: int) -> _Chunk:
        """Return the chunk starting at chunk_start, generating it (in order) when first needed."""
        cached = self._chunk
        if cached is not None and cached[0] == chunk_start:
            return cached[1]
        chunk = self._generate_chunk()
        self._chunk = (chunk_start, chunk)
        return chunk

    def _generate_chunk(self) -> _Chunk:
        """Draw CHUNK_STEPS steps of returns, regimes, books, sentiment and trades."""
        n, k = CHUNK_STEPS, len(self.specs)
        rng, profile = self._rng, self.profile
        regimes = regime_path(rng, n, profile.step_seconds, self._regime)
        self._regime = int(regimes[-1])
        vol_mult = np.asarray(REGIME_VOL_MULTIPLIERS)[regimes][:, None]
        rets = (rng.standard_normal((n, k)) @ profile.chol.T) * profile.sigma(profile.step_seconds)
        rets *= vol_mult
        jumps = rng.random(n) < profile.jump_probability(profile.step_seconds)
        jump_size = rng.standard_normal(n)[:, None] * (0.8 + 0.4 * rng.random((n, k)))
        rets += jumps[:, None] * jump_size * profile.jump_sigma()
        # The quote of step j is posted at its start, before the step's move.
        log_mid = self._log_mid + np.vstack([np.zeros(k), np.cumsum(rets, axis=0)[:-1]])
        self._log_mid = self._log_mid + rets.sum(axis=0)
        sentiment = self._sentiment_path(rng, n)
        if profile.pairs:  # drawn last: a market without planted pairs keeps its old streams
            log_mid, rets = self._plant(rng, log_mid, rets)
        step_sigma = profile.sigma(profile.step_seconds) * vol_mult
        tilt = SIDE_RETURN_TILT * np.tanh(rets / step_sigma) + SIDE_SENTIMENT_TILT * sentiment
        for i, _ in profile.impacts:  # exogenous flow: the planted coefficient is causal
            tilt[:, i] = SIDE_SENTIMENT_TILT * sentiment[:, i]
        p_buy = np.clip(0.5 + tilt, 0.05, 0.95)
        return self._build_chunk(rng, np.exp(log_mid), regimes, sentiment, p_buy)

    def _plant(
        self, rng: np.random.Generator, log_mid: np.ndarray, rets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rewrite the chunk's followers from their leaders; return quotes' log mids, returns."""
        n, seconds = len(rets), self.profile.step_seconds
        path = np.vstack([log_mid, self._log_mid])  # log mids before each step and after the last
        spreads = np.empty((n + 1, len(self.profile.pairs)))
        for idx, (_, _, pair) in enumerate(self.profile.pairs):
            spreads[0, idx] = self._spreads[idx]
            spreads[1:, idx] = ou_path(
                rng, n, pair.decay(seconds), pair.spread_sigma, self._spreads[idx]
            )
        self._spreads = spreads[-1].copy()
        self.profile.plant(path, spreads)
        self._log_mid = path[-1]
        return path[:-1], np.diff(path, axis=0)

    def _sentiment_path(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Advance the OU sentiment latents n steps; return tanh(latent) per step and symbol."""
        dt_hours = self.profile.step_seconds / 3600.0
        theta = SENTIMENT_MEAN_REVERSION_PER_HOUR
        decay = math.exp(-theta * dt_hours)
        # Exact OU transition: stationary std is vol / sqrt(2 theta) ~ 0.5 -> tanh mostly in ±0.5.
        shock_std = SENTIMENT_VOL_PER_SQRT_HOUR * math.sqrt((1 - decay**2) / (2 * theta))
        shocks = rng.standard_normal((n, len(self.specs))) * shock_std
        x = self._sentiment_x
        path = np.empty_like(shocks)
        for j in range(n):
            path[j] = x
            x = x * decay + shocks[j]
        self._sentiment_x = x
        return np.tanh(path)

    def _build_chunk(
        self,
        rng: np.random.Generator,
        mids: np.ndarray,
        regimes: np.ndarray,
        sentiment: np.ndarray,
        p_buy: np.ndarray,
    ) -> _Chunk:
        """Derive trades and books from the chunk's mids (n x k) and buy probabilities."""
        n, k = mids.shape
        lam = self.profile.trades_per_step * np.asarray(REGIME_VOLUME_MULTIPLIERS)[regimes]
        counts = rng.poisson(np.broadcast_to(lam[:, None], (n, k)))
        cell = np.repeat(np.arange(n * k), counts.ravel())  # (step, symbol) cell of each trade
        total = cell.size
        step_us = int(round(self.profile.step_seconds * 1e6))
        offsets = 1 + (rng.random(total) * max(step_us - 1, 1)).astype(np.int64)
        buys = rng.random(total) < p_buy.ravel()[cell]
        sizes = self._trade_sizes(rng, cell % k, total)
        order = np.lexsort((offsets, cell // k))
        cell, offsets, buys, sizes = cell[order], offsets[order], buys[order], sizes[order]
        buy_vol = np.bincount(cell[buys], weights=sizes[buys], minlength=n * k).reshape(n, k)
        sell_vol = np.bincount(cell[~buys], weights=sizes[~buys], minlength=n * k).reshape(n, k)
        if self.profile.impacts:
            mids = self._impact(mids, buy_vol - sell_vol)
        book = self._books(rng, mids, regimes, buy_vol, sell_vol)
        bid0 = book[0][:, :, 0].ravel()[cell]
        ask0 = book[2][:, :, 0].ravel()[cell]
        bounds = np.searchsorted(cell // k, np.arange(n + 1)).tolist()
        return _Chunk(
            bids=book[0].tolist(),
            bid_sizes=book[1].tolist(),
            asks=book[2].tolist(),
            ask_sizes=book[3].tolist(),
            sentiment=sentiment.tolist(),
            trade_bounds=bounds,
            trade_symbol=(cell % k).tolist(),
            trade_offset_us=offsets.tolist(),
            trade_price=np.where(buys, ask0, bid0).tolist(),
            trade_size=sizes.tolist(),
            trade_buy=buys.tolist(),
        )

    def _impact(self, mids: np.ndarray, net: np.ndarray) -> np.ndarray:
        """Shift impacted symbols' mids by the planted impact of all flow before each step."""
        mids = mids.copy()
        for i, impact in self.profile.impacts:
            moves = impact.coefficient * net[:, i]
            before = self._impact_offset[i] + np.concatenate([[0.0], np.cumsum(moves)[:-1]])
            # A price cannot go below one tick, however much is sold.
            mids[:, i] = np.maximum(mids[:, i] + before, self.specs[i].tick_size)
            self._impact_offset[i] += moves.sum()
        return mids

    def _trade_sizes(self, rng: np.random.Generator, symbol_idx: np.ndarray, total: int):
        """Draw lognormal trade sizes whose mean matches each symbol's daily volume."""
        steps_per_day = 86_400.0 / self.profile.step_seconds
        rate = max(self.profile.trades_per_step, 1e-9)
        per_trade = np.array([s.daily_volume / steps_per_day / rate for s in self.specs])
        mu = np.log(per_trade) - TRADE_SIZE_LOG_SIGMA**2 / 2
        raw = np.exp(mu[symbol_idx] + TRADE_SIZE_LOG_SIGMA * rng.standard_normal(total))
        return self._lots(raw, symbol_idx)

    def _lots(self, raw: np.ndarray, symbol_idx: np.ndarray) -> np.ndarray:
        """Round sizes to each symbol's lot size, at least one lot."""
        out = np.empty_like(raw)
        for i, spec in enumerate(self.specs):
            mask = symbol_idx == i
            out[mask] = _round_lots(raw[mask], spec.lot_size)
        return out

    def _books(
        self,
        rng: np.random.Generator,
        mids: np.ndarray,
        regimes: np.ndarray,
        buy_vol: np.ndarray,
        sell_vol: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Build 10-level books (bids, bid sizes, asks, ask sizes), each n x k x levels."""
        n, k = mids.shape
        levels = np.arange(BOOK_LEVELS)
        spread_bps = np.array([s.spread_bps for s in self.specs])
        widen = np.asarray(REGIME_SPREAD_MULTIPLIERS)[regimes][:, None]
        noise = np.exp(SPREAD_LOG_SIGMA * rng.standard_normal((n, k)))
        half = mids * spread_bps * 1e-4 / 2 * widen * noise
        depth = np.exp(BOOK_SIZE_LOG_SIGMA * rng.standard_normal((2, n, k, BOOK_LEVELS)))
        steps_per_day = 86_400.0 / self.profile.step_seconds
        bids = np.empty((n, k, BOOK_LEVELS))
        asks = np.empty_like(bids)
        bid_sizes = np.empty_like(bids)
        ask_sizes = np.empty_like(bids)
        for i, spec in enumerate(self.specs):
            tick = spec.tick_size
            best_bid = np.floor((mids[:, i] - half[:, i]) / tick) * tick
            best_ask = np.maximum(np.ceil((mids[:, i] + half[:, i]) / tick) * tick, best_bid + tick)
            gap = np.maximum(np.round(mids[:, i] * 0.5e-4 / tick), 1.0) * tick
            bids[:, i] = round_to(best_bid[:, None] - gap[:, None] * levels, tick)
            asks[:, i] = round_to(best_ask[:, None] + gap[:, None] * levels, tick)
            unit = spec.daily_volume / steps_per_day * (1.0 + 0.5 * levels)
            bid_sizes[:, i] = _round_lots(unit * depth[0, :, i], spec.lot_size)
            ask_sizes[:, i] = _round_lots(unit * depth[1, :, i], spec.lot_size)
            # The touch shows at least what trades against it during the step.
            bid_sizes[:, i, 0] = np.maximum(bid_sizes[:, i, 0], sell_vol[:, i])
            ask_sizes[:, i, 0] = np.maximum(ask_sizes[:, i, 0], buy_vol[:, i])
        return np.maximum(bids, 0.0), bid_sizes, asks, ask_sizes

    def _step_events(self, chunk: _Chunk, j: int, step_index: int) -> Iterator[MarketEvent]:
        """Yield one step's events: quotes/books/sentiment at the step time, then trades."""
        ts = self.profile.anchor + self.step * step_index
        venue = self.venue
        with_book = step_index % self.book_every == 0
        with_sentiment = step_index % self.sentiment_every == 0
        for i, symbol in enumerate(self.symbols):
            bids, bid_sizes = chunk.bids[j][i], chunk.bid_sizes[j][i]
            asks, ask_sizes = chunk.asks[j][i], chunk.ask_sizes[j][i]
            yield Quote(symbol, ts, bids[0], bid_sizes[0], asks[0], ask_sizes[0], venue)
            if with_book:
                book_bids = tuple((p, s) for p, s in zip(bids, bid_sizes, strict=True) if p > 0)
                book_asks = tuple(zip(asks, ask_sizes, strict=True))
                yield BookSnapshot(symbol, ts, book_bids, book_asks, venue, step_index)
            if with_sentiment:
                yield _sentiment_reading(symbol, ts, chunk.sentiment[j][i])
        yield from self._step_trades(chunk, j, ts)

    def _step_trades(self, chunk: _Chunk, j: int, ts: datetime) -> Iterator[Trade]:
        """Yield the trades of step j in time order."""
        symbols, venue, ids = self.symbols, self.venue, self._trade_ids
        prefix = self._trade_id_prefix
        for t in range(chunk.trade_bounds[j], chunk.trade_bounds[j + 1]):
            i = chunk.trade_symbol[t]
            seq = next(ids[i])
            yield Trade(
                symbols[i],
                ts + timedelta(microseconds=chunk.trade_offset_us[t]),
                chunk.trade_price[t],
                chunk.trade_size[t],
                venue,
                f"{prefix}{seq}",
                _BUY if chunk.trade_buy[t] else _SELL,
                seq,
            )


def _round_lots(raw: np.ndarray, lot: float) -> np.ndarray:
    """Round sizes to a multiple of lot, at least one lot."""
    return np.maximum(round_to(raw, lot), lot)


def _sentiment_reading(symbol: str, ts: datetime, score: float) -> SentimentReading:
    """Wrap a sentiment score as a reading from three simulated sources."""
    label = "bullish" if score > 0.2 else "bearish" if score < -0.2 else "neutral"
    return SentimentReading(
        symbol=symbol,
        ts=ts,
        source="sim",
        score=score,
        confidence=0.5 + 0.4 * abs(score),
        label=label,
        bullish=round(50 * (1 + score)),
        bearish=round(50 * (1 - score)),
        sources=3,
    )
