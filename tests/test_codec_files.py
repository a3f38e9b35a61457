"""Saving and loading SyntheticSets, sets with uninitialized latents, and device names."""
import pytest
import torch

from ddfast.codec import CodecConfig, SyntheticSet
from ddfast.device import resolve_device
from ddfast.errors import ConfigError


def test_saved_sets_load_with_their_weights_and_metadata(tmp_path):
    syn = SyntheticSet([3, 2], (9, 7), channels=1, config=CodecConfig(synthesis="v4-40", arm_context=8, arm_depth=1),
                       slice_size=2, generator=torch.Generator().manual_seed(0))
    syn.metadata.update(normalization=[[0.5], [0.25]], syn_lr=0.01)
    syn.save(tmp_path / "set.pt")
    back = SyntheticSet.load(tmp_path / "set.pt")
    assert back.config == syn.config and back.layout == syn.layout and back.slice_size == 2
    assert back.metadata == syn.metadata
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), syn.state_dict().values()))
    with pytest.raises(ConfigError, match="does not exist"):
        SyntheticSet.load(tmp_path / "missing.pt")
    torch.save({"images": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not a saved SyntheticSet"):
        SyntheticSet.load(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ConfigError, match=r"cannot read synthetic set .*junk\.pt: [^\n]*$"):
        SyntheticSet.load(tmp_path / "junk.pt")


def test_sets_without_initial_latents_keep_their_layout_buffers():
    syn = SyntheticSet([3, 1], 8, channels=1, slice_size=2, device="cpu", init_latents=False)
    assert syn.valid.tolist() == [[True, True], [True, False], [True, False]]
    assert syn.labels.tolist() == [0, 0, 0, 1]
    assert syn.stack.latents.shape == (3, 2, 64 + 16 + 4 + 1)  # the reference's 4 grids at 8x8: 8, 4, 2, 1


def test_device_names_are_checked():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu0", "tpu"):
        with pytest.raises(ConfigError, match="device"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="does not exist|no CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count() + 3}")
