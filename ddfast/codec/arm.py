"""The ARM entropy model of S slices: a residual MLP per slice, run as batched matmuls.

Each slice's MLP maps a latent's C causal neighbours to (mu, s): ``depth`` residual layers
h <- relu(W h + b + h) of width C, then a linear layer C -> 2. Init as the reference: residual
layers at zero, output weights N(0, 1) / 4, zero biases.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ddfast import ops


class StackedARM(nn.Module):
    """ARM weights of S slices in linear layout: hidden [S, depth, C, C], output [S, 2, C]."""

    def __init__(self, num_slices: int, context_size: int, depth: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.context_size = context_size
        self.depth = depth
        self.hidden_w = nn.Parameter(torch.zeros(num_slices, depth, context_size, context_size))
        self.hidden_b = nn.Parameter(torch.zeros(num_slices, depth, context_size))
        self.out_w = nn.Parameter(torch.randn(num_slices, 2, context_size, generator=generator) / 4.0)
        self.out_b = nn.Parameter(torch.zeros(num_slices, 2))

    def forward(self, context: torch.Tensor, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
        """[S, T, C] contexts -> (mu, log_scale), each [S, T].

        Each residual layer runs as one matmul with the identity folded into its weight,
        relu(h (W^T + I) + b), through the activation-lean ops.pointwise_mlp.
        """
        weights, biases = self.folded_mlp()
        out = ops.pointwise_mlp(context, weights, biases, [True] * self.depth + [False], backend=backend)
        return out[..., 0], out[..., 1]

    def folded_mlp(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The MLP as plain layers for ops.pointwise_mlp / ops.latent_rate: weights [S, C, C] (residual
        identity folded in, relu(h (W^T + I) + b)) ... then [S, C, 2]; biases [S, C] ... [S, 2]."""
        eye = torch.eye(self.context_size, device=self.out_w.device, dtype=self.out_w.dtype)
        weights = [self.hidden_w[:, d].transpose(1, 2) + eye for d in range(self.depth)]
        weights.append(self.out_w.transpose(1, 2))
        biases = [self.hidden_b[:, d] for d in range(self.depth)] + [self.out_b]
        return weights, biases


def arm_forward_single(context: torch.Tensor, hidden_w: torch.Tensor, hidden_b: torch.Tensor,
                       out_w: torch.Tensor, out_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One slice's ARM with nn.Linear-style weights (the reference twin of StackedARM)."""
    h = context
    for d in range(hidden_w.shape[0]):
        h = torch.relu(F.linear(h, hidden_w[d], hidden_b[d]) + h)
    out = F.linear(h, out_w, out_b)
    return out[..., 0], out[..., 1]
