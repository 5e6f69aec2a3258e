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


@pytest.mark.parametrize(
    ("n_layers", "n_heads", "window", "batch"),
    [(2, 4, 64, 1), (2, 4, 64, 33), (1, 2, 5, 7), (3, 8, 2, 4)],
)
def test_transformer_eval_path_equals_the_torch_encoder(
    n_layers: int, n_heads: int, window: int, batch: int
) -> None:
    torch.manual_seed(3)
    net = build_network("transformer", 6, n_layers=n_layers, n_heads=n_heads, d_model=16).eval()
    x = torch.randn(batch, window, 6)
    with torch.inference_mode():
        fast = net(x)
        last = net.encoder(net.position(net.embed(x)))[:, -1]  # nn.TransformerEncoder, every step
        reference = net.heads(net.norm(last))
    for got, want in zip(fast, reference, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # Saved artifacts hold nn.TransformerEncoder's keys: the eval path must keep reading them.
    assert f"encoder.layers.{n_layers - 1}.self_attn.in_proj_weight" in net.state_dict()


def test_transformer_train_mode_runs_the_torch_encoder_with_dropout() -> None:
    torch.manual_seed(4)
    net = build_network("transformer", 3, dropout=0.5).train()
    x = torch.randn(2, 8, 3)
    assert not torch.equal(net(x)[0], net(x)[0])  # dropout active: two draws differ
    net.eval()
    torch.testing.assert_close(net(x)[0], net(x)[0])


def test_cnn_step_outputs_equal_the_window_forward_within_the_receptive_field() -> None:
    torch.manual_seed(5)
    net = TemporalCNN(4, channels=8, kernel_size=3, n_layers=3, dropout=0.0).eval()
    rf = net.receptive_field  # 29
    series = torch.randn(1, 120, 4)
    with torch.inference_mode():
        logit, ret = net.step_outputs(series)
        for window in (rf, rf + 10):
            windows = series[0].unfold(0, window, 1).transpose(1, 2)  # every window, oldest first
            w_logit, w_ret = net(windows)
            torch.testing.assert_close(logit[0, window - 1 :], w_logit, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(ret[0, window - 1 :], w_ret, rtol=1e-5, atol=1e-5)
        half = rf // 2  # a window shorter than the receptive field pads zeros: outputs differ
        short = series[0].unfold(0, half, 1).transpose(1, 2)
        assert not torch.allclose(logit[0, half - 1 :], net(short)[0], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(("kernel_size", "n_layers", "window"), [(3, 4, 64), (2, 3, 5), (5, 2, 40)])
def test_cnn_single_window_path_equals_the_convolutions(
    kernel_size: int, n_layers: int, window: int
) -> None:
    torch.manual_seed(7)
    net = TemporalCNN(6, channels=12, kernel_size=kernel_size, n_layers=n_layers).eval()
    x = torch.randn(3, window, 6)
    with torch.inference_mode():
        batch = net(x)  # batches go through nn.Conv1d
        for i in range(3):
            single = net(x[i : i + 1])  # one window: matrix products
            torch.testing.assert_close(single[0], batch[0][i : i + 1], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(single[1], batch[1][i : i + 1], rtol=1e-5, atol=1e-5)


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
