#!/usr/bin/env bash
# Create .venv-bench with the peers bench/backtest_peers.py compares against: backtesting.py and
# vectorbt (which pulls numba). They live in their own virtualenv because the PyPI package
# "backtesting" has the same import name as our Django app.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv-bench/bin/python ]; then
  "$PYTHON" -m venv .venv-bench
fi
.venv-bench/bin/python -m pip install -q --upgrade pip
# Same bounds as the "bench" extra in pyproject.toml.
# vectorbt 0.28 registers a plotly theme with "scattermapbox", which plotly 6 removed.
.venv-bench/bin/python -m pip install -q "backtesting>=0.4,<0.7" "vectorbt>=0.26,<1" "plotly<6" numpy pandas
.venv-bench/bin/python -c "from importlib.metadata import version as v; import backtesting, vectorbt; print('peers:', v('backtesting'), v('vectorbt'))"
