"""Parameter search (grid, random, genetic) and walk-forward analysis.

Searches never run a backtest themselves: they hand *batches* of parameter sets to a
``BatchEvaluator`` and read back one metrics dict per set. ``sequential(evaluate_params)`` runs
them in-process; the Django side plugs in an evaluator that sends every set of a batch to its
own django-q2 task (one group) and waits for the results. Grid and random search are one batch;
a genetic search is one batch per generation. ``evaluate_params`` is the picklable per-set entry
point such a task calls.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd

from backtesting.engine.errors import BacktestConfigError
from backtesting.engine.metrics import summarize
from backtesting.engine.runner import (
    BacktestConfig,
    BarData,
    periods_per_year,
    prepare_bars,
    run_backtest,
)
from backtesting.engine.vectorised import bar_cache, run_vectorised, vectorised_class
from trading.engine.strategies import create_strategy

Params = dict[str, Any]
Metrics = Mapping[str, float]
BatchEvaluator = Callable[[Sequence[Params]], Sequence[Metrics]]
Objective = str | Callable[[Metrics], float]
Constraint = Callable[[Params], bool]

# Which way each metric ``summarize`` reports improves: +1 higher is better, -1 lower is better,
# 0 neither (it describes a run, it does not rank it). Risk metrics are positive magnitudes in
# ``metrics.py`` (a 20 % drawdown is 0.2, VaR/CVaR are positive losses), so lower is better;
# ``average_loss`` and ``worst_trade`` are negative numbers, so higher (nearer zero) is better.
OBJECTIVE_DIRECTIONS: dict[str, int] = {
    **dict.fromkeys(
        ("total_return", "annualised_return", "cagr", "sharpe", "sortino", "calmar", "omega"), 1
    ),
    **dict.fromkeys(("skew", "final_equity", "win_rate", "profit_factor", "expectancy"), 1),
    **dict.fromkeys(("average_win", "average_loss", "best_trade", "worst_trade"), 1),
    **dict.fromkeys(("average_trade", "sqn", "kelly", "alpha"), 1),
    **dict.fromkeys(("probabilistic_sharpe", "deflated_sharpe"), 1),
    **dict.fromkeys(("volatility", "max_drawdown", "max_drawdown_duration"), -1),
    **dict.fromkeys(("var_95", "cvar_95", "kurtosis"), -1),
    **dict.fromkeys(("trades", "exposure_time", "turnover", "beta"), 0),
}


# ----------------------------------------------------------------- search spaces


@dataclass(frozen=True, slots=True)
class IntRange:
    """Integers ``low``..``high`` inclusive, every ``step``."""

    low: int
    high: int
    step: int = 1

    def __post_init__(self) -> None:
        if not all(isinstance(v, Integral) for v in (self.low, self.high, self.step)):
            raise BacktestConfigError(f"IntRange needs integers, got {self}")
        if self.step < 1 or self.low > self.high:
            raise BacktestConfigError(f"IntRange needs low <= high and step >= 1, got {self}")

    def values(self) -> list[int]:
        """Return every value (grid)."""
        return list(range(self.low, self.high + 1, self.step))

    def size(self) -> int:
        """Return how many grid values there are (without listing them)."""
        return len(range(self.low, self.high + 1, self.step))

    def sample(self, rng: random.Random) -> int:
        """Return a random value."""
        return rng.choice(self.values())


@dataclass(frozen=True, slots=True)
class FloatRange:
    """Floats in [``low``, ``high``]; a grid uses ``num`` evenly spaced points."""

    low: float
    high: float
    num: int = 5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise BacktestConfigError(f"FloatRange needs finite low <= high, got {self}")
        # A float here is almost always a step passed where a count belongs (use ``stepped``).
        if isinstance(self.num, bool) or not isinstance(self.num, int) or self.num < 1:
            raise BacktestConfigError(f"FloatRange needs an integer num >= 1, got {self.num!r}")

    @classmethod
    def stepped(cls, low: float, high: float, step: float) -> FloatRange:
        """Return the range ``low``, ``low + step``, ... up to ``high`` (inclusive)."""
        if not (math.isfinite(step) and step > 0):
            raise BacktestConfigError(f"FloatRange step must be a positive number, got {step!r}")
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise BacktestConfigError(f"FloatRange needs finite low <= high, got {low}:{high}")
        # The tolerance keeps 1.5:3.0:0.5 at four points despite binary rounding.
        return cls(float(low), float(high), int(math.floor((high - low) / step + 1e-9)) + 1)

    def values(self) -> list[float]:
        """Return the grid points."""
        # Rounded so that stepped grids give 2.5, not 2.5000000000000004, as parameters.
        return [round(v, 12) for v in np.linspace(self.low, self.high, self.num).tolist()]

    def size(self) -> int:
        """Return how many grid points there are."""
        return self.num

    def sample(self, rng: random.Random) -> float:
        """Return a uniform random value."""
        return rng.uniform(self.low, self.high)


@dataclass(frozen=True, slots=True)
class Choice:
    """One of the given values."""

    options: tuple[Any, ...]

    def values(self) -> list[Any]:
        """Return every option."""
        return list(self.options)

    def size(self) -> int:
        """Return how many options there are."""
        return len(self.options)

    def sample(self, rng: random.Random) -> Any:
        """Return a random option."""
        return rng.choice(self.options)


Dimension = IntRange | FloatRange | Choice
ParamSpace = Mapping[str, Dimension | Sequence[Any]]


def _dimensions(space: ParamSpace) -> dict[str, Dimension]:
    if not space:
        raise BacktestConfigError("the search space is empty")
    dims: dict[str, Dimension] = {}
    for name, dim in space.items():
        if isinstance(dim, IntRange | FloatRange | Choice):
            dims[name] = dim
        else:
            options = tuple(dim)
            if not options:
                raise BacktestConfigError(f"parameter {name!r} has no values")
            dims[name] = Choice(options)
    return dims


def grid_size(space: ParamSpace) -> int:
    """Return how many combinations a grid over ``space`` has before any constraint."""
    return math.prod(dim.size() for dim in _dimensions(space).values())


def grid(space: ParamSpace, constraint: Constraint | None = None) -> list[Params]:
    """Return every combination of the space's values that satisfies ``constraint``."""
    dims = _dimensions(space)
    names = list(dims)
    combos = (
        dict(zip(names, c, strict=True))
        for c in itertools.product(*(dims[n].values() for n in names))
    )
    return [p for p in combos if constraint is None or constraint(p)]


