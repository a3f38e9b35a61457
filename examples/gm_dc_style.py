"""Gradient matching (GM: DC with DSA) as DatasetCondensation's ``main.py`` writes it, on a ddfast codec set.

The loop below is ``main.py``'s: per iteration a fresh random ConvNet; ``outer_loop`` times, per
class the distance between the network's gradients on a real batch and on the class's synthetic
images (one Siamese DSA draw), one step, then ``inner_loop`` epochs of training the network on
the synthetic set. The lines marked ``# ddfast`` are what changes, written against DD-RUO's
``TensorPool`` interface (as its ``DC/pool_dc.py``): ``get_data()`` decodes the set,
``fill_data_diff()`` and ``backward(lr_it, ldb_it)`` replace the image optimizer's step -- one
fused forward and backward of every class's codec underneath.

    python examples/gm_dc_style.py            # bundled Fashion-MNIST, a few minutes on a CPU
    python examples/gm_dc_style.py --quick    # a few iterations and a tiny evaluation (seconds)
"""
from __future__ import annotations

import argparse
import os
import time
from types import SimpleNamespace

import torch
import torch.nn.functional as F

import ddfast
from ddfast.data import load
from ddfast.distill import DSA, get_network
from ddfast.distill.losses import match_distance
from ddfast.distill.training import train_epoch
from ddfast.integrations import TensorPool

FULL = SimpleNamespace(iterations=20, ipc=10, outer_loop=2, inner_loop=5, batch_real=50, warmup=150, model="ConvNet",
                       eval_runs=1, eval_epochs=200)
QUICK = SimpleNamespace(iterations=2, ipc=2, outer_loop=1, inner_loop=1, batch_real=8, warmup=3, model="ConvNetW32",
                        eval_runs=1, eval_epochs=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations, a small network, a tiny evaluation")
    parser.add_argument("--iterations", type=int, default=None, help=f"GM iterations (default {FULL.iterations})")
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

    # ddfast: the pool of class codecs (DD-RUO: lr_it 100, ldb 5; ldb_it 10, i.e. lambda 2)
    pool = TensorPool.build(num_classes, None, ipc, 5.0, im_size, channel, lr=1e-3, layers_v="v4-40", arm=16, dim=2,
                            seed=args.seed)
    pool.init_from_data([train.to_float()[indices_class[c][:ipc]] for c in range(num_classes)], beta=30.0,
                        candidates=(1,), iterations=(run.warmup,), progress=False)
    pool.set_training_phase(0)
    pool.init_solvers()
    lr_it, ldb_it = 100.0, 10.0
    dsa = DSA(seed=args.seed)

    for it in range(iterations):
        net = get_network(run.model, channel, num_classes, im_size, seed=it)
        net.train()
        net_parameters = list(net.parameters())
        optimizer_net = torch.optim.SGD(net.parameters(), lr=0.01)
        for ol in range(run.outer_loop):
            pool.train()
            data, label_syn, bpp = pool.get_data()  # ddfast: decoded [0, 1] pixels, a leaf
            image_syn = train.normalize(data)
            loss = torch.tensor(0.0)
            for c in range(num_classes):
                img_real = get_images(c, run.batch_real)
                img_syn = image_syn[c * ipc:(c + 1) * ipc]
                seed = dsa.draw_seed()
                img_real, img_syn = dsa(img_real, seed=seed, siamese=True), dsa(img_syn, seed=seed, siamese=True)
                lab_real = torch.full((img_real.shape[0],), c)
                lab_syn = torch.full((img_syn.shape[0],), c)
                gw_real = torch.autograd.grad(F.cross_entropy(net(img_real), lab_real), net_parameters)
                gw_real = [g.detach() for g in gw_real]
                gw_syn = torch.autograd.grad(F.cross_entropy(net(img_syn), lab_syn), net_parameters, create_graph=True)
                loss = loss + match_distance(gw_syn, gw_real)
            loss.backward()
            pool.fill_data_diff()  # ddfast: was optimizer_img.zero_grad(); ...; optimizer_img.step()
            pool.backward(lr_it, ldb_it)  # ddfast
            if ol < run.outer_loop - 1:
                for _ in range(run.inner_loop):
                    train_epoch(net, image_syn.detach(), label_syn, optimizer_net, dsa=dsa)
        if it % 5 == 0 or it == iterations - 1:
            print(f"iter {it:4d}  GM loss {loss.item() / num_classes:.4f}  bpp {bpp:.3f}")

    data = ddfast.compress(pool.syn)  # the .ddf file: its size is the budget
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
