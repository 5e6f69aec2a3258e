"""Networks: shapes, causality of the temporal CNN, positional encoding, factory validation."""

from __future__ import annotations

import math

import pytest
import torch

from models_ml.engine.errors import NetworkConfigError
from models_ml.engine.networks import (
    NETWORK_KINDS,
    SinusoidalPositionalEncoding,
    TemporalCNN,
    build_network,
    resolve_hparams,
)


@pytest.mark.parametrize("kind", NETWORK_KINDS)
def test_each_network_returns_a_logit_and_a_return_per_window(kind: str) -> None:
    torch.manual_seed(0)
    net = build_network(kind, n_features=7)
    x = torch.randn(5, 64, 7)
    logit, ret = net(x)
    assert logit.shape == (5,) and ret.shape == (5,)
    assert torch.isfinite(logit).all() and torch.isfinite(ret).all()
    assert sum(p.numel() for p in net.parameters()) < 100_000  # small enough for ms inference
    (logit.sum() + ret.sum()).backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("kind", NETWORK_KINDS)
def test_networks_use_the_order_of_the_window(kind: str) -> None:
    torch.manual_seed(1)
    net = build_network(kind, n_features=3, dropout=0.0).eval()
    x = torch.randn(1, 16, 3)
    reversed_x = x.flip(1)
    with torch.inference_mode():
        assert not torch.allclose(net(x)[0], net(reversed_x)[0])


def test_temporal_cnn_is_causal() -> None:
    torch.manual_seed(2)
    net = TemporalCNN(4, channels=8, kernel_size=3, n_layers=3, dropout=0.0).eval()
    x = torch.randn(2, 40, 4)
    changed = x.clone()
    changed[:, 25:] = torch.randn(2, 15, 4)  # rewrite the "future" after step 24
    with torch.inference_mode():
        a, b = net.sequence(x), net.sequence(changed)
    torch.testing.assert_close(a[:, :, :25], b[:, :, :25])
    assert not torch.allclose(a[:, :, 25:], b[:, :, 25:])
    assert net.receptive_field == 1 + 2 * 2 * (1 + 2 + 4)


def test_sinusoidal_encoding_values() -> None:
    pe = SinusoidalPositionalEncoding(d_model=8, max_len=50)
    out = pe(torch.zeros(1, 10, 8))[0]
    assert out[0, 0] == 0.0 and out[0, 1] == 1.0
    assert math.isclose(out[3, 2].item(), math.sin(3 / 10000 ** (2 / 8)), rel_tol=1e-6)
    assert math.isclose(out[3, 3].item(), math.cos(3 / 10000 ** (2 / 8)), rel_tol=1e-6)
    with pytest.raises(NetworkConfigError):
        pe(torch.zeros(1, 51, 8))


def test_factory_validates_kind_hparams_and_device() -> None:
    with pytest.raises(NetworkConfigError, match="unknown network kind"):
        build_network("gru", 3)
    with pytest.raises(NetworkConfigError, match="unknown hyperparameter"):
        build_network("lstm", 3, d_model=8)
    with pytest.raises(NetworkConfigError, match="divisible"):
        build_network("transformer", 3, d_model=30, n_heads=4)
    with pytest.raises(NetworkConfigError, match="device"):
        build_network("cnn", 3, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(NetworkConfigError, match="CUDA"):
            build_network("cnn", 3, device="cuda")
    assert resolve_hparams("lstm", {"hidden": 8})["hidden"] == 8