# ----------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Trial:
    """One evaluated parameter set."""

    params: Params
    metrics: Metrics
    score: float


@dataclass(slots=True)
class SearchResult:
    """All trials of a search, best first by ``best``."""

    method: str
    objective: str
    maximize: bool
    trials: list[Trial] = field(default_factory=list)
    generations: list[float] = field(default_factory=list)  # best score after each generation

    @property
    def best(self) -> Trial:
        """Return the trial with the best finite score."""
        scored = [t for t in self.trials if math.isfinite(t.score)]
        if not scored:
            raise BacktestConfigError("no trial produced a finite objective value")
        pick = max if self.maximize else min
        return pick(scored, key=lambda t: t.score)

    def sharpes(self) -> list[float]:
        """Return every trial's per-period Sharpe, if reported (input of the deflated Sharpe)."""
        return [float(t.metrics["sharpe"]) for t in self.trials if "sharpe" in t.metrics]

    def to_frame(self) -> pd.DataFrame:
        """Return one row per trial: parameters, score and metrics."""
        rows = [{**t.params, "score": t.score, **dict(t.metrics)} for t in self.trials]
        return pd.DataFrame(rows)


def objective_maximized(objective: Objective) -> bool:
    """Return True if a higher ``objective`` is better, False if lower is; refuse neither.

    A callable and a name the table does not know (a custom evaluator's score) are maximised.
    """
    if callable(objective):
        return True
    direction = OBJECTIVE_DIRECTIONS.get(objective, 1)
    if direction == 0:
        raise BacktestConfigError(
            f"objective {objective!r} ranks nothing (neither higher nor lower is better); "
            "choose a return, ratio or risk metric"
        )
    return direction > 0


