"""Research and optimisation runs whose process was killed are failed, not left running.

Each run's executor holds ``<kind>-run:<id>`` (``rrr_site.run_owner``, as single backtests and
training do) from before the claim to the stored outcome; a running run whose lock is free is
failed ("owner process died") by the kind's next run and by the every-minute takeover schedule.
"""

from __future__ import annotations

import pytest

from backtesting.sweep_takeover import sweeps_take_over
from models_ml.models import OptimizationRun
from models_ml.optimization import OptimizationRunFailed, optimization_run_execute
from research.models import ResearchRun
from research.services import RunNotPending, research_run_execute, research_runs_reap
from rrr_site.run_owner import OPTIMIZE, OWNER_DIED, RESEARCH, run_lock
from tests.rrr_site.stuck_runs import stuck_in_on_bar


def test_a_killed_research_study_is_failed_by_the_minute_schedule(subprocess_env, tmp_path):
    study = ("research", "overfitting", "--skip-checks", "--space", "n=1,2", "--symbols",
             "BTC-USD", "--timeframe", "1h", "--start", "2024-01-01", "--end", "2024-01-05",
             "--source", "sim", "--no-report")  # fmt: skip
    with stuck_in_on_bar(subprocess_env, tmp_path, *study):
        run = ResearchRun.objects.get()
        assert run.status == "running"
        assert research_runs_reap() == []  # its owner is alive: left alone
        sweeps_take_over()
        assert ResearchRun.objects.get().status == "running"
    # Before: "running" for ever on the dashboard and the API. The every-minute schedule reaps.
    sweeps_take_over()
    run.refresh_from_db()
    assert run.status == "failed" and run.error.startswith(OWNER_DIED)
    assert run.finished_at is not None


def _optimisation(status: str) -> OptimizationRun:
    return OptimizationRun.objects.create(kind="exact", problem="portfolio", status=status)


def _study(status: str) -> ResearchRun:
    return ResearchRun.objects.create(kind="stat_arb", symbols=["BTC-USD"], status=status)


@pytest.mark.parametrize(("make", "kind"), [(_optimisation, OPTIMIZE), (_study, RESEARCH)])
def test_a_running_run_is_reaped_only_when_its_lock_is_free(transactional_db, make, kind):
    alive, dead = make("running"), make("running")
    done = make("completed")
    owner = run_lock(kind, alive.pk)
    assert owner.acquire()
    try:
        sweeps_take_over()
        statuses = {r.pk: r.status for r in type(alive).objects.all()}
        assert statuses == {alive.pk: "running", dead.pk: "failed", done.pk: "completed"}
        assert type(dead).objects.get(pk=dead.pk).error == (
            f"{OWNER_DIED} (its lock {kind}:{dead.pk} was free while running)"
        )
    finally:
        owner.release()


def test_a_run_whose_lock_is_held_elsewhere_is_not_run_again(transactional_db):
    for make, kind, execute, refused in (
        (_optimisation, OPTIMIZE, optimization_run_execute, OptimizationRunFailed),
        (_study, RESEARCH, research_run_execute, RunNotPending),
    ):
        run = make("pending")
        other = run_lock(kind, run.pk)
        assert other.acquire()
        try:
            with pytest.raises(refused, match="is being run by"):
                execute(run=run)
            run.refresh_from_db()
            assert run.status == "pending"
        finally:
            other.release()
