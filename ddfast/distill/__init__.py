"""Distillation machinery: DSA, ZCA, the reference networks, expert trajectories, the TM/GM/DM
losses and the vanilla pixel baselines."""
from ddfast.distill.baselines import (
    PixelSet,
    as_8bit,
    distill_dm,
    distill_gm,
    distill_tm,
    images_per_class,
    pixel_set_bytes,
)
from ddfast.distill.dsa import DEFAULT_STRATEGY, DSA, DSAParams
from ddfast.distill.experts import (
    ExpertBuffer,
    ExpertConfig,
    buffer_dir,
    buffer_files,
    load_buffer,
    save_buffer,
    train_experts,
)
from ddfast.distill.losses import DistributionMatching, GradientMatching, TrajectoryMatching, get_loops
from ddfast.distill.networks import NETWORK_NAMES, default_convnet, get_network, network_factory
from ddfast.distill.params import FlatModel, flatten_params
from ddfast.distill.realdata import ClassSampler, real_tensors
from ddfast.distill.zca import ZCA

__all__ = [
    "DEFAULT_STRATEGY", "DSA", "DSAParams", "ZCA", "NETWORK_NAMES", "get_network", "default_convnet",
    "network_factory", "FlatModel", "flatten_params", "ClassSampler", "real_tensors",
    "ExpertBuffer", "ExpertConfig", "buffer_dir", "buffer_files", "load_buffer", "save_buffer", "train_experts",
    "TrajectoryMatching", "GradientMatching", "DistributionMatching", "get_loops",
    "PixelSet", "as_8bit", "distill_gm", "distill_dm", "distill_tm", "images_per_class", "pixel_set_bytes",
]
