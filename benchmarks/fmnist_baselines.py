"""Vanilla pixel baselines on the full Fashion-MNIST, evaluated with ConvNet-3.

Jobs are ``method:ipc[:iterations[:max_seconds]]`` with method ``gm`` (gradient matching with
DSA — the DSA method; DC's own runs used no augmentation), ``dm`` (distribution matching) or
``real`` (the random real images the others start from, not distilled). A distillation stops
at ``iterations`` or after the iteration that exhausts ``max_seconds``, whichever comes first;
the record says how many iterations ran. Every set is evaluated with the reference protocol
(``ddfast.eval.evaluate``: fresh ConvNet-3, SGD 0.01 momentum 0.9, DSA, ``epochs + 1`` epochs,
lr × 0.1 at the midpoint, the test set once at the end), ``--eval-runs`` times.

Each job appends one JSON line to ``OUT/results.jsonl`` and saves its set to ``OUT/*.pt``
(the ``ddfast eval`` format); ``--table OUT/results.jsonl`` prints the markdown table.

    nice -n 19 python benchmarks/fmnist_baselines.py --jobs gm:1:100 real:1 --eval-epochs 300 --out runs/fm
    python benchmarks/fmnist_baselines.py --table runs/fm/results.jsonl
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch

# Published ConvNet-3 accuracies on Fashion-MNIST (%): DC (ICLR'21) and DSA (ICML'21).
PUBLISHED = {1: {"DC": 70.5, "DSA": 70.6}, 10: {"DC": 82.3, "DSA": 84.6}}
WHOLE_DATASET = 93.5
FULL_ITERATIONS = {"gm": 1000, "dm": 20000, "real": 0}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def parse_job(spec: str) -> dict:
    parts = spec.split(":")
    if parts[0] not in FULL_ITERATIONS or not 2 <= len(parts) <= 4:
        raise SystemExit(f"bad job {spec!r}: use method:ipc[:iterations[:max_seconds]], method in gm, dm, real")
    return {
        "method": parts[0],
        "ipc": int(parts[1]),
        "iterations": int(parts[2]) if len(parts) > 2 else FULL_ITERATIONS[parts[0]],
        "max_seconds": float(parts[3]) if len(parts) > 3 else None,
    }


def run_job(job: dict, train, test, args, device: torch.device) -> dict:
    from ddfast.distill import distill_dm, distill_gm
    from ddfast.distill.baselines import PixelSet, init_from_real
    from ddfast.distill.realdata import ClassSampler, derive_seed
    from ddfast.eval import evaluate

    method, ipc = job["method"], job["ipc"]
    options = dict(iterations=job["iterations"], arch="ConvNet", batch_real=args.batch_real, seed=args.seed,
                   device=device, max_seconds=job["max_seconds"], progress=not args.quiet)
    t0 = time.perf_counter()
    if method == "gm":
        syn = distill_gm(train, ipc, lr_img=0.1, lr_net=0.01, dsa=True, **options)
    elif method == "dm":
        syn = distill_dm(train, ipc, lr_img=1.0, dsa=True, **options)
    else:  # the same random real images the distillations start from
        sampler = ClassSampler(*train, num_classes=10, seed=derive_seed(args.seed, 0), device=device)
        syn = PixelSet(*init_from_real(sampler, ipc), meta={"method": "real", "iterations": 0})
    distill_seconds = time.perf_counter() - t0
    name = f"{method}_ipc{ipc}"
    syn.save(Path(args.sets_dir or args.out) / f"{name}.pt")
    t0 = time.perf_counter()
    result = evaluate(syn.images, syn.labels, test, arch="ConvNet", runs=args.eval_runs, epochs=args.eval_epochs,
                      seed=args.seed, device=device, progress=not args.quiet)
    eval_seconds = time.perf_counter() - t0
    return {
        "job": name, "method": method, "ipc": ipc, "bytes": syn.num_bytes, "iterations_planned": job["iterations"],
        "iterations_done": syn.meta["iterations"], "max_seconds": job["max_seconds"],
        "batch_real": args.batch_real if method != "real" else None, "distill_seconds": round(distill_seconds, 1),
        "eval_epochs": args.eval_epochs, "eval_runs": args.eval_runs, "accuracies": result.accuracies,
        "mean": result.mean, "std": result.std, "eval_seconds": round(eval_seconds, 1),
        "device": _device_name(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
    }


def table(path: str) -> str:
    rows = [json.loads(line) for line in open(path) if line.strip()]
    out = [
        "| method | ipc | iterations (full) | batch_real | eval epochs × runs | accuracy % (mean ± std) | runs % "
        "| published DC / DSA % | distill time | eval time | device |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    label = {"gm": "GM + DSA", "dm": "DM + DSA", "real": "random real (init)"}
    for r in rows:
        pub = PUBLISHED.get(r["ipc"], {}) if r["method"] == "gm" else {}
        published = f"{pub['DC']} / {pub['DSA']}" if pub else "–"
        full = FULL_ITERATIONS[r["method"]]
        its = f"{r['iterations_done']} ({full})" if r["method"] != "real" else "–"
        runs = ", ".join(f"{100 * a:.1f}" for a in r["accuracies"])
        out.append(
            f"| {label[r['method']]} | {r['ipc']} | {its} | {r['batch_real'] or '–'} | {r['eval_epochs']} × "
            f"{r['eval_runs']} | {100 * r['mean']:.1f} ± {100 * r['std']:.1f} | {runs} | {published} | "
            f"{r['distill_seconds'] / 60:.1f} min | {r['eval_seconds'] / 60:.1f} min | {r['device']} |"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", nargs="*", default=["real:1", "gm:1", "real:10", "gm:10"])
    parser.add_argument("--data-root", default=None, help="Fashion-MNIST IDX folder (default: Debian's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-real", type=int, default=256)
    parser.add_argument("--eval-epochs", type=int, default=1000)
    parser.add_argument("--eval-runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/fmnist_baselines")
    parser.add_argument("--sets-dir", default=None, help="where the synthetic sets go (default: --out)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--table", default=None, help="print the markdown table of a results.jsonl and exit")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return 0
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from ddfast.data import load

    train_ds = load("fashion_mnist", args.data_root, "train")
    test_ds = load("fashion_mnist", args.data_root, "test")
    train = (train_ds.normalize(train_ds.to_float()), train_ds.labels)
    test = (test_ds.normalize(test_ds.to_float()), test_ds.labels)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.sets_dir or args.out).mkdir(parents=True, exist_ok=True)
    for spec in args.jobs:
        record = run_job(parse_job(spec), train, test, args, device)
        with open(Path(args.out) / "results.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"{record['job']}: {100 * record['mean']:.2f} ± {100 * record['std']:.2f} % "
              f"({record['iterations_done']} iterations, {record['distill_seconds']:.0f} s + eval "
              f"{record['eval_seconds']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
