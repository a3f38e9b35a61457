"""The GPU latent decoder: one launch of ``csrc/latent_cuda_kernels.cu`` decodes every unit of a file.

The kernel runs the arithmetic of the CPU decoder (the shared ``csrc/latent_coder.h``), so a file
decodes to the same latents on either. Without nvcc (the CUDA library cannot be built) the
latents are decoded on the CPU instead (``ddfast.coding.decoder.decode`` chooses).
"""
from __future__ import annotations

import numpy as np
import torch

from ddfast.coding.parsed import ParsedFile
from ddfast.rans import _cuda


def decode_latents(parsed: ParsedFile, arm: tuple[np.ndarray, np.ndarray], device: torch.device
                   ) -> tuple[torch.Tensor, np.ndarray]:
    """(latents int32 [S, n_max, M] on ``device``, per-lane status); needs the CUDA library."""
    geometry, plan = parsed.geometry, parsed.plan
    layout = parsed.header.layout
    n_max = max(layout.slice_sizes[s] for s in parsed.slices)
    words = np.concatenate([d.words for d in parsed.data]).view(np.int32)
    lane_words = np.concatenate([d.lane_words for d in parsed.data])
    supports = np.array([d.support for d in parsed.data], dtype=np.int32).reshape(-1, 2)
    scratch = plan.units[:, 2].astype(np.int64) * geometry.rows
    grids, offsets = (np.ascontiguousarray(a) for a in geometry.arrays())

    def on_gpu(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)

    word_offsets = on_gpu(np.concatenate(([0], np.cumsum(lane_words))).astype(np.int64))
    scratch_offsets = on_gpu(np.concatenate(([0], np.cumsum(scratch))).astype(np.int64))
    tensors = dict(
        words=on_gpu(words), units=on_gpu(plan.units), lanes=on_gpu(plan.lanes),
        arm_w=on_gpu(arm[0].astype(np.float64)), arm_b=on_gpu(arm[1].astype(np.float64)), support=on_gpu(supports),
        latents=torch.zeros(len(parsed.slices), n_max, geometry.image_latents, dtype=torch.int32, device=device),
        mu=torch.empty(int(scratch.sum()), dtype=torch.int32, device=device),
        ls=torch.empty(int(scratch.sum()), dtype=torch.int32, device=device),
        state=torch.empty(plan.num_lanes, dtype=torch.int64, device=device),
        pos=torch.empty(plan.num_lanes, dtype=torch.int64, device=device),
        status=torch.empty(plan.num_lanes, dtype=torch.uint8, device=device))
    t = tensors
    _cuda.launch(device, "ddf_latent_cuda_decode", t["words"].data_ptr(), word_offsets.data_ptr(), t["units"].data_ptr(),
                 len(plan.units), t["lanes"].data_ptr(), plan.num_lanes, t["arm_w"].data_ptr(), t["arm_b"].data_ptr(),
                 parsed.header.config.arm_depth, grids.ctypes.data, len(grids), offsets.ctypes.data, len(offsets),
                 geometry.shift, t["support"].data_ptr(), n_max, t["latents"].data_ptr(), t["mu"].data_ptr(),
                 t["ls"].data_ptr(), scratch_offsets.data_ptr(), t["state"].data_ptr(), t["pos"].data_ptr(),
                 t["status"].data_ptr())
    return t["latents"], t["status"].cpu().numpy()
