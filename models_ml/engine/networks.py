"""Sequence networks: Transformer encoder, LSTM and temporal CNN with direction and return heads.

Every network maps a (batch, window, features) float32 tensor to ``(logit, ret)``, each (batch,):
``sigmoid(logit)`` is the probability the price is up over the horizon, ``ret`` the predicted
return in units of the training target's standard deviation (``training`` rescales it). Defaults
are small on purpose: single-window CPU inference must stay within a few milliseconds.

In eval mode the Transformer runs a leaner but equivalent encoder (``_encode_last``): the same
parameters through ``scaled_dot_product_attention``, and in the last layer only the last position
(the only one the heads read) is queried and fed forward. Training uses ``nn.TransformerEncoder``.
The temporal CNN computes one window in eval mode with matrix products instead of ``conv1d``, and
``step_outputs`` gives every step's output of a whole series (``training.predict_windows`` reads
windows' outputs from it). The state_dict keys are those of the plain modules either way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from models_ml.engine.errors import NetworkConfigError

NETWORK_KINDS = ("transformer", "lstm", "cnn")

DEFAULT_HPARAMS: dict[str, dict[str, Any]] = {
    "transformer": {"d_model": 32, "n_heads": 4, "n_layers": 2, "ff_mult": 2, "dropout": 0.1},
    "lstm": {"hidden": 48, "n_layers": 2, "dropout": 0.1},
    "cnn": {"channels": 32, "kernel_size": 3, "n_layers": 4, "dropout": 0.1},
}


class SinusoidalPositionalEncoding(nn.Module):
    """Add the fixed sine/cosine position signal of "Attention Is All You Need"."""

    def __init__(self, d_model: int, max_len: int = 1024) -> None:
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_len, d_model)
        table[:, 0::2] = torch.sin(position * div)
        table[:, 1::2] = torch.cos(position * div[: d_model // 2])
        self.register_buffer("table", table, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x plus the encoding of each position (x is batch, seq, d_model)."""
        if x.shape[1] > self.table.shape[0]:
            raise NetworkConfigError(f"sequence of {x.shape[1]} exceeds max_len")
        return x + self.table[: x.shape[1]]


class _Heads(nn.Module):
    """Direction logit and return heads on a pooled representation."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.direction = nn.Linear(width, 1)
        self.ret = nn.Linear(width, 1)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (logit, ret), each of shape (batch,)."""
        return self.direction(h).squeeze(-1), self.ret(h).squeeze(-1)


class TransformerNet(nn.Module):
    """Transformer encoder over the window; the last position summarises it."""

    def __init__(
        self,
        n_features: int,
        d_model: int = 32,
        n_heads: int = 4,
        n_layers: int = 2,
        ff_mult: int = 2,
        dropout: float = 0.1,
        max_len: int = 1024,
    ) -> None:
        super().__init__()
        if d_model % n_heads or d_model % 2:
            raise NetworkConfigError("d_model must be even and divisible by n_heads")
        self.embed = nn.Linear(n_features, d_model)
        self.position = SinusoidalPositionalEncoding(d_model, max_len)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, ff_mult * d_model, dropout, batch_first=True, norm_first=True
        )
        # Nested-tensor fast path only applies to post-norm layers; disable it to avoid a warning.
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.heads = _Heads(d_model)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (logit, ret) for windows x of shape (batch, window, features)."""
        h = self.position(self.embed(x))
        last = self.encoder(h)[:, -1] if self.training else self._encode_last(h)
        return self.heads(self.norm(last))

    def _encode_last(self, h: torch.Tensor) -> torch.Tensor:
        """Return the encoder output at the last position, as ``self.encoder(h)[:, -1]`` (eval)."""
        layers = self.encoder.layers
        for i, layer in enumerate(layers):
            h = _pre_norm_layer_eval(layer, h, last_only=i == len(layers) - 1)
        return h[:, -1]


def _pre_norm_layer_eval(
    layer: nn.TransformerEncoderLayer, h: torch.Tensor, *, last_only: bool
) -> torch.Tensor:
    """Apply a norm-first encoder layer without dropout; ``last_only`` keeps the last step only.

    Keys and values come from every position either way, so the last step's output is the one
    the full layer gives; positions the next layer would never read are simply not computed.
    """
    attn = layer.self_attn
    d = h.shape[-1]
    normed = layer.norm1(h)
    w, b = attn.in_proj_weight, attn.in_proj_bias
    if last_only:
        q = nn.functional.linear(normed[:, -1:], w[:d], b[:d])
        k, v = nn.functional.linear(normed, w[d:], b[d:]).split(d, dim=-1)
        h = h[:, -1:]
    else:
        q, k, v = nn.functional.linear(normed, w, b).split(d, dim=-1)

    def split_heads(t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (attn.num_heads, attn.head_dim)).transpose(1, 2)

    a = nn.functional.scaled_dot_product_attention(split_heads(q), split_heads(k), split_heads(v))
    h = h + attn.out_proj(a.transpose(1, 2).flatten(2))
    return h + layer.linear2(layer.activation(layer.linear1(layer.norm2(h))))


class LSTMNet(nn.Module):
    """Stacked LSTM; the final hidden state summarises the window."""

    def __init__(
        self, n_features: int, hidden: int = 48, n_layers: int = 2, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            n_features,
            hidden,
            n_layers,
            batch_first=True,
            dropout=dropout if n_layers > 1 else 0.0,
        )
        self.heads = _Heads(hidden)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (logit, ret) for windows x of shape (batch, window, features)."""
        out, _ = self.lstm(x)
        return self.heads(out[:, -1])


