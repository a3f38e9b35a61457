"""DD-RUO's cross-architecture ViT: a pre-norm Vision Transformer in the vit-pytorch layout.

Defaults are DD-RUO's: patch 16, dim 512, depth 10, heads 8 (64 dims each), MLP 512, dropout and
embedding dropout 0.01, class-token pooling, LayerNorm before attention, before the MLP and in
the head.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ddfast.errors import ConfigError


class Attention(nn.Module):
    """Multi-head self-attention (no bias on the q/k/v projection)."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head**-0.5
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        b, n, _ = x.shape
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        attn = self.dropout((q @ k.transpose(-1, -2) * self.scale).softmax(dim=-1))
        out = (attn @ v).transpose(1, 2).reshape(b, n, -1)
        return self.to_out(out)


class FeedForward(nn.Module):
    """LayerNorm → Linear → GELU → Dropout → Linear → Dropout."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ViT(nn.Module):
    """Vision Transformer classifier over non-overlapping ``patch`` × ``patch`` patches."""

    def __init__(
        self,
        channels: int,
        num_classes: int,
        image_size: tuple[int, int],
        patch: int = 16,
        dim: int = 512,
        depth: int = 10,
        heads: int = 8,
        mlp_dim: int = 512,
        dim_head: int = 64,
        dropout: float = 0.01,
        emb_dropout: float = 0.01,
    ) -> None:
        super().__init__()
        h, w = image_size
        if h % patch or w % patch:
            raise ConfigError(f"ViT needs image sides divisible by the patch size {patch}, got {image_size}")
        self.patch = patch
        num_patches = (h // patch) * (w // patch)
        self.pos_embedding = nn.Parameter(torch.randn(1, num_patches + 1, dim))
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.to_patch_embedding = nn.Linear(channels * patch * patch, dim)
        self.emb_dropout = nn.Dropout(emb_dropout)
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, heads, dim_head, dropout), FeedForward(dim, mlp_dim, dropout)])
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, num_classes)

    def _patches(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.patch
        x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, (h // p) * (w // p), p * p * c)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The normalized class token after the transformer."""
        tokens = self.to_patch_embedding(self._patches(x))
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = self.emb_dropout(torch.cat([cls, tokens], dim=1) + self.pos_embedding)
        for attn, ff in self.layers:
            tokens = attn(tokens) + tokens
            tokens = ff(tokens) + tokens
        return self.norm(tokens[:, 0])

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """The final linear layer."""
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
