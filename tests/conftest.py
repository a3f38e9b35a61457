"""Test-session setup: Triton kernels run in interpreter mode when there is no GPU.

The variable must be set before any ``triton.jit`` decorator runs, i.e. before ddfast.kernels is
imported, so it is set here at collection time.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