class _CausalBlock(nn.Module):
    """Two dilated causal convolutions with a residual connection (Bai et al., 2018)."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.pad = (kernel_size - 1) * dilation  # left padding only: output t sees inputs <= t
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block output for x of shape (batch, channels, time)."""
        h = self.drop(self.act(self.conv1(nn.functional.pad(x, (self.pad, 0)))))
        h = self.drop(self.act(self.conv2(nn.functional.pad(h, (self.pad, 0)))))
        return x + h

    def forward_one(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``forward`` (eval) of one sequence x of shape (channels, time)."""
        h = self.act(_causal_conv_as_matmul(self.conv1, x, self.pad))
        return x + self.act(_causal_conv_as_matmul(self.conv2, h, self.pad))


def _causal_conv_as_matmul(conv: nn.Conv1d, x: torch.Tensor, pad: int) -> torch.Tensor:
    """Return ``conv`` of x (channels, time) left-padded by ``pad``, as one matrix product.

    For one short sequence this is about twice as fast as ``conv1d``, whose per-call overhead
    dominates there; for batches and long series ``conv1d`` is faster.
    """
    dilation, steps = conv.dilation[0], x.shape[1]
    padded = nn.functional.pad(x, (pad, 0))
    taps = [padded[:, i * dilation : i * dilation + steps] for i in range(conv.kernel_size[0])]
    columns = torch.stack(taps, dim=1).flatten(0, 1)  # (channels * kernel, time), weight order
    return torch.addmm(conv.bias.unsqueeze(1), conv.weight.flatten(1), columns)


class TemporalCNN(nn.Module):
    """Temporal convolutional network: dilations 1, 2, 4, ... ; the last step summarises."""

    def __init__(
        self,
        n_features: int,
        channels: int = 32,
        kernel_size: int = 3,
        n_layers: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if kernel_size < 2:
            raise NetworkConfigError("kernel_size must be >= 2")
        self.inp = nn.Conv1d(n_features, channels, 1)
        self.blocks = nn.Sequential(
            *(_CausalBlock(channels, kernel_size, 2**i, dropout) for i in range(n_layers))
        )
        self.heads = _Heads(channels)

    @property
    def receptive_field(self) -> int:
        """Return how many trailing steps the last output depends on."""
        return 1 + sum(2 * block.pad for block in self.blocks)

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Return per-step representations (batch, channels, time) for x (batch, time, feat)."""
        return self.blocks(self.inp(x.transpose(1, 2)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (logit, ret) for windows x of shape (batch, window, features)."""
        if x.shape[0] == 1 and not self.training:  # one live window: the matrix-product path
            h = torch.addmm(self.inp.bias.unsqueeze(1), self.inp.weight[:, :, 0], x[0].t())
            for block in self.blocks:
                h = block.forward_one(h)
            return self.heads(h[:, -1].unsqueeze(0))
        return self.heads(self.sequence(x)[:, :, -1])

    def step_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (logit, ret) at every step of x (batch, time, features), each (batch, time).

        Step t equals ``forward`` on a window ending at t that is at least ``receptive_field``
        long, provided x holds the ``receptive_field - 1`` steps before t: t sees nothing older.
        """
        return self.heads(self.sequence(x).transpose(1, 2))


_CLASSES: dict[str, type[nn.Module]] = {
    "transformer": TransformerNet,
    "lstm": LSTMNet,
    "cnn": TemporalCNN,
}


def resolve_hparams(kind: str, hparams: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the defaults of ``kind`` overridden by ``hparams`` (unknown keys rejected)."""
    if kind not in _CLASSES:
        raise NetworkConfigError(f"unknown network kind {kind!r}; choose from {NETWORK_KINDS}")
    merged = {**DEFAULT_HPARAMS[kind], **(hparams or {})}
    unknown = sorted(set(merged) - set(DEFAULT_HPARAMS[kind]))
    if unknown:
        raise NetworkConfigError(f"{kind}: unknown hyperparameter(s) {', '.join(unknown)}")
    return merged


def build_network(kind: str, n_features: int, *, device: str = "cpu", **hparams: Any) -> nn.Module:
    """Return a network of ``kind`` ('transformer' | 'lstm' | 'cnn') on ``device``."""
    if n_features < 1:
        raise NetworkConfigError("n_features must be >= 1")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise NetworkConfigError(f"device must be cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NetworkConfigError("CUDA requested but not available")
    params = resolve_hparams(kind, hparams)
    try:
        network = _CLASSES[kind](n_features, **params)
    except (TypeError, ValueError, AssertionError) as exc:
        raise NetworkConfigError(f"{kind}: {exc}") from exc
    return network.to(device)
