"""Triton kernels of ddfast, installed as ``ddfast.kernels``.

Each kernel here has a torch reference twin in :mod:`ddfast.ops`; the ops pick a kernel on CUDA
tensors and the reference elsewhere.
"""
