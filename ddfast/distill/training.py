"""Plain classifier training on in-memory tensors: the ``epoch()`` loop of the references."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ddfast.distill.dsa import DSA
from ddfast.labels import soft_cross_entropy


def model_device(net: nn.Module) -> torch.device:
    """Device of the network's first parameter (CPU for a network without parameters)."""
    return next((p.device for p in net.parameters()), torch.device("cpu"))


def train_epoch(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int = 256,
    dsa: DSA | None = None,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """One shuffled pass in train mode with cross-entropy; DSA (non-Siamese) on every batch.

    ``labels`` are class ids [N] (int) or soft labels [N, K] (float probabilities, trained with
    soft cross-entropy; accuracy counts the largest entry as the class). Returns the mean loss
    and the accuracy over the epoch (on the augmented batches).
    """
    net.train()
    device = model_device(net)
    order = torch.randperm(images.shape[0], generator=generator)
    total_loss, correct = 0.0, 0
    for idx in order.split(batch_size):
        idx = idx.to(images.device)
        x = images[idx].to(device, non_blocking=True)
        y = labels[idx].to(device, non_blocking=True)
        if dsa is not None:
            x = dsa(x)
        out = net(x)
        soft = y.is_floating_point()
        loss = soft_cross_entropy(out, y) if soft else F.cross_entropy(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * y.shape[0]
        correct += int((out.detach().argmax(1) == (y.argmax(1) if soft else y)).sum())
    n = max(images.shape[0], 1)
    return total_loss / n, correct / n


@torch.no_grad()
def accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy in eval mode (batches are moved to the network's device)."""
    net.eval()
    device = model_device(net)
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device, non_blocking=True)
        y = labels[start : start + batch_size].to(device, non_blocking=True)
        correct += int((net(x).argmax(1) == y).sum())
    return correct / max(images.shape[0], 1)
