"""Seeds for the random streams of distillation and evaluation.

Every random component (DSA, the losses, samplers, expert order) owns an explicit
``torch.Generator``. Its seed is either given, derived from integer keys with
:func:`derive_seed`, or — when none is given — drawn with :func:`fresh_seed` from torch's global
RNG, so that ``torch.manual_seed`` still makes a run reproducible.
"""
from __future__ import annotations

import numpy as np
import torch

SEED_RANGE = 2**62
"""Seeds drawn here lie in ``[0, SEED_RANGE)``."""


def fresh_seed(generator: torch.Generator | None = None) -> int:
    """A seed in ``[0, SEED_RANGE)`` from ``generator`` (default: torch's global CPU RNG)."""
    return int(torch.randint(0, SEED_RANGE, (1,), generator=generator).item())


def seeded_generator(seed: int | None = None) -> torch.Generator:
    """A CPU generator seeded with ``seed``, or with :func:`fresh_seed` when ``seed`` is None."""
    return torch.Generator().manual_seed(fresh_seed() if seed is None else int(seed))


def derive_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys (e.g. ``(run_seed, expert_index)``)."""
    state = np.random.SeedSequence([int(k) % 2**63 for k in keys]).generate_state(2, np.uint32)
    return (int(state[0]) << 31 ^ int(state[1])) % 2**63
