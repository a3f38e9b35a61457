"""Evaluation: the reference networks and the evaluation protocol."""
from ddfast.distill.networks import NETWORK_NAMES, get_network
from ddfast.eval.protocol import EvalResult, default_optimizer, evaluate, resolve_optimizer, train_and_test

__all__ = [
    "NETWORK_NAMES", "EvalResult", "default_optimizer", "evaluate", "get_network", "resolve_optimizer",
    "train_and_test",
]
