"""The research pages: model versions (activation for admins) and backtests (list, compare,
launch through ``POST /api/v1/backtests`` from the page's form, live progress bar, report)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from backtesting.models import BacktestRun
from backtesting.report_paths import report_script_path
from backtesting.run_control import may_control
from backtesting.run_selectors import backtest_run, backtest_runs
from marketdata.models import Symbol
from models_ml.models import MLModel
from models_ml.prediction_selectors import model_registry
from rrr_site.api.roles import Role, role_of
from rrr_site.pages.views import page_context, viewer_required
from trading.engine.strategies import available_strategies

HEADLINE = ["total_return", "sharpe", "sortino", "max_drawdown", "win_rate", "profit_factor",
            "trades"]  # fmt: skip
COMPARE_MAX = 6


@login_required
@viewer_required
def models_page(request: HttpRequest) -> HttpResponse:
    """Model versions, newest first, out-of-sample metrics beside the baselines."""
    context, _ = page_context(request, "models")
    rows = []
    for model in model_registry()[:100]:
        metrics = model.metrics if isinstance(model.metrics, dict) else {}
        rows.append(
            {
                "model": model,
                "oos": metrics.get("model") or {},
                "baselines": metrics.get("baselines") or {},
                "verdict": metrics.get("verdict"),
            }
        )
    context["models"] = rows
    return render(request, "pages/models.html", context)


@login_required
@require_POST
def model_activate_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Activate (or deactivate) a model version: admins only, audited by the service."""
    from models_ml.services import ModelWithoutEdge, model_activate, model_deactivate

    if role_of(request.user) < Role.ADMIN:
        return HttpResponse("Only admins activate models.", status=403)
    model = MLModel.objects.filter(pk=pk).first()
    if model is None:
        raise Http404("No such model")
    try:
        if request.POST.get("active") == "0":
            model_deactivate(model=model, actor=request.user)
            messages.success(request, f"{model} deactivated.")
        else:
            model_activate(model=model, actor=request.user, force=request.POST.get("force") == "1")
            messages.success(request, f"{model} is now active.")
    except ModelWithoutEdge as exc:
        messages.error(request, str(exc))
    return redirect("pages-models")


def _headline(run: BacktestRun) -> dict:
    metrics = run.metrics if isinstance(run.metrics, dict) else {}
    baseline = metrics.get("buy_and_hold") or metrics.get("baseline") or {}
    return {
        "run": run,
        "metrics": {k: metrics.get(k) for k in HEADLINE},
        "baseline": {k: baseline.get(k) for k in HEADLINE} if isinstance(baseline, dict) else {},
    }


def _run_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and 0 < int(text) < 2**63


def _user_strategies(shown: set[str]) -> list[str]:
    """Return the names of the classes in STRATEGY_PATHS, which the API takes by name too."""
    from rrr_site.api.strategy_names import NAME
    from trading.engine import user_strategies

    found, _ = user_strategies.scan()  # a file that fails to import is `strategy list`'s to tell
    names = sorted({u.name for u in found if NAME.fullmatch(u.name)} - shown)
    return [n for n in names if sum(u.name == n for u in found) == 1]  # defined once only


@login_required
@viewer_required
def backtests_page(request: HttpRequest) -> HttpResponse:
    """Recent runs with headline figures; ``?compare=1,2`` sets runs side by side."""
    context, _ = page_context(request, "backtests")
    runs = [_headline(r) for r in backtest_runs().order_by("-created_at")[:50]]
    # Run ids in ASCII digits that fit a primary key: a 23-digit id overflowed the database's
    # integer (a 500), and str.isdigit() also takes other scripts' digits.
    ids = [int(x) for x in request.GET.get("compare", "").split(",") if _run_id(x.strip())]
    compared = [_headline(r) for r in BacktestRun.objects.filter(pk__in=ids[:COMPARE_MAX])]
    today = date.today()
    strategies = [x for x in available_strategies() if x not in {"model_signal", "pairs"}]
    strategies += _user_strategies(set(strategies))
    symbols = list(Symbol.objects.filter(active=True).values_list("name", flat=True))
    context.update(
        runs=runs,
        compared=compared,
        headline=HEADLINE,
        strategies=strategies,
        symbols=symbols,
        # A first run that works with nothing stored: sma_cross on BTC-USD's simulated bars
        # (the first names sorted, bollinger_breakout on AVAX-USD's stored bars, had none).
        default_strategy="sma_cross" if "sma_cross" in strategies else strategies[0],
        default_symbol="BTC-USD" if "BTC-USD" in symbols or not symbols else symbols[0],
        default_start=(today - timedelta(days=7)).isoformat(),
        default_end=today.isoformat(),
    )
    return render(request, "pages/backtests.html", context)


@login_required
@viewer_required
def backtest_page(request: HttpRequest, pk: int) -> HttpResponse:
    """One run: live progress while it runs, then its figures beside buy-and-hold and report."""
    context, _ = page_context(request, "backtests")
    run = backtest_run(pk=pk)
    if run is None:
        raise Http404("No such backtest")
    context.update(
        row=_headline(run),
        headline=HEADLINE,
        trials=list(backtest_runs(parent=run.pk).order_by("pk")[:50]) if run.optimize else [],
    )
    return render(request, "pages/backtest.html", context)


@login_required
def backtest_report(request: HttpRequest, pk: int) -> HttpResponse:
    """Serve the run's offline HTML report to its owner, staff and admins (as the API does)."""
    run = backtest_run(pk=pk)
    if run is None or not run.report_path or not may_control(request.user, run):
        raise Http404("No report")
    root = Path(settings.REPORTS_DIR).resolve()
    path = Path(run.report_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise Http404("No report")
    return FileResponse(path.open("rb"), content_type="text/html")


@login_required
def backtest_report_script(request: HttpRequest, pk: int, version: str) -> HttpResponse:
    """plotly.js beside the run's report: the page loads it by a relative URL."""
    run = backtest_run(pk=pk)
    if run is None or not may_control(request.user, run):
        raise Http404("No report")
    path = report_script_path(run.report_path, f"plotly-{version}.min.js")
    if path is None:
        raise Http404("No report")
    return FileResponse(path.open("rb"), content_type="text/javascript; charset=utf-8")
