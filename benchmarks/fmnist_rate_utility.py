"""Rate-utility on the full Fashion-MNIST: DD-RUO files against vanilla pixel sets at equal bytes.

Jobs (run one after another, each appending one JSON line to ``OUT/results.jsonl``):

- ``ruo:PRESET`` -- ``ddfast.distill(PRESET)`` into ``OUT/PRESET``: init, joint rate-utility phase,
  the ``.ddf`` file within the preset's budget, the decoded file evaluated. Bytes = the file's
  bytes / classes (latents, weights and header included).
- ``pixel:METHOD:IPC`` -- the same loss on plain pixels (``ddfast.distill.distill_dm`` /
  ``distill_gm``) with the iterations, real batch and GM loops of that method's
  ``fashion-mnist-*-2kb`` preset, evaluated as 8-bit pixels (``as_8bit``: 784 bytes per image;
  float32 would be 3,136).

Every set is evaluated the same way (``ddfast.evaluate``: fresh ConvNet-3, DSA, ``--eval-runs`` x
``--eval-epochs``, seed 0). ``--table`` prints the markdown table, ``--plot`` draws accuracy
against kB per class (needs matplotlib).

    nice -n 19 python benchmarks/fmnist_rate_utility.py --out runs/fm_ru --eval-epochs 300 \\
        --jobs pixel:dm:10 ruo:fashion-mnist-dm-2kb

A relaunched sweep skips the jobs already in ``results.jsonl`` and resumes a ``ruo`` run from its
checkpoint.

    python benchmarks/fmnist_rate_utility.py --table runs/fm_ru/results.jsonl --plot fm.png
"""
from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import torch

import ddfast
from ddfast.data import load
from ddfast.distill import as_8bit, distill_dm, distill_gm
from ddfast.distill.presets import get_preset
from ddfast.eval import evaluate
from fmnist_baselines import _device_name  # the sibling benchmark script

PIXEL_SETTINGS = {"dm": "fashion-mnist-dm-2kb", "gm": "fashion-mnist-gm-2kb"}
PIXEL_LR = {"dm": 1.0, "gm": 0.1}   # the references' lr_img
BYTES_8BIT, BYTES_FLOAT32 = 28 * 28, 28 * 28 * 4


def run_ruo(name: str, args: argparse.Namespace) -> dict:
    overrides = {"eval_runs": args.eval_runs, "eval_epochs": args.eval_epochs}
    run_dir = Path(args.out) / name
    summary = ddfast.distill(name, run_dir, data_root=args.data_root, overrides=overrides, device="cpu",
                             resume=(run_dir / "checkpoint.pt").exists(), progress=not args.quiet)
    preset = get_preset(name)
    return {"kind": "ruo", "method": preset.method, "name": name, "ipc": summary.images_per_class,
            "kb_per_class": summary.bytes_per_class / 1000, "budget_kb": summary.budget_kb,
            "budget_met": summary.budget_met, "bytes": summary.bytes, "mse_threshold": summary.mse_threshold,
            "iterations": sum(it for it, _ in preset.stages), "accuracy_mean": summary.accuracy_mean,
            "accuracy_std": summary.accuracy_std, "accuracies": summary.accuracies, "seconds": summary.seconds}


def run_pixel(method: str, ipc: int, args: argparse.Namespace) -> dict:
    settings = get_preset(PIXEL_SETTINGS[method])
    train = load("fashion_mnist", args.data_root, "train")
    test = load("fashion_mnist", args.data_root, "test")
    iterations = sum(it for it, _ in settings.stages)
    options = dict(iterations=iterations, batch_real=settings.batch_real, lr_img=PIXEL_LR[method], seed=0,
                   device="cpu", progress=not args.quiet)
    start = time.perf_counter()
    if method == "dm":
        pixels = distill_dm(train, ipc, **options)
    else:
        pixels = distill_gm(train, ipc, loops=settings.loops(), lr_net=settings.lr_net, **options)
    distill_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = evaluate(as_8bit(pixels.images, train), pixels.labels, test, runs=args.eval_runs,
                      epochs=args.eval_epochs, seed=0, device="cpu", progress=not args.quiet)
    return {"kind": "pixel", "method": method, "name": f"{method}-pixels-ipc{ipc}", "ipc": ipc,
            "kb_per_class": ipc * BYTES_8BIT / 1000, "kb_per_class_float32": ipc * BYTES_FLOAT32 / 1000,
            "iterations": iterations, "batch_real": settings.batch_real, "accuracy_mean": result.mean,
            "accuracy_std": result.std, "accuracies": list(result.accuracies),
            "seconds": {"distill": distill_seconds, "eval": time.perf_counter() - start}}


def _job_name(spec: str) -> str:
    """The ``name`` a job's record gets (so a relaunched sweep skips finished jobs)."""
    parts = spec.split(":")
    return f"{parts[1]}-pixels-ipc{parts[2]}" if parts[0] == "pixel" and len(parts) == 3 else parts[-1]


