"""Fit a SyntheticSet of a benchmark shape to real images, for the benchmarks that need a fitted codec.

The images are the bundled Fashion-MNIST subset (train and test splits, up to 70 per class),
resized to the requested size and repeated over the channels, so that a CIFAR-shaped set
(10 classes x 64 images of 32x32x3) has realistic latent and weight statistics without any
download. The fit is phase 1 of DD-RUO (ddfast.codec.warm_up) with one candidate.

    python benchmarks/fit_set.py -o fitted.pt                     # CIFAR-10 spc 64, v4-480, C=16 depth 4
    python benchmarks/decode_latency.py --set fitted.pt            # compress (search included) and decode it
    ddfast info fitted.ddf                                         # after ddfast encode fitted.pt -o fitted.ddf
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ddfast.codec import CodecConfig, SyntheticSet
from ddfast.data import FASHION_MNIST_STATS, load


def real_images(spc: int, size: int, channels: int) -> list[torch.Tensor]:
    """Per class, ``spc`` bundled Fashion-MNIST images in [0, 1], resized to size x size, ``channels`` deep."""
    train, test = load("bundled", split="train"), load("bundled", split="test")
    out = []
    for a, b in zip(train.by_class(), test.by_class()):
        images = torch.cat([a, b]).float() / 255.0
        if len(images) < spc:
            raise SystemExit(f"the bundled data has {len(images)} images per class, fewer than --spc {spc}")
        resized = F.interpolate(images[:spc], size=(size, size), mode="bilinear", align_corners=False)
        out.append(resized.clamp(0, 1).repeat(1, channels, 1, 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True, help="where to save the fitted SyntheticSet (.pt)")
    parser.add_argument("--spc", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--synthesis", default="v4-480")
    parser.add_argument("--arm-context", type=int, default=16)
    parser.add_argument("--arm-depth", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=100, help="warm-up iterations (one candidate)")
    parser.add_argument("--beta", type=float, default=1e3, help="loss = MSE + bpp / beta")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    images = real_images(args.spc, args.size, args.channels)
    config = CodecConfig(synthesis=args.synthesis, arm_context=args.arm_context, arm_depth=args.arm_depth)
    syn = SyntheticSet(args.spc, args.size, num_classes=len(images), channels=args.channels, config=config,
                       generator=torch.Generator().manual_seed(args.seed))
    start = time.perf_counter()
    report = syn.init_from_data(images, beta=args.beta, candidates=(1,), iterations=(args.iterations,),
                                generator=torch.Generator().manual_seed(args.seed))
    latents = syn.num_latents()
    print(f"fitted {syn.num_classes} x {args.spc} images of {args.size}x{args.size}x{args.channels} in "
          f"{time.perf_counter() - start:.0f} s: PSNR {report.psnr.mean():.2f} dB, "
          f"{float(report.bits.sum()) / latents:.3f} estimated bits per latent")
    mean, std = FASHION_MNIST_STATS
    syn.metadata.update(dataset="bundled Fashion-MNIST (resized)",
                        normalization=[list(mean) * args.channels, list(std) * args.channels])
    syn.save(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
