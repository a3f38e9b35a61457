"""CPU <-> GPU: a .ddf file decodes to the same integers on either, whichever device wrote it (needs a GPU)."""
import pytest
import torch

import ddfast
from ddfast.coding import decode, encode, quantize_at
from ddfast.coding.container import unpack
from ddfast.rans import _cuda

from coding_helpers import FINE_STEPS, random_set

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (no CUDA device)")
pytestmark = [pytest.mark.gpu, needs_gpu]

SHAPES = [
    ([5, 3], (13, 9), 3, 8, 1, 2, 64),
    ([4, 4, 4], (32, 32), 3, 16, 4, None, 16384),
    ([2, 1], (40, 33), 3, 32, 4, None, 500),   # images split into several lanes
    ([1, 2], (17, 30), 1, 64, 2, None, 300),
]


def _same_integers(a, b) -> None:
    assert torch.equal(a.latents.cpu(), b.latents.cpu())
    for name in a.tensors:
        assert torch.equal(a.tensors[name].cpu(), b.tensors[name].cpu()), name


def test_the_cuda_latent_decoder_is_built_here():
    assert _cuda.unavailable_reason() is None, _cuda.unavailable_reason()


@pytest.mark.parametrize("shape", SHAPES)
def test_cpu_written_files_decode_identically_on_the_gpu(shape):
    counts, size, channels, context, depth, slice_size, lanes = shape
    syn = random_set(counts, size, channels, context, depth, slice_size, seed=sum(counts))
    data = encode(quantize_at(syn, FINE_STEPS), lanes)
    on_cpu, on_gpu = decode(data, "cpu"), decode(data, "cuda")
    assert on_gpu.latents.is_cuda
    _same_integers(on_cpu, on_gpu)
    images, labels = ddfast.decompress(data, device="cuda")
    expected, _ = on_gpu.to_synthetic_set("cuda")()
    assert torch.equal(images, expected)
    cpu_images, cpu_labels = ddfast.decompress(data, device="cpu")
    assert torch.equal(labels.cpu(), cpu_labels)
    assert (images.cpu() - cpu_images).abs().max() <= 4 / 65535  # float synthesis on two devices


def test_gpu_written_files_decode_identically_on_the_cpu():
    syn = random_set([3, 2], (16, 12), 3, 16, 2, 2, seed=3).cuda()
    data = ddfast.compress(syn, 5e-6)
    _same_integers(decode(data, "cuda"), decode(data, "cpu"))


def test_damaged_lanes_are_reported_on_the_gpu():
    import zlib

    syn = random_set([3], (16, 16), 3, 16, 2, seed=4)
    data = bytearray(encode(quantize_at(syn, FINE_STEPS), 100))
    _, start, end = unpack(bytes(data)).spans[0]
    data[end - 8:end] = bytes(8)  # zero the final words of the last lane
    data[end:end + 4] = zlib.crc32(bytes(data[start:end])).to_bytes(4, "little")
    with pytest.raises(ddfast.BitstreamError, match="section 0"):
        decode(bytes(data), "cuda")
    with pytest.raises(ddfast.BitstreamError, match="section 0"):
        decode(bytes(data), "cpu")
