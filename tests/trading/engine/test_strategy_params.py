"""Every built-in strategy refuses parameters its indicators cannot work with, when built."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from trading.engine.errors import StrategyConfigError
from trading.engine.strategies import create_strategy

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        # sma_cross: two periods, fast < slow
        ("sma_cross", {"fast": 0, "slow": 10}, "fast must be >= 1"),
        ("sma_cross", {"fast": -3, "slow": 10}, "fast must be >= 1"),
        ("sma_cross", {"fast": 1, "slow": 1}, "slow must be >= 2"),
        ("sma_cross", {"fast": 20, "slow": 20}, "need 0 < fast < slow"),
        ("sma_cross", {"fast": 30, "slow": 10}, "need 0 < fast < slow"),
        ("sma_cross", {"fast": 2.5, "slow": 10}, "fast must be a whole number"),
        ("sma_cross", {"fast": NAN, "slow": 10}, "fast must be finite"),
        ("sma_cross", {"fast": "abc", "slow": 10}, "fast must be a number"),
        ("sma_cross", {"fast": True, "slow": 10}, "fast must be a number"),
        ("sma_cross", {"allow_short": "maybe"}, "allow_short must be true or false"),
        ("sma_cross", {"allow_short": 2}, "allow_short must be true or false"),
        # rsi_reversion: period >= 1, 0 < lower < upper < 100
        ("rsi_reversion", {"period": 0}, "period must be >= 1"),
        ("rsi_reversion", {"period": -14}, "period must be >= 1"),
        ("rsi_reversion", {"period": 7.5}, "period must be a whole number"),
        ("rsi_reversion", {"lower": 0}, "need 0 < lower < upper < 100"),
        ("rsi_reversion", {"lower": -5}, "need 0 < lower < upper < 100"),
        ("rsi_reversion", {"upper": 100}, "need 0 < lower < upper < 100"),
        ("rsi_reversion", {"lower": 70, "upper": 30}, "need 0 < lower < upper < 100"),
        ("rsi_reversion", {"lower": 50, "upper": 50}, "need 0 < lower < upper < 100"),
        ("rsi_reversion", {"upper": NAN}, "upper must be finite"),
        # bollinger_breakout: period >= 2, k > 0
        ("bollinger_breakout", {"period": 1}, "period must be >= 2"),
        ("bollinger_breakout", {"period": 0}, "period must be >= 2"),
        ("bollinger_breakout", {"k": 0}, "need k > 0"),
        ("bollinger_breakout", {"k": -1.5}, "need k > 0"),
        ("bollinger_breakout", {"k": NAN}, "k must be finite"),
        ("bollinger_breakout", {"k": INF}, "k must be finite"),
        ("bollinger_breakout", {"allow_short": "yes"}, "allow_short must be true or false"),
        # model_signal: threshold in [0.5, 1), min_confidence in [0, 1]
        ("model_signal", {"threshold": 0.3}, "threshold must be in [0.5, 1)"),
        ("model_signal", {"threshold": 1}, "threshold must be in [0.5, 1)"),
        ("model_signal", {"threshold": NAN}, "threshold must be finite"),
        ("model_signal", {"min_confidence": -0.1}, "min_confidence must be in [0, 1]"),
        ("model_signal", {"min_confidence": 1.5}, "min_confidence must be in [0, 1]"),
        # shared sizing: fraction and lot positive and finite
        ("sma_cross", {"fraction": 0}, "fraction must be positive"),
        ("rsi_reversion", {"fraction": -1}, "fraction must be positive"),
        ("bollinger_breakout", {"fraction": NAN}, "fraction must be finite"),
        ("model_signal", {"lot": 0}, "lot must be positive"),
        ("sma_cross", {"lot": "-0.001"}, "lot must be positive"),
    ],
)
def test_a_builtin_refuses_a_bad_parameter_with_its_name(name, params, message) -> None:
    with pytest.raises(StrategyConfigError, match=rf"^{name}: .*{re.escape(message)}"):
        create_strategy(name, **params)


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("sma_cross", {"fast": 1, "slow": 2}, {"fast": 1, "slow": 2}),
        ("sma_cross", {"fast": 5.0, "slow": np.int64(20)}, {"fast": 5, "slow": 20}),
        ("sma_cross", {"allow_short": "false"}, {"allow_short": False}),
        ("sma_cross", {"allow_short": "True"}, {"allow_short": True}),
        ("sma_cross", {"allow_short": np.True_}, {"allow_short": True}),
        ("rsi_reversion", {"period": 1, "lower": 0.5, "upper": 99.5}, {"period": 1}),
        ("rsi_reversion", {"period": 14.0}, {"period": 14}),
        ("bollinger_breakout", {"period": 2, "k": 0.1}, {"period": 2, "k": 0.1}),
        ("bollinger_breakout", {"allow_short": 0}, {"allow_short": False}),
        ("model_signal", {"threshold": 0.5, "min_confidence": 1}, {"threshold": 0.5}),
    ],
)
def test_edge_values_are_accepted_and_normalised(name, params, expected) -> None:
    strategy = create_strategy(name, **params)
    for key, value in expected.items():
        assert strategy.params[key] == value and type(strategy.params[key]) is type(value), key
