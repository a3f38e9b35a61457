"""Distribution matching (DM) as DatasetCondensation's ``main_DM.py`` writes it, on a ddfast codec set.

The loop below is ``main_DM.py``'s: per iteration a fresh random ConvNet (frozen, train mode),
per class a real batch and the class's synthetic images under one Siamese DSA draw, the squared
distance of their mean embeddings, one step. The lines marked ``# ddfast`` are all that changes:
the synthetic images come from a codec set through the FreD/DDiF ``SynSet`` interface (decoding
only the class's codec each time), and its ``optim_step`` replaces the image optimizer. The set
then becomes a real ``.ddf`` file, decoded and evaluated.

    python examples/dm_dc_style.py            # bundled Fashion-MNIST, a few minutes on a CPU
    python examples/dm_dc_style.py --quick    # a few iterations and a tiny evaluation (seconds)
"""
from __future__ import annotations

import argparse
import os
import time
from types import SimpleNamespace

import torch

import ddfast
from ddfast.data import load
from ddfast.distill import DSA, get_network
from ddfast.distill.joint import RateUtility, Stage
from ddfast.integrations import SynSet

FULL = SimpleNamespace(iterations=100, ipc=10, batch_real=50, warmup=150, model="ConvNet", eval_runs=1, eval_epochs=200)
QUICK = SimpleNamespace(iterations=2, ipc=2, batch_real=8, warmup=3, model="ConvNetW32", eval_runs=1, eval_epochs=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations, a small network, a tiny evaluation")
    parser.add_argument("--iterations", type=int, default=None, help=f"DM iterations (default {FULL.iterations})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder to write distilled.ddf into")
    args = parser.parse_args()
    run = QUICK if args.quick else FULL
    iterations = args.iterations or run.iterations
    torch.manual_seed(args.seed)
    start = time.perf_counter()

    train, test = load("bundled"), load("bundled", split="test")
    channel, num_classes, im_size, ipc = train.channels, train.num_classes, train.image_size, run.ipc
    images_all, labels_all = train.normalize(train.to_float()), train.labels
    indices_class = [torch.nonzero(labels_all == c).flatten() for c in range(num_classes)]

    def get_images(c: int, n: int) -> torch.Tensor:
        return images_all[indices_class[c][torch.randperm(len(indices_class[c]))[:n]]]

    # ddfast: a codec set instead of image_syn; lr_it 1000, ldb 5, two ldb_it stages (lambda 20, then 2)
    syn = ddfast.SyntheticSet(ipc, im_size, num_classes, channel,
                              config=ddfast.CodecConfig(synthesis="v4-40", arm_context=16, arm_depth=2))
    half = max(iterations // 2, 1)
    synset = SynSet(syn, RateUtility(lr_it=1000.0, ldb=5.0, stages=(Stage(half, 10.0), Stage(half, 100.0))),
                    mean=train.mean, std=train.std, seed=args.seed)
    synset.init(images_all, labels_all, indices_class, beta=30.0, candidates=(1,),  # ddfast: fit real images
                iterations=(run.warmup,), progress=False)
    dsa = DSA(seed=args.seed)

    for it in range(iterations):
        net = get_network(run.model, channel, num_classes, im_size, seed=it)
        net.train()
        for p in net.parameters():
            p.requires_grad = False
        loss = torch.tensor(0.0)
        for c in range(num_classes):
            img_real = get_images(c, run.batch_real)
            img_syn, _ = synset.get(range(c * ipc, (c + 1) * ipc))  # ddfast: was image_syn[c*ipc:(c+1)*ipc]
            seed = dsa.draw_seed()
            img_real, img_syn = dsa(img_real, seed=seed, siamese=True), dsa(img_syn, seed=seed, siamese=True)
            loss = loss + ((net.embed(img_real).detach().mean(0) - net.embed(img_syn).mean(0)) ** 2).sum()
        synset.optim_zero_grad()  # ddfast: was optimizer_img.zero_grad()
        loss.backward()
        synset.optim_step()  # ddfast: was optimizer_img.step()
        if it % 25 == 0 or it == iterations - 1:
            print(f"iter {it:4d}  DM loss {loss.item() / num_classes:.4f}")

    data = ddfast.compress(syn)  # the .ddf file: its size is the budget
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "distilled.ddf"), "wb") as handle:
            handle.write(data)
    images, labels = ddfast.decompress(data)
    result = ddfast.evaluate(train.normalize(images), labels, test, arch=run.model, runs=run.eval_runs,
                             epochs=run.eval_epochs, progress=False)
    print(f"{len(data) / num_classes / 1000:.3f} kB per class, accuracy {100 * result.mean:.2f} % "
          f"({result.epochs} epochs), {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