def run_job(spec: str, args: argparse.Namespace) -> dict:
    parts = spec.split(":")
    if parts[0] == "ruo" and len(parts) == 2:
        record = run_ruo(parts[1], args)
    elif parts[0] == "pixel" and len(parts) == 3 and parts[1] in PIXEL_SETTINGS:
        record = run_pixel(parts[1], int(parts[2]), args)
    else:
        raise SystemExit(f"bad job {spec!r}: use ruo:PRESET or pixel:dm|gm:IPC")
    record.update(date=datetime.date.today().isoformat(), cpu=_device_name(torch.device("cpu")), torch=torch.__version__,
                  threads=torch.get_num_threads(), eval_runs=args.eval_runs, eval_epochs=args.eval_epochs)
    return record


def _label(record: dict) -> str:
    return f"{record['method'].upper()}-RUO" if record["kind"] == "ruo" else f"{record['method'].upper()} on pixels"


def print_table(records: list[dict]) -> None:
    """Markdown rows; records recovered from an earlier write-up (``"recovered"``) lack the per-run
    accuracies, the itemized bytes and the times, shown as a dash."""
    print("| set | images/class | kB per class | accuracy % (mean ± std) | runs % | joint / distill iterations "
          "| time (distill + eval) |")
    print("|---|---|---|---|---|---|---|")
    for r in sorted(records, key=lambda r: (r["method"], r["kind"], r["kb_per_class"])):
        if r["kind"] == "ruo":
            size = f"**{r['kb_per_class']:.3f}**"
            if "bytes" in r:
                b = r["bytes"]
                size += (f" (latents {b['latents'] / 10000:.3f}, weights {b['weights'] / 10000:.3f}, rest "
                         f"{(sum(b.values()) - b['latents'] - b['weights']) / 10000:.3f}; budget {r['budget_kb']:g}"
                         f"{'' if r['budget_met'] else ', missed'})")
            minutes = (sum(r["seconds"].values()) - r["seconds"].get("eval", 0.0)) / 60 if "seconds" in r else None
        else:
            size = f"**{r['kb_per_class']:.3f}** (8-bit; float32 {r['kb_per_class_float32']:.2f})"
            minutes = r["seconds"]["distill"] / 60 if "seconds" in r else None
        runs = ", ".join(f"{100 * a:.1f}" for a in r["accuracies"]) if "accuracies" in r else "—"
        time = f"{minutes:.1f} + {r['seconds'].get('eval', 0.0) / 60:.1f} min" if minutes is not None else "—"
        print(f"| {_label(r)} | {r['ipc']} | {size} | {100 * r['accuracy_mean']:.1f} ± {100 * r['accuracy_std']:.1f} "
              f"| {runs} | {r.get('iterations', '—')} | {time} |")


def plot(records: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    styles = {("ruo", "dm"): "o-", ("ruo", "gm"): "s-", ("pixel", "dm"): "o--", ("pixel", "gm"): "s--"}
    for (kind, method), style in styles.items():
        rows = sorted((r for r in records if r["kind"] == kind and r["method"] == method),
                      key=lambda r: r["kb_per_class"])
        if rows:
            label = _label(rows[0]) + (" (.ddf file)" if kind == "ruo" else " (8-bit)")
            ax.errorbar([r["kb_per_class"] for r in rows], [100 * r["accuracy_mean"] for r in rows],
                        yerr=[100 * r["accuracy_std"] for r in rows], fmt=style, capsize=3, label=label)
    ax.set_xscale("log")
    ticks = [t for t in (0.5, 1, 2, 4, 8, 16) if min(r["kb_per_class"] for r in records) / 1.5 <= t
             <= max(r["kb_per_class"] for r in records) * 1.5]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("kB per class (file bytes / classes)")
    ax.set_ylabel("test accuracy % (ConvNet-3)")
    first = records[0]
    ax.set_title(f"Fashion-MNIST: rate vs utility ({first['eval_runs']} runs x {first['eval_epochs']} epochs)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", nargs="*", default=[], help="ruo:PRESET or pixel:dm|gm:IPC")
    parser.add_argument("--out", default="runs/fm_rate_utility", help="run folders and results.jsonl")
    parser.add_argument("--data-root", default=None, help="Fashion-MNIST IDX files (default: ddfast.data's)")
    parser.add_argument("--eval-runs", type=int, default=5)
    parser.add_argument("--eval-epochs", type=int, default=1000)
    parser.add_argument("--table", default=None, help="print the table of this results.jsonl and stop")
    parser.add_argument("--plot", default=None, help="with --table: also draw the curve into this PNG")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.table:
        records = [json.loads(line) for line in open(args.table) if line.strip()]
        print_table(records)
        if args.plot:
            plot(records, args.plot)
        return
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = Path(args.out) / "results.jsonl"
    done = {json.loads(line)["name"] for line in open(results) if line.strip()} if results.exists() else set()
    for spec in args.jobs:
        if _job_name(spec) in done:
            print(f"{spec}: already in {results}, skipped", flush=True)
            continue
        record = run_job(spec, args)
        with open(results, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps({k: record[k] for k in ("name", "kb_per_class", "accuracy_mean", "accuracy_std")}), flush=True)


if __name__ == "__main__":
    main()
