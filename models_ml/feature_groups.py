"""Training on data groups beyond price: join their inputs point-in-time, report contributions.

``train --feature-groups price,sentiment,onchain,book,flow`` trains the model on the bars plus
the chosen groups' inputs (``marketdata.feature_inputs``, as of each bar's close) and reports,
on the same walk-forward folds, each group's out-of-sample contribution beside the price-only
set (``models_ml.engine.group_evaluation``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from marketdata.feature_inputs import GROUP_EXTRAS, feature_inputs_frame
from models_ml.engine.errors import DatasetError
from models_ml.engine.group_evaluation import evaluate_feature_groups


def with_feature_groups(
    bars: pd.DataFrame, spec: Any, symbol: str, timeframe: str, params: Any
) -> tuple[pd.DataFrame, Any, dict]:
    """Return (bars joined with the groups' inputs, the spec using them, the group report)."""
    groups = list(params.feature_groups)
    inputs = feature_inputs_frame(
        symbol=symbol, timeframe=timeframe, index=bars.index, groups=groups
    )
    joined = bars.join(inputs)
    extras = {e for g in groups for e in GROUP_EXTRAS[g]}
    if "vwap" in bars.columns:
        extras.add("vwap")
    try:
        report = evaluate_feature_groups(
            joined,
            {g: GROUP_EXTRAS[g] for g in groups},
            horizon=spec.horizon,
            folds=spec.n_folds,
            config=spec.feature_config,
        )
    except DatasetError as exc:
        report = {"error": str(exc)}
    report["groups"] = groups
    return joined, replace(spec, extras=tuple(sorted(extras))), report


def feature_group_lines(metrics: dict) -> list[str]:
    """Return the report's lines for the command's text output."""
    report = metrics.get("feature_groups")
    if not report:
        return []
    if "error" in report:
        return [f"feature groups: not evaluated ({report['error']})"]
    lines = [
        f"feature groups, logistic walk-forward on the same {report['test_rows']} test rows "
        f"({report['folds']} folds, horizon {report['horizon']}):",
        f"  {'features':<18} {'n':>3} {'accuracy':>9} {'auc':>7} {'log loss':>9} "
        f"{'d_acc':>7} {'d_auc':>7} {'coverage':>9}",
    ]
    for row in report["sets"]:
        flag = "  (little data: not meaningful)" if row["flagged"] else ""
        lines.append(
            f"  {row['features']:<18} {row['n_features']:>3} {row['accuracy']:>9.4f} "
            f"{row['auc']:>7.4f} {row['log_loss']:>9.4f} {row['delta_accuracy']:>+7.4f} "
            f"{row['delta_auc']:>+7.4f} {row['coverage']:>8.0%}{flag}"
        )
    base = report["baselines"]
    lines.append(
        f"  naive: always long accuracy {base['always_long']['accuracy']:.4f}, previous sign "
        f"accuracy {base['previous_sign']['accuracy']:.4f}"
    )
    return lines
