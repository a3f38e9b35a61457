"""Trajectory matching (TM) as mtt-distillation's ``distill.py`` writes it, on a ddfast codec set.

The loop below is ``distill.py``'s: per iteration an expert trajectory and a random start epoch,
a student started there that takes ``syn_steps`` SGD steps of size ``syn_lr`` on minibatches of
the (DSA-augmented) synthetic set, the normalized distance of where it lands to the expert's
later parameters, and one step of the images and of ``syn_lr``. The lines marked ``# ddfast`` are
what changes: ``image_syn`` and ``syn_lr`` come from an ``MTTSet`` (a codec set decoded each
iteration), and its ``step()`` replaces the two optimizers. The experts are trained first, tiny,
into mtt-distillation's ``replay_buffer_{n}.pt`` format (``ddfast experts`` does it at full size).

    python examples/tm_mtt_style.py            # bundled Fashion-MNIST, a few minutes on a CPU
    python examples/tm_mtt_style.py --quick    # a few iterations and a tiny evaluation (seconds)
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from types import SimpleNamespace

import torch
import torch.nn.functional as F

import ddfast
from ddfast.data import load
from ddfast.distill import (
    DSA,
    ExpertBuffer,
    ExpertConfig,
    FlatModel,
    flatten_params,
    get_network,
    train_experts,
)
from ddfast.distill.joint import RateUtility, Stage
from ddfast.integrations import MTTSet

FULL = SimpleNamespace(iterations=50, ipc=10, syn_steps=5, batch_syn=20, experts=2, expert_train_epochs=5,
                       warmup=150, model="ConvNet", eval_runs=1, eval_epochs=200)
QUICK = SimpleNamespace(iterations=2, ipc=2, syn_steps=2, batch_syn=10, experts=1, expert_train_epochs=2,
                        warmup=3, model="ConvNetW32", eval_runs=1, eval_epochs=1)
EXPERT_EPOCHS = 2  # M: the target is M expert epochs after the start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations, a small network, a tiny evaluation")
    parser.add_argument("--iterations", type=int, default=None, help=f"TM iterations (default {FULL.iterations})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for the experts and distilled.ddf (default: a temporary one)")
    args = parser.parse_args()
    run = QUICK if args.quick else FULL
    iterations = args.iterations or run.iterations
    torch.manual_seed(args.seed)
    start = time.perf_counter()

    train, test = load("bundled"), load("bundled", split="test")
    channel, num_classes, im_size, ipc = train.channels, train.num_classes, train.image_size, run.ipc
    images_all, labels_all = train.normalize(train.to_float()), train.labels
    indices_class = [torch.nonzero(labels_all == c).flatten() for c in range(num_classes)]

    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or scratch
        # buffer.py, tiny: SGD experts whose per-epoch snapshots are the trajectories
        max_start_epoch = run.expert_train_epochs + 1 - EXPERT_EPOCHS
        train_experts(images_all, labels_all, os.path.join(out, "experts"), run.experts,
                      config=ExpertConfig(model=run.model, epochs=run.expert_train_epochs, seed=args.seed), progress=False)
        buffer = ExpertBuffer(os.path.join(out, "experts"), seed=args.seed)

        # ddfast: the codec set and syn_lr (DD-RUO TM: lr_it 1000, ldb 0.1; ldb_it 10, i.e. lambda 1000)
        syn = ddfast.SyntheticSet(ipc, im_size, num_classes, channel,
                                  config=ddfast.CodecConfig(synthesis="v4-40", arm_context=16, arm_depth=2))
        mtt = MTTSet(syn, RateUtility(lr_it=1000.0, ldb=0.1, stages=(Stage(iterations, 10.0),)), mean=train.mean,
                     std=train.std, lr_teacher=0.01, lr_lr=1e-5, seed=args.seed)
        mtt.init(images_all, labels_all, indices_class, beta=30.0, candidates=(1,),  # ddfast: fit real images
                 iterations=(run.warmup,), progress=False)
        dsa = DSA(seed=args.seed)

        for it in range(iterations):
            student_net = FlatModel(get_network(run.model, channel, num_classes, im_size, seed=it))
            expert_trajectory = buffer.next()
            start_epoch = int(torch.randint(0, max_start_epoch, (1,)))
            starting_params = flatten_params(expert_trajectory[start_epoch])
            target_params = flatten_params(expert_trajectory[start_epoch + EXPERT_EPOCHS])
            student_params = [starting_params.clone().requires_grad_(True)]
            image_syn, y_hat, syn_lr = mtt.image_syn, mtt.label_syn, mtt.syn_lr  # ddfast: decoded this iteration
            indices_chunks: list[torch.Tensor] = []
            for _ in range(run.syn_steps):
                if not indices_chunks:
                    indices_chunks = list(torch.randperm(len(image_syn)).split(run.batch_syn))
                these_indices = indices_chunks.pop()
                x = dsa(image_syn[these_indices])
                ce_loss = F.cross_entropy(student_net(student_params[-1], x), y_hat[these_indices])
                grad = torch.autograd.grad(ce_loss, student_params[-1], create_graph=True)[0]
                student_params.append(student_params[-1] - syn_lr * grad)
            param_loss = (student_params[-1] - target_params).pow(2).sum()
            param_dist = (starting_params - target_params).pow(2).sum()
            grand_loss = param_loss / param_dist
            mtt.zero_grad()  # ddfast: was optimizer_img.zero_grad(); optimizer_lr.zero_grad()
            grand_loss.backward()
            mtt.step()  # ddfast: was optimizer_img.step(); optimizer_lr.step()
            if it % 10 == 0 or it == iterations - 1:
                print(f"iter {it:4d}  TM loss {grand_loss.item():.4f}  syn_lr {mtt.syn_lr.item():.5f}")

        data = ddfast.compress(syn, syn_lr=mtt.syn_lr.item())  # the .ddf file: its size is the budget
        if args.out:
            with open(os.path.join(args.out, "distilled.ddf"), "wb") as handle:
                handle.write(data)
    images, labels = ddfast.decompress(data)
    result = ddfast.evaluate(train.normalize(images), labels, test, arch=run.model, runs=run.eval_runs,
                             epochs=run.eval_epochs, syn_lr=mtt.syn_lr.item(), progress=False)
    print(f"{len(data) / num_classes / 1000:.3f} kB per class, accuracy {100 * result.mean:.2f} % "
          f"({result.epochs} epochs, lr {result.lr:.4f}), {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