def _scorer(objective: Objective) -> tuple[str, Callable[[Metrics], float]]:
    if callable(objective):
        return getattr(objective, "__name__", "custom"), objective
    return objective, lambda m: float(m.get(objective, math.nan))


class _Book:
    """Evaluates parameter sets in batches, remembering every result."""

    def __init__(
        self, evaluate: BatchEvaluator, objective: Objective, maximize: bool | None
    ) -> None:
        self.evaluate = evaluate
        self.name, self.score_of = _scorer(objective)
        # None: the objective's own direction (max_drawdown is minimised, sharpe maximised).
        self.maximize = objective_maximized(objective) if maximize is None else maximize
        self.seen: dict[tuple[tuple[str, Any], ...], Trial] = {}
        self.trials: list[Trial] = []

    def run(self, batch: Iterable[Params]) -> list[Trial]:
        """Evaluate the sets not seen yet (one batch); return the trials of ``batch``."""
        todo = {_key(p): dict(p) for p in batch if _key(p) not in self.seen}
        results = list(self.evaluate(list(todo.values()))) if todo else []
        if len(results) != len(todo):
            raise BacktestConfigError("the evaluator returned a different number of results")
        for (key, params), metrics in zip(todo.items(), results, strict=True):
            score = float(self.score_of(metrics))
            trial = Trial(params, dict(metrics), score if math.isfinite(score) else math.nan)
            self.seen[key] = trial
            self.trials.append(trial)
        return [self.seen[_key(p)] for p in batch]

    def fitness(self, trial: Trial) -> float:
        """Return a score to maximise (NaN ranks last)."""
        if not math.isfinite(trial.score):
            return -math.inf
        return trial.score if self.maximize else -trial.score

    def result(self, method: str) -> SearchResult:
        """Return every trial so far."""
        return SearchResult(method, self.name, self.maximize, list(self.trials))


