"""Peak memory and time of one trajectory-matching iteration: ddfast vs the reference approach.

Setting (CIFAR-10 shape): 10 classes × 10 images of 3×32×32, ConvNet-3 (320,010 parameters),
60 student steps, batch_syn = all 100 images, DSA on, random data and a random expert (memory
and time do not depend on the values).

* ``reference``: mtt-distillation's ``ReparamModule`` approach, written out here: one flat
  parameter vector, the student called functionally on views of it, every step
  ``θ ← θ − syn_lr·∇`` with ``create_graph=True``, so autograd keeps all 60 intermediate flat
  vectors and every step's double-backward graph until the final backward.
* ``ddfast-recompute``: ``TrajectoryMatching(unroll="recompute")`` (the default).
* ``ddfast-graph``: ``TrajectoryMatching(unroll="graph")`` (same approach as the reference).

Each variant runs in its own subprocess: one forward + backward (on CUDA after a 2-step
warm-up). On CUDA the peak is ``torch.cuda.max_memory_allocated`` during the iteration minus
what was allocated before it; on the CPU it is the process's peak resident set size
(``ru_maxrss``) minus its resident size before the iteration (data, networks and the expert
already loaded).
The script also checks that the three variants give the same loss and image gradient.

    nice -n 19 python benchmarks/tm_memory.py [--device cuda] [--steps 60] [--threads 1]

At 60 steps the reference variant peaks at about 18 GB (CPU or GPU); use ``--steps`` to scale
it down on smaller machines.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

VARIANTS = ("reference", "ddfast-recompute", "ddfast-graph")


def _setup(device: torch.device, seed: int = 0):
    from ddfast.distill import get_network

    g = torch.Generator().manual_seed(seed)
    net = get_network("ConvNet", 3, 10, 32, seed=seed).to(device)
    snapshot = [p.detach().cpu() for p in net.parameters()]
    trajectory = [[p + 0.01 * k * torch.randn(p.shape, generator=g) for p in snapshot] for k in range(4)]
    images = torch.randn(100, 3, 32, 32, generator=g).to(device).requires_grad_(True)
    labels = torch.arange(10).repeat_interleave(10).to(device)
    return net, trajectory, images, labels


def reference_iteration(net, images, labels, plan, dsa, syn_lr):
    """The MTT distill.py unroll with a ReparamModule-style flat vector (on ddfast's plan:
    the same start, target, minibatches and augmentation seeds as ddfast's loss)."""
    from torch.func import functional_call

    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    sizes = [p.numel() for p in net.parameters()]

    def student(flat, x):
        views = {n: v.view(s) for n, v, s in zip(names, torch.split(flat, sizes), shapes)}
        return functional_call(net, views, (x,))

    student_params = [plan.start.clone().requires_grad_(True)]
    for k, idx in enumerate(plan.batches):
        x = dsa(images[idx], seed=plan.dsa_seeds[k])
        ce = F.cross_entropy(student(student_params[-1], x), labels[idx])
        grad = torch.autograd.grad(ce, student_params[-1], create_graph=True)[0]
        student_params.append(student_params[-1] - syn_lr * grad)
    loss = F.mse_loss(student_params[-1], plan.target, reduction="sum")
    loss = loss / F.mse_loss(plan.start, plan.target, reduction="sum")
    loss.backward()
    return loss.detach()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_variant(variant: str, device: torch.device, steps: int) -> dict:
    """One variant in this process; returns its loss, image-gradient norm, time and peak memory."""
    from ddfast.distill import DSA, TrajectoryMatching

    net, trajectory, images, labels = _setup(device)

    def once(n_steps: int):
        images.grad = None
        tm = TrajectoryMatching(
            [trajectory], net, syn_steps=n_steps, expert_epochs=2, max_start_epoch=1, dsa=DSA(seed=1),
            unroll="graph" if variant == "ddfast-graph" else "recompute", seed=0, device=device,
        )
        if variant == "reference":
            return reference_iteration(net, images, labels, tm.draw_plan(images.shape[0], device), tm.dsa, tm.syn_lr)
        loss = tm(images, labels)
        loss.backward()
        return loss.detach()

    if device.type == "cuda":
        once(2)  # warm-up (kernel selection, allocator); the peak counter is reset after it
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()  # the CPU high-water mark cannot be reset, so no warm-up there
    t0 = time.perf_counter()
    loss = once(steps)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {
        "variant": variant, "loss": float(loss), "grad_norm": float(images.grad.norm()),
        "grad_sum": float(images.grad.sum()), "seconds": seconds, "peak_bytes": int(peak),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: shared machine)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.child:
        print(json.dumps(run_variant(args.child, device, args.steps)))
        return 0
    results = []
    for variant in args.variants.split(","):
        cmd = [sys.executable, __file__, "--child", variant, "--device", args.device, "--steps", str(args.steps),
               "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{r['variant']:>17}: {r['seconds']:8.2f} s  peak +{r['peak_bytes'] / 2**20:9.1f} MiB  "
              f"loss {r['loss']:.6f}  |grad| {r['grad_norm']:.6e}", flush=True)
    by = {r["variant"]: r for r in results}
    if "reference" in by and "ddfast-recompute" in by:
        ref, ours = by["reference"], by["ddfast-recompute"]
        print(f"memory ratio reference / ddfast-recompute: {ref['peak_bytes'] / max(ours['peak_bytes'], 1):.1f}x")
        print(f"time ratio ddfast-recompute / reference: {ours['seconds'] / ref['seconds']:.2f}x")
        rel = abs(ref["grad_norm"] - ours["grad_norm"]) / ref["grad_norm"]
        print(f"same result: loss {ref['loss']:.6f} vs {ours['loss']:.6f}, grad-norm rel. diff {rel:.1e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "steps": args.steps, "threads": args.threads,
                       "torch": torch.__version__, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
