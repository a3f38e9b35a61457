"""ZCA whitening as MTT fits it (kornia ``ZCAWhitening(eps=0.1, compute_inv=True)``).

With images flattened to D = C·H·W values (CHW order): μ = mean over the training images,
Σ = (x − μ)ᵀ(x − μ)/(N − 1), Σ = U·diag(S)·Uᵀ, T = U·diag((S + ε)^−½)·Uᵀ, x_w = (x − μ)·T and
the inverse x = x_w·U·diag((S + ε)^½)·Uᵀ + μ. MTT fits it on the whole training set of [0, 1]
pixels (without mean/std normalization) and whitens train and test sets with it.

The covariance is accumulated in float64 over chunks (so a 50,000 × 3072 set never needs a
float64 copy), and the transform is stored in float32.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from ddfast.fileio import load_torch_file
from ddfast.errors import ConfigError, DatasetError
from ddfast.fileio import atomic_torch_save


class ZCA:
    """A fitted (or to-be-fitted) ZCA whitening transform for images of one shape."""

    def __init__(self, eps: float = 0.1) -> None:
        if not eps > 0:
            raise ConfigError(f"ZCA eps must be positive, got {eps}")
        self.eps = float(eps)
        self.shape: tuple[int, int, int] | None = None
        self.mean: torch.Tensor | None = None
        self.transform_matrix: torch.Tensor | None = None
        self.inverse_matrix: torch.Tensor | None = None
        self.eigenvalues: torch.Tensor | None = None

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load_state_dict`) has run."""
        return self.transform_matrix is not None

    def fit(self, images: torch.Tensor, chunk_size: int = 4096) -> "ZCA":
        """Fit on ``images`` [N, C, H, W] (float pixels, or uint8 which is divided by 255)."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            raise ConfigError("ZCA.fit expects an [N, C, H, W] tensor")
        n = images.shape[0]
        if n < 2:
            raise ConfigError("ZCA.fit needs at least two images")
        d = images[0].numel()
        total = torch.zeros(d, dtype=torch.float64)
        gram = torch.zeros(d, d, dtype=torch.float64)
        for start in range(0, n, chunk_size):
            chunk = _as_float(images[start : start + chunk_size]).reshape(-1, d).double().cpu()
            total += chunk.sum(0)
            gram += chunk.T @ chunk
        mean = total / n
        cov = (gram - n * torch.outer(mean, mean)) / (n - 1)
        evals, evecs = torch.linalg.eigh(cov)
        evals = evals.clamp_min(0.0)
        inv_root = (evals + self.eps).rsqrt()
        root = (evals + self.eps).sqrt()
        self.shape = tuple(int(s) for s in images.shape[1:])  # type: ignore[assignment]
        self.mean = mean.float()
        self.transform_matrix = ((evecs * inv_root) @ evecs.T).float()
        self.inverse_matrix = ((evecs * root) @ evecs.T).float()
        self.eigenvalues = evals.float()
        return self

    def _check(self, x: torch.Tensor) -> None:
        if not self.fitted:
            raise ConfigError("ZCA is not fitted; call fit() or load() first")
        if x.dim() != 4 or tuple(x.shape[1:]) != self.shape:
            raise ConfigError(f"ZCA was fitted on images shaped {self.shape}, got {tuple(x.shape)}")

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Whiten ``x`` [N, C, H, W] (differentiable)."""
        self._check(x)
        x = _as_float(x)
        mean = self.mean.to(x.device, x.dtype)
        t = self.transform_matrix.to(x.device, x.dtype)
        return ((x.reshape(x.shape[0], -1) - mean) @ t).reshape(x.shape)

    __call__ = transform

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Map whitened images back to pixels (differentiable)."""
        self._check(x)
        mean = self.mean.to(x.device, x.dtype)
        t_inv = self.inverse_matrix.to(x.device, x.dtype)
        return (x.reshape(x.shape[0], -1) @ t_inv + mean).reshape(x.shape)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the transform (tensors on the CPU)."""
        if not self.fitted:
            raise ConfigError("ZCA is not fitted; nothing to save")
        return {
            "eps": self.eps,
            "shape": list(self.shape),
            "mean": self.mean.cpu(),
            "transform": self.transform_matrix.cpu(),
            "inverse": self.inverse_matrix.cpu(),
            "eigenvalues": self.eigenvalues.cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> "ZCA":
        """Restore a transform written by :meth:`state_dict`."""
        try:
            eps = float(state["eps"])
            shape = tuple(int(s) for s in state["shape"])
            mean = state["mean"].float()
            transform = state["transform"].float()
            inverse = state["inverse"].float()
            eigenvalues = state["eigenvalues"].float()
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as err:
            raise ConfigError(f"not a ZCA state dict: {err!r}") from err
        d = 1
        for s in shape:
            d *= s
        if (
            len(shape) != 3
            or mean.shape != (d,)
            or transform.shape != (d, d)
            or inverse.shape != (d, d)
            or eigenvalues.shape != (d,)
        ):
            raise ConfigError(f"not a ZCA state dict: tensor sizes do not match the image shape {shape}")
        self.eps, self.shape = eps, shape  # type: ignore[assignment]
        self.mean, self.transform_matrix, self.inverse_matrix, self.eigenvalues = mean, transform, inverse, eigenvalues
        return self

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`state_dict` with ``torch.save`` (atomically)."""
        atomic_torch_save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ZCA":
        """Read a transform written by :meth:`save`; a missing or damaged file raises DatasetError."""
        state = load_torch_file(path, "ZCA file")
        try:
            return cls().load_state_dict(state)
        except ConfigError as err:
            raise DatasetError(f"{path} is not a ZCA file: {err}") from err


def _as_float(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise ConfigError(f"ZCA expects float or uint8 images, got {x.dtype}")
    return x