def _key(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


# ----------------------------------------------------------------- searches


def grid_search(
    space: ParamSpace,
    evaluate: BatchEvaluator,
    objective: Objective = "sharpe",
    *,
    maximize: bool | None = None,
    constraint: Constraint | None = None,
) -> SearchResult:
    """Evaluate every combination of the space (one batch)."""
    book = _Book(evaluate, objective, maximize)
    combos = grid(space, constraint)
    if not combos:
        raise BacktestConfigError("no parameter combination satisfies the constraint")
    book.run(combos)
    return book.result("grid")


def _sample(
    dims: Mapping[str, Dimension], rng: random.Random, constraint: Constraint | None
) -> Params:
    for _ in range(1000):
        params = {name: dim.sample(rng) for name, dim in dims.items()}
        if constraint is None or constraint(params):
            return params
    raise BacktestConfigError("could not draw a parameter set satisfying the constraint")


def random_search(
    space: ParamSpace,
    evaluate: BatchEvaluator,
    objective: Objective = "sharpe",
    *,
    n_iter: int = 50,
    seed: int = 0,
    maximize: bool | None = None,
    constraint: Constraint | None = None,
) -> SearchResult:
    """Evaluate ``n_iter`` random draws from the space (seeded; one batch)."""
    rng = random.Random(seed)
    dims = _dimensions(space)
    book = _Book(evaluate, objective, maximize)
    book.run([_sample(dims, rng, constraint) for _ in range(n_iter)])
    return book.result("random")


@dataclass(frozen=True, slots=True)
class GeneticSettings:
    """Population size, generations and operators of the genetic search."""

    population: int = 20
    generations: int = 10
    elite: int = 2
    tournament: int = 3
    crossover_rate: float = 0.9
    mutation_rate: float = 0.2

    def __post_init__(self) -> None:
        if self.population < 2 or self.generations < 1:
            raise BacktestConfigError("genetic search needs population >= 2 and generations >= 1")
        if not 0 <= self.elite < self.population:
            raise BacktestConfigError("elite must be in [0, population)")


def genetic_search(
    space: ParamSpace,
    evaluate: BatchEvaluator,
    objective: Objective = "sharpe",
    *,
    settings: GeneticSettings | None = None,
    seed: int = 0,
    maximize: bool | None = None,
    constraint: Constraint | None = None,
) -> SearchResult:
    """Evolve parameter sets: tournament selection, uniform crossover, mutation, elitism."""
    cfg = settings or GeneticSettings()
    rng = random.Random(seed)
    dims = _dimensions(space)
    book = _Book(evaluate, objective, maximize)
    population = [_sample(dims, rng, constraint) for _ in range(cfg.population)]
    history: list[float] = []
    for generation in range(cfg.generations):
        ranked = sorted(book.run(population), key=book.fitness, reverse=True)
        history.append(ranked[0].score)
        if generation == cfg.generations - 1:
            break
        population = [dict(t.params) for t in ranked[: cfg.elite]]
        while len(population) < cfg.population:
            population.append(_offspring(ranked, dims, rng, cfg, book, constraint))
    result = book.result("genetic")
    result.generations = history
    return result


def _offspring(
    ranked: Sequence[Trial],
    dims: Mapping[str, Dimension],
    rng: random.Random,
    cfg: GeneticSettings,
    book: _Book,
    constraint: Constraint | None,
) -> Params:
    for _ in range(100):
        mother = _tournament(ranked, rng, cfg.tournament, book)
        father = _tournament(ranked, rng, cfg.tournament, book)
        child = dict(mother.params)
        if rng.random() < cfg.crossover_rate:
            child = {k: (mother.params if rng.random() < 0.5 else father.params)[k] for k in dims}
        for name, dim in dims.items():
            if rng.random() < cfg.mutation_rate:
                child[name] = dim.sample(rng)
        if constraint is None or constraint(child):
            return child
    return _sample(dims, rng, constraint)


def _tournament(ranked: Sequence[Trial], rng: random.Random, size: int, book: _Book) -> Trial:
    contenders = [ranked[rng.randrange(len(ranked))] for _ in range(max(1, size))]
    return max(contenders, key=book.fitness)


def search(
    method: str,
    space: ParamSpace,
    evaluate: BatchEvaluator,
    objective: Objective = "sharpe",
    **kwargs: Any,
) -> SearchResult:
    """Run the search named ``method`` (grid, random or genetic)."""
    searches: dict[str, Callable[..., SearchResult]] = {
        "grid": grid_search,
        "random": random_search,
        "genetic": genetic_search,
    }
    if method not in searches:
        raise BacktestConfigError(f"unknown search method {method!r}; use grid, random, genetic")
    return searches[method](space, evaluate, objective, **kwargs)


def sweep_selection(equity: np.ndarray, winner: int, *, max_blocks: int = 16) -> dict[str, Any]:
    """Return the sweep's PBO (CSCV) and its winner's deflated Sharpe from the trials' equity.

    ``equity`` holds one column per trial, sampled at the same times (rows); ``winner`` is the
    column the search picked. PBO splits the period returns into up to ``max_blocks`` even
    blocks; the deflated Sharpe benchmarks the winner against the luck of all the trials.
    """
    # Imported here: the research statistics pull in arch and statsmodels, needed by sweeps only.
    from backtesting.engine.metrics import deflated_sharpe
    from research.engine.hypothesis import pbo_cscv, pbo_walk_forward

    values = np.asarray(equity, dtype=float)
    if values.ndim != 2 or values.shape[1] < 2 or not 0 <= winner < values.shape[1]:
        raise BacktestConfigError("sweep selection needs the equity of >= 2 trials and a winner")
    returns = values[1:] / values[:-1] - 1.0
    periods = returns.shape[0]
    blocks = min(max_blocks, periods - periods % 2)
    if periods < 20 or not np.isfinite(returns).all():
        raise BacktestConfigError("sweep selection needs >= 20 finite returns per trial")
    sd = returns.std(axis=0, ddof=1)
    sharpes = np.divide(returns.mean(axis=0), sd, out=np.zeros(returns.shape[1]), where=sd > 0)
    return {
        "pbo": pbo_cscv(returns, blocks=blocks),
        # The same pick judged only on the block after its in-sample window (time order).
        "pbo_walk_forward": pbo_walk_forward(returns, blocks=blocks),
        "deflated_sharpe": float(deflated_sharpe(returns[:, winner], sharpes)),
        "winner_sharpe": float(sharpes[winner]),
        "trials": int(returns.shape[1]),
        "periods": int(periods),
        "blocks": int(blocks),
    }


# ----------------------------------------------------------------- evaluating one set


def evaluate_params(
    strategy: str,
    bars: pd.DataFrame | BarData,
    params: Mapping[str, Any],
    config: BacktestConfig | None = None,
    *,
    engine: str = "vectorised",
) -> dict[str, float]:
    """Backtest one parameter set and return its metrics (the unit a sweep task runs)."""
    if engine == "vectorised":
        return run_vectorised(strategy, bars, params, config).metrics
    if engine == "event":
        return run_backtest(create_strategy(strategy, **params), bars, config).metrics
    raise BacktestConfigError(f"unknown engine {engine!r}; use vectorised or event")


def sequential(evaluate_one: Callable[[Params], Metrics]) -> BatchEvaluator:
    """Return a batch evaluator that evaluates each set in turn, in this process."""

    def run(batch: Sequence[Params]) -> list[Metrics]:
        return [evaluate_one(p) for p in batch]

    return run


def local_evaluator(
    strategy: str,
    bars: pd.DataFrame | BarData,
    config: BacktestConfig | None = None,
    *,
    engine: str = "vectorised",
) -> BatchEvaluator:
    """Return an in-process batch evaluator of ``strategy`` on ``bars``."""
    data = bars if isinstance(bars, BarData) else prepare_bars(bars)
    if engine != "vectorised":
        return sequential(lambda p: evaluate_params(strategy, data, p, config, engine=engine))
    vectorised_class(strategy)  # refuse what the vectorised path cannot run before any set
    cache = bar_cache(data)  # indicators shared by every set of the sweep
    return sequential(lambda p: run_vectorised(strategy, data, p, config, cache=cache).metrics)


# ----------------------------------------------------------------- walk-forward


@dataclass(frozen=True, slots=True)
class Window:
    """One walk-forward step: optimise on [train_start, train_stop), test on the next part.

    Bounds count distinct bar timestamps, not rows, so several symbols stay together.
    """

    index: int
    train_start: int
    train_stop: int
    test_start: int
    test_stop: int


def walk_forward_windows(
    n: int, *, train: int, test: int, step: int | None = None, anchored: bool = False
) -> list[Window]:
    """Return rolling (or anchored: training always from 0) windows over ``n`` timestamps."""
    step = step or test
    if train < 2 or test < 1 or step < 1:
        raise BacktestConfigError("walk-forward needs train >= 2, test >= 1 and step >= 1")
    if train + test > n:
        raise BacktestConfigError(f"train + test ({train + test}) exceeds the {n} bars")
    windows, start = [], 0
    while start + train + test <= n:
        stop = start + train
        first = 0 if anchored else start
        windows.append(Window(len(windows), first, stop, stop, stop + test))
        start += step
    return windows


@dataclass(slots=True)
class WindowOutcome:
    """What one window chose and how it did out of sample."""

    window: Window
    params: Params
    in_sample_score: float
    oos_metrics: Metrics
    oos_equity: pd.Series


@dataclass(slots=True)
class WalkForwardResult:
    """Stitched out-of-sample equity, its metrics and the path of chosen parameters."""

    windows: list[WindowOutcome]
    equity: pd.Series
    metrics: dict[str, float]

    def params_path(self) -> pd.DataFrame:
        """Return one row per window: test start, chosen params, in- and out-of-sample scores."""
        rows = []
        for w in self.windows:
            start = w.oos_equity.index[0] if len(w.oos_equity) else None
            oos = {f"oos_{k}": w.oos_metrics.get(k) for k in ("total_return", "sharpe")}
            rows.append({"test_start": start, **w.params, "in_sample": w.in_sample_score, **oos})
        return pd.DataFrame(rows)


def walk_forward(
    strategy: str,
    bars: pd.DataFrame | BarData,
    space: ParamSpace,
    config: BacktestConfig | None = None,
    *,
    train: int,
    test: int,
    step: int | None = None,
    anchored: bool = False,
    method: str = "grid",
    objective: Objective = "sharpe",
    maximize: bool | None = None,
    engine: str = "vectorised",
    evaluator_factory: Callable[[BarData], BatchEvaluator] | None = None,
    search_kwargs: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> WalkForwardResult:
    """Optimise in each training window, trade the winner in the test window, stitch the tests.

    ``progress(done, total)`` is called with the windows finished, 0 before the first.
    """
    cfg = config or BacktestConfig()
    data = bars if isinstance(bars, BarData) else prepare_bars(bars, cfg.timeframe)
    stamps = data.stamps()
    factory = evaluator_factory or (lambda d: local_evaluator(strategy, d, cfg, engine=engine))
    outcomes = []
    windows = walk_forward_windows(
        stamps.size, train=train, test=test, step=step, anchored=anchored
    )
    if progress is not None:
        progress(0, len(windows))
    for window in windows:
        train_data = _rows(data, stamps, window.train_start, window.train_stop)
        found = search(
            method,
            space,
            factory(train_data),
            objective,
            maximize=maximize,
            **dict(search_kwargs or {}),
        ).best
        test_data = _rows(data, stamps, window.test_start, window.test_stop)
        equity, metrics = _out_of_sample(strategy, test_data, found.params, cfg, engine)
        outcomes.append(WindowOutcome(window, found.params, found.score, metrics, equity))
        if progress is not None:
            progress(len(outcomes), len(windows))
    initial = float(cfg.initial_cash)
    stitched = stitch([o.oos_equity for o in outcomes], initial)
    ppy = cfg.periods_per_year or periods_per_year(data.timeframe)
    return WalkForwardResult(
        outcomes, stitched, summarize(stitched.to_numpy(), initial=initial, periods_per_year=ppy)
    )


def _rows(data: BarData, stamps: np.ndarray, first: int, stop: int) -> BarData:
    lo = int(np.searchsorted(data.ts, stamps[first], side="left"))
    hi = int(np.searchsorted(data.ts, stamps[stop - 1], side="right"))
    return data.slice(lo, hi)


def _out_of_sample(
    strategy: str, data: BarData, params: Params, config: BacktestConfig, engine: str
) -> tuple[pd.Series, Metrics]:
    if engine == "vectorised":
        res = run_vectorised(strategy, data, params, config)
        index = pd.DatetimeIndex(data.ts.astype("datetime64[ns]"), tz="UTC")
        return pd.Series(res.equity, index=index, name="equity"), res.metrics
    result = run_backtest(create_strategy(strategy, **params), data, config)
    return result.equity, result.metrics


def stitch(segments: Sequence[pd.Series], initial: float) -> pd.Series:
    """Chain equity segments that each start from ``initial`` into one compounded curve."""
    parts = []
    for seg in segments:
        values = seg.to_numpy(dtype=float)
        growth = np.concatenate([[initial], values])
        parts.append(pd.Series(growth[1:] / growth[:-1], index=seg.index))
    if not parts:
        return pd.Series(dtype=float, name="equity")
    ratios = pd.concat(parts)
    return (ratios.cumprod() * initial).rename("equity")
