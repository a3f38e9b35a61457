"""Tests of ddfast.data: every reader on tiny files written to tmp_path, plus the bundled set."""
from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import ddfast.data.fashion_mnist as fmnist_mod
from ddfast.data import (
    CIFAR10_STATS,
    CIFAR100_DC_STATS,
    DATASET_NAMES,
    FASHION_MNIST_CLASSES,
    IMAGENET_STATS,
    IMAGENET_SUBSETS,
    ImageDataset,
    load,
    subset_classes,
)
from ddfast.data.idx import MAGIC_IMAGES_U8, MAGIC_LABELS_U8, parse_idx
from ddfast.data.imaging import decode_image
from ddfast.errors import ConfigError, DatasetError

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------- CIFAR helpers
def _dump(path: Path, obj) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def _cifar_batch(n: int, num_classes: int, label_key: str, bytes_keys: bool):
    data = RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in RNG.integers(0, num_classes, size=n)]
    k = (lambda s: s.encode()) if bytes_keys else (lambda s: s)
    return {k("batch_label"): k("batch"), k("data"): data, k(label_key): labels}, data, labels


def make_cifar10(parent: Path, n: int = 4, bytes_keys: bool = True):
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_data, train_labels = [], []
    for i in range(1, 6):
        rec, data, labels = _cifar_batch(n, 10, "labels", bytes_keys)
        _dump(folder / f"data_batch_{i}", rec)
        train_data.append(data)
        train_labels += labels
    rec, test_data, test_labels = _cifar_batch(n, 10, "labels", bytes_keys)
    _dump(folder / "test_batch", rec)
    names = [f"class{i}" for i in range(10)]
    key = b"label_names" if bytes_keys else "label_names"
    _dump(folder / "batches.meta", {key: [s.encode() if bytes_keys else s for s in names]})
    return folder, np.concatenate(train_data), train_labels, test_data, test_labels, names


# ----------------------------------------------------------------------------- CIFAR tests
@pytest.mark.parametrize("bytes_keys", [True, False])
def test_cifar10_round_trip_parent_and_folder(tmp_path, bytes_keys):
    folder, tr_data, tr_labels, te_data, te_labels, names = make_cifar10(tmp_path, 3, bytes_keys)
    for root in (tmp_path, folder, str(folder)):
        ds = load("CIFAR10", root=root)
        assert isinstance(ds, ImageDataset)
        assert ds.images.shape == (15, 3, 32, 32) and ds.images.dtype == torch.uint8
        assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == tr_labels
        assert torch.equal(ds.images, torch.from_numpy(tr_data.reshape(-1, 3, 32, 32)))
        # CHW row order: first 1024 values are the red plane
        assert torch.equal(ds.images[0, 0].flatten(), torch.from_numpy(tr_data[0, :1024]))
        assert ds.classes == names and ds.num_classes == 10
        assert ds.mean == CIFAR10_STATS[0] and ds.std == CIFAR10_STATS[1]
        assert ds.name == "cifar10" and ds.image_size == (32, 32) and ds.channels == 3
    te = load("cifar10", root=tmp_path, split="test")
    assert te.labels.tolist() == te_labels
    assert torch.equal(te.images, torch.from_numpy(te_data.reshape(-1, 3, 32, 32)))


def test_cifar_pickle_written_by_numpy1(tmp_path):
    """The original files name numpy.core.multiarray (numpy 1.x); that must load cleanly."""
    folder, *_ = make_cifar10(tmp_path)
    data = RNG.integers(0, 256, size=(2, 3072), dtype=np.uint8)
    raw = pickle.dumps({b"data": data, b"labels": [3, 4]}, protocol=2)
    legacy = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in legacy
    (folder / "test_batch").write_bytes(legacy)
    ds = load("cifar10", root=folder, split="test")
    assert torch.equal(ds.images, torch.from_numpy(data.reshape(2, 3, 32, 32)))
    assert ds.labels.tolist() == [3, 4]


def test_cifar100_fine_labels_and_stats(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rec, data, labels = _cifar_batch(6, 100, "fine_labels", True)
    rec[b"coarse_labels"] = [0] * 6
    _dump(folder / "train", rec)
    rec_t, data_t, labels_t = _cifar_batch(2, 100, "fine_labels", True)
    _dump(folder / "test", rec_t)
    names = [f"fine{i}" for i in range(100)]
    _dump(folder / "meta", {b"fine_label_names": [s.encode() for s in names],
                            b"coarse_label_names": [b"x"] * 20})
    ds = load("cifar100", root=tmp_path)
    assert ds.images.shape == (6, 3, 32, 32)
    assert torch.equal(ds.images, torch.from_numpy(data.reshape(-1, 3, 32, 32)))
    assert ds.labels.tolist() == labels and ds.classes == names
    # MTT normalizes CIFAR-100 with CIFAR-10's values; DC's own values are a constant.
    assert (ds.mean, ds.std) == CIFAR10_STATS
    assert CIFAR100_DC_STATS == ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762))
    assert load("cifar100", root=folder, split="test").labels.tolist() == labels_t


def test_cifar_errors(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DatasetError, match="does not exist") as e:
        load("cifar10", root=missing)
    assert str(missing) in str(e.value) and "cifar-10-batches-py" in str(e.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError) as e:
        load("cifar10", root=empty)
    msg = str(e.value)
    assert "expected cifar-10-batches-py/ with data_batch_1..5" in msg and str(empty) in msg
    with pytest.raises(DatasetError, match="cifar-100-python/ with train, test and meta"):
        load("cifar100", root=empty)

    folder, *_ = make_cifar10(tmp_path / "c")
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="missing data_batch_3"):
        load("cifar10", root=folder)
    assert len(load("cifar10", root=folder, split="test")) == 4  # the test split is intact

    (folder / "test_batch").write_bytes(b"this is not a pickle")
    with pytest.raises(DatasetError, match="not a readable cifar10 batch pickle"):
        load("cifar10", root=folder, split="test")
    _dump(folder / "test_batch", {b"labels": [1, 2]})
    with pytest.raises(DatasetError, match="no 'data' entry"):
        load("cifar10", root=folder, split="test")
    _dump(folder / "test_batch", [1, 2, 3])
    with pytest.raises(DatasetError, match="does not hold a CIFAR dict"):
        load("cifar10", root=folder, split="test")
    _dump(folder / "test_batch", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    with pytest.raises(DatasetError, match=r"shape \[N, 3072\]"):
        load("cifar10", root=folder, split="test")
    _dump(folder / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    with pytest.raises(DatasetError, match=r"labels must lie in 0\.\.9"):
        load("cifar10", root=folder, split="test")
    _dump(folder / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]})
    with pytest.raises(DatasetError, match="2 images but 1"):
        load("cifar10", root=folder, split="test")
    nested: list = [0]
    for _ in range(100):
        nested = [nested]
    for data, found in ((nested, "list"), ([[0] * 3072] * 2, "list")):
        _dump(folder / "test_batch", {b"data": data, b"labels": [0, 1]})
        message = f"'data' must be a uint8 numpy array of shape \\[N, 3072\\], got a {found}"
        with pytest.raises(DatasetError, match=message):
            load("cifar10", root=folder, split="test")

    # a pickle that would run code is refused, not executed
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / "test_batch").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(DatasetError, match="refusing to load global"):
        load("cifar10", root=folder, split="test")
    assert not marker.exists()


# ----------------------------------------------------------------------------- IDX helpers
def idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_fmnist(folder: Path, n_train=7, n_test=3, gz=False, dotted=False):
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = RNG.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = RNG.integers(0, 10, size=n).astype(np.uint8)
        sep = "." if dotted else "-"
        for kind, arr, magic, nd in (("images", images, MAGIC_IMAGES_U8, 3),
                                     ("labels", labels, MAGIC_LABELS_U8, 1)):
            raw = idx_bytes(arr, magic)
            name = f"{prefix}-{kind}{sep}idx{nd}-ubyte"
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
        out[prefix] = (images, labels)
    return out


def _check_fmnist(ds, images, labels):
    assert ds.images.shape == (len(images), 1, 28, 28) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[:, 0], torch.from_numpy(images))
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == labels.tolist()
    assert ds.classes == list(FASHION_MNIST_CLASSES) and ds.classes[0] == "T-shirt/top"
    assert ds.mean == (0.2861,) and ds.std == (0.3530,) and ds.name == "fashion_mnist"


# ----------------------------------------------------------------------------- Fashion-MNIST
@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_torchvision_layout(tmp_path, gz):
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    ref = write_fmnist(raw, gz=gz)
    for root in (tmp_path / "data", tmp_path / "data" / "FashionMNIST", raw):
        _check_fmnist(load("fashion_mnist", root=root), *ref["train"])
        _check_fmnist(load("FashionMNIST", root=root, split="test"), *ref["t10k"])


@pytest.mark.parametrize("gz,dotted", [(False, False), (True, False), (False, True)])
def test_fashion_mnist_plain_folder(tmp_path, gz, dotted):
    ref = write_fmnist(tmp_path / "fm", gz=gz, dotted=dotted)
    _check_fmnist(load("fmnist", root=tmp_path / "fm"), *ref["train"])
    _check_fmnist(load("fmnist", root=tmp_path / "fm", split="test"), *ref["t10k"])


def test_fashion_mnist_default_root(tmp_path, monkeypatch):
    ref = write_fmnist(tmp_path / "debian", gz=True)
    monkeypatch.setattr(fmnist_mod, "DEFAULT_ROOT", tmp_path / "debian")
    _check_fmnist(load("fashion_mnist"), *ref["train"])
    monkeypatch.setattr(fmnist_mod, "DEFAULT_ROOT", tmp_path / "absent")
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        load("fashion_mnist")


def test_fashion_mnist_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as e:
        load("fashion_mnist", root=tmp_path / "missing")
    assert str(tmp_path / "missing") in str(e.value)

    (tmp_path / "wrong").mkdir()
    (tmp_path / "wrong" / "readme.txt").write_text("hi")
    with pytest.raises(DatasetError) as e:
        load("fashion_mnist", root=tmp_path / "wrong")
    assert "train-images-idx3-ubyte" in str(e.value) and "FashionMNIST/raw" in str(e.value)

    folder = tmp_path / "fm"
    write_fmnist(folder, n_train=5)
    images_file = folder / "train-images-idx3-ubyte"
    good = images_file.read_bytes()

    images_file.write_bytes(good[:-100])  # truncated payload
    with pytest.raises(DatasetError, match="truncated IDX file") as e:
        load("fashion_mnist", root=folder)
    assert str(images_file) in str(e.value) and "5 x 28 x 28" in str(e.value)

    images_file.write_bytes(good[:10])  # truncated header
    with pytest.raises(DatasetError, match="truncated IDX header"):
        load("fashion_mnist", root=folder)

    images_file.write_bytes(b"\x12\x34" + good[2:])  # bad magic
    with pytest.raises(DatasetError, match="bad IDX magic number 0x12340803"):
        load("fashion_mnist", root=folder)

    images_file.write_bytes((folder / "train-labels-idx1-ubyte").read_bytes())  # labels file
    with pytest.raises(DatasetError, match="expected 0x00000803"):
        load("fashion_mnist", root=folder)

    images_file.write_bytes(good + b"\x00\x00")
    with pytest.raises(DatasetError, match="2 unexpected bytes"):
        load("fashion_mnist", root=folder)

    images_file.unlink()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(good)[:-30])
    with pytest.raises(DatasetError, match="damaged or truncated gzip"):
        load("fashion_mnist", root=folder)

    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(good))
    labels_file = folder / "train-labels-idx1-ubyte"
    labels_file.write_bytes(idx_bytes(np.zeros(4, np.uint8), MAGIC_LABELS_U8))
    with pytest.raises(DatasetError, match="5 images but .* 4 labels"):
        load("fashion_mnist", root=folder)


def test_parse_idx_other_types():
    arr = np.arange(6, dtype=">i4").reshape(2, 3)
    raw = (0x0C02).to_bytes(4, "big") + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    out = parse_idx(raw + arr.tobytes(), "mem")
    assert out.dtype == np.int32 and out.tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(DatasetError, match="no header"):
        parse_idx(b"\x00", "mem")


def test_idx_sizes_that_overflow_and_gzip_bombs_are_refused_early(tmp_path):
    from ddfast.data import idx

    huge = (0x0803).to_bytes(4, "big") + b"".join((65536).to_bytes(4, "big") for _ in range(3))
    with pytest.raises(DatasetError, match="truncated IDX file: header says 65536 x 65536 x 65536 values"):
        parse_idx(huge, "mem")
    wraps = (0x0C04).to_bytes(4, "big") + b"".join((1 << 16).to_bytes(4, "big") for _ in range(4))
    with pytest.raises(DatasetError, match="truncated IDX file"):  # 2^64 x 4 bytes wraps in int64
        parse_idx(wraps + b"\0" * 16, "mem")
    header = (0x0803).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in (1, 28, 28))
    bomb = gzip.compress(header + bytes(784) + bytes(64 << 20), compresslevel=9)
    assert len(bomb) < 100_000
    (tmp_path / "bomb.gz").write_bytes(bomb)
    with pytest.raises(DatasetError, match="holds more than the 800 bytes its IDX header declares"):
        idx.read_idx(tmp_path / "bomb.gz")
    (tmp_path / "huge.gz").write_bytes(gzip.compress(huge))
    with pytest.raises(DatasetError, match="declares .* bytes, more than the"):
        idx.read_idx(tmp_path / "huge.gz")
    two_members = gzip.compress(header + bytes(400)) + gzip.compress(bytes(384))
    (tmp_path / "two.gz").write_bytes(two_members)
    assert idx.read_idx(tmp_path / "two.gz").shape == (1, 28, 28)


# ----------------------------------------------------------------------------- ImageNet
def _save_image(path: Path, size_wh, fmt: str, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ch = 3 if mode == "RGB" else 1
    arr = RNG.integers(0, 256, size=(size_wh[1], size_wh[0], ch), dtype=np.uint8)
    Image.fromarray(arr if ch == 3 else arr[..., 0], mode).save(path, format=fmt)


def _decode_ref(path: Path, size, mode="RGB") -> torch.Tensor:
    arr = np.asarray(Image.open(path).convert(mode))
    t = torch.from_numpy(arr.copy()).float().div(255)
    t = t.permute(2, 0, 1) if t.dim() == 3 else t.unsqueeze(0)
    if size is None:
        return t
    return F.interpolate(t[None], size=size, mode="bilinear", align_corners=False,
                         antialias=False)[0]


def make_imagenet_tree(root: Path, subset: str, skip: int = 0):
    """Two train images (PNG + JPEG, different sizes) and one val image per class."""
    classes = subset_classes(subset)
    for k, (_, wnid, _) in enumerate(classes):
        if k < skip:
            continue
        _save_image(root / "train" / wnid / f"{wnid}_1.JPEG", (40, 30), "JPEG")
        _save_image(root / "train" / wnid / f"{wnid}_0.png", (24, 36), "PNG")
        _save_image(root / "val" / wnid / "ILSVRC2012_val_x.JPEG", (20, 20), "JPEG")
    return classes


def test_imagenet_class_table():
    nette = subset_classes("imagenette")
    assert [w for _, w, _ in nette] == [
        "n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
        "n03394916", "n03417042", "n03425413", "n03445777", "n03888257",
    ]
    assert nette[0] == (0, "n01440764", "tench") and nette[-1][2] == "parachute"
    assert set(IMAGENET_SUBSETS) == {
        "imagenette", "imagewoof", "imagefruit", "imageyellow", "imagemeow", "imagesquawk"}
    for name in IMAGENET_SUBSETS:
        rows = subset_classes(name)
        assert len(rows) == 10 and len({w for _, w, _ in rows}) == 10
    # shared classes get the same wnid wherever they appear (banana, lemon, lion)
    wnid = {i: w for n in IMAGENET_SUBSETS for i, w, _ in subset_classes(n)}
    assert wnid[954] == "n07753592" and wnid[951] == "n07749582" and wnid[291] == "n02129165"
    assert [n for _, _, n in subset_classes("imagewoof")][:3] == [
        "Australian terrier", "Border terrier", "Samoyed"]


def test_imagenet_missing_classes_then_complete(tmp_path):
    classes = make_imagenet_tree(tmp_path, "imagenette", skip=2)
    with pytest.raises(DatasetError) as e:
        load("imagenette", root=tmp_path, image_size=16)
    msg = str(e.value)
    assert "2 of 10 class folders missing" in msg and str(tmp_path / "train") in msg
    assert "n01440764 (tench)" in msg and "n02102040 (English springer)" in msg
    assert "n02979186" not in msg

    make_imagenet_tree(tmp_path, "imagenette")
    ds = load("ImageNette", root=tmp_path, image_size=16, progress=False)
    assert ds.images.shape == (20, 3, 16, 16) and ds.images.dtype == torch.float32
    assert ds.labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert ds.classes == [n for _, _, n in classes] and ds.name == "imagenette"
    assert (ds.mean, ds.std) == IMAGENET_STATS
    # files are read sorted by name, each resized exactly like a direct F.interpolate
    for k, (_, wnid, _) in enumerate(classes[:3]):
        files = [tmp_path / "train" / wnid / f"{wnid}_0.png",
                 tmp_path / "train" / wnid / f"{wnid}_1.JPEG"]
        for j, f in enumerate(files):
            torch.testing.assert_close(ds.images[2 * k + j], _decode_ref(f, (16, 16)),
                                       rtol=0, atol=1e-6)

    # defaults: 128x128 float32; "test" is the val split
    val = load("imagenette", root=tmp_path, split="test", progress=False)
    assert val.images.shape == (10, 3, 128, 128) and val.labels.tolist() == list(range(10))
    f = tmp_path / "val" / classes[4][1] / "ILSVRC2012_val_x.JPEG"
    torch.testing.assert_close(val.images[4], _decode_ref(f, (128, 128)), rtol=0, atol=1e-6)
    assert 0.0 <= float(val.images.min()) and float(val.images.max()) <= 1.0

    few = load("imagenette", root=tmp_path, image_size=(12, 20), limit_per_class=1,
               dtype="uint8", workers=1, progress=False)
    assert few.images.shape == (10, 3, 12, 20) and few.images.dtype == torch.uint8
    ref = _decode_ref(tmp_path / "train" / classes[0][1] / f"{classes[0][1]}_0.png", (12, 20))
    assert torch.equal(few.images[0], ref.mul(255).round().to(torch.uint8))


def test_imagenet_resize_is_not_antialiased(tmp_path):
    make_imagenet_tree(tmp_path, "imagewoof")
    ds = load("imagewoof", root=tmp_path, image_size=8, limit_per_class=1, progress=False)
    wnid = subset_classes("imagewoof")[0][1]
    src = _decode_ref(tmp_path / "train" / wnid / f"{wnid}_0.png", None)
    no_aa = F.interpolate(src[None], (8, 8), mode="bilinear", align_corners=False,
                          antialias=False)[0]
    aa = F.interpolate(src[None], (8, 8), mode="bilinear", align_corners=False,
                       antialias=True)[0]
    torch.testing.assert_close(ds.images[0], no_aa, rtol=0, atol=1e-6)
    assert not torch.allclose(ds.images[0], aa, atol=1e-3)
    # normalize-then-resize (the reference order) equals resize-then-normalize
    ref = F.interpolate(ds.normalize(src)[None], (8, 8), mode="bilinear",
                        align_corners=False, antialias=False)[0]
    torch.testing.assert_close(ds.normalize(ds.images[0]), ref, rtol=0, atol=1e-5)


def test_imagenet_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load("imagefruit", root=tmp_path / "none")
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetError, match="no val/ folder") as e:
        load("imagefruit", root=tmp_path, split="val")
    assert "root/{train,val}/<wnid>/*.JPEG" in str(e.value)
    with pytest.raises(DatasetError, match="10 of 10 class folders missing"):
        load("imagefruit", root=tmp_path)
    make_imagenet_tree(tmp_path, "imagemeow")
    (tmp_path / "train" / subset_classes("imagemeow")[3][1] / "x.txt").write_text("")
    for p in (tmp_path / "train" / subset_classes("imagemeow")[3][1]).glob("*.*[gG]"):
        p.unlink()
    with pytest.raises(DatasetError, match="holds no image files"):
        load("imagemeow", root=tmp_path, image_size=8, progress=False)
    _save_image(tmp_path / "train" / subset_classes("imagemeow")[3][1] / "ok.png", (9, 9), "PNG")
    bad = tmp_path / "train" / subset_classes("imagemeow")[0][1] / "zz_bad.JPEG"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="cannot decode image .*zz_bad.JPEG"):
        load("imagemeow", root=tmp_path, image_size=8, progress=False)
    with pytest.raises(ConfigError, match="image_size"):
        load("imagemeow", root=tmp_path, image_size="big")


# ----------------------------------------------------------------------------- imagefolder
def test_imagefolder_exact_pixels_and_stats(tmp_path):
    for split, n in (("train", 3), ("test", 1)):
        for cls in ("dog", "cat", "bird"):
            for i in range(n):
                _save_image(tmp_path / split / cls / f"{i}.png", (10, 6), "PNG")
    (tmp_path / "train" / ".hidden").mkdir()
    ds = load("imagefolder", root=tmp_path, progress=False)
    assert ds.classes == ["bird", "cat", "dog"] and ds.name == "imagefolder"
    assert ds.images.shape == (9, 3, 6, 10) and ds.images.dtype == torch.uint8
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    ref = np.asarray(Image.open(tmp_path / "train" / "cat" / "1.png"))
    assert torch.equal(ds.images[4], torch.from_numpy(ref.copy()).permute(2, 0, 1))
    x = ds.to_float().double()
    mean = x.mean(dim=(0, 2, 3))
    std = x.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1, unbiased=False)
    assert np.allclose(ds.mean, mean.numpy(), atol=1e-9)
    assert np.allclose(ds.std, std.numpy(), atol=1e-9)
    assert len(load("imagefolder", root=tmp_path, split="test", progress=False)) == 3
    with pytest.raises(DatasetError, match="no val/ folder"):
        load("imagefolder", root=tmp_path, split="val")


def test_imagefolder_sizes_gray_and_resize(tmp_path):
    _save_image(tmp_path / "a" / "x.png", (8, 8), "PNG", mode="L")
    _save_image(tmp_path / "b" / "y.bmp", (12, 10), "BMP", mode="L")
    with pytest.raises(DatasetError, match="images differ in size") as e:
        load("imagefolder", root=tmp_path, progress=False)
    assert "image_size=" in str(e.value)
    ds = load("imagefolder", root=tmp_path, image_size=6, progress=False)
    assert ds.images.shape == (2, 1, 6, 6) and ds.images.dtype == torch.float32
    assert len(ds.mean) == 1
    torch.testing.assert_close(ds.images[1], _decode_ref(tmp_path / "b" / "y.bmp", (6, 6), "L"),
                               rtol=0, atol=1e-6)
    rgb = load("imagefolder", root=tmp_path, image_size=6, channels=3, progress=False)
    assert rgb.images.shape == (2, 3, 6, 6)

    with pytest.raises(DatasetError, match="no class folders"):
        load("imagefolder", root=tmp_path / "a")
    with pytest.raises(DatasetError, match="does not exist"):
        load("imagefolder", root=tmp_path / "zzz")


def test_imagefolder_high_depth_images_keep_their_range(tmp_path):
    """16-bit PNGs and float TIFFs scale to 0..255 (Pillow's convert would clip or truncate them);
    values outside their range are refused, naming the file."""
    ramp16 = np.array([[0, 257, 32896, 65535]], dtype=np.uint16).repeat(4, axis=0)
    Image.fromarray(ramp16).save(tmp_path / "a16.png")
    assert Image.open(tmp_path / "a16.png").mode.startswith("I")
    ramp_f = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32).repeat(4, axis=0)
    Image.fromarray(ramp_f, mode="F").save(tmp_path / "f.tiff")
    expected = torch.tensor([0, 1, 128, 255], dtype=torch.uint8)
    for name, row in (("a16.png", expected), ("f.tiff", torch.tensor([0, 64, 128, 255], dtype=torch.uint8))):
        gray = decode_image(tmp_path / name, channels=1)
        assert gray.shape == (1, 4, 4) and torch.equal(gray[0, 0], row), name
        assert torch.equal(decode_image(tmp_path / name, channels=3), gray.expand(3, -1, -1))
    Image.fromarray(np.array([[0.0, 2.5]], dtype=np.float32), mode="F").save(tmp_path / "big.tiff")
    with pytest.raises(DatasetError, match=r"big.tiff: float pixels must be finite and in \[0, 1\]"):
        decode_image(tmp_path / "big.tiff", channels=1)
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32), mode="I").save(tmp_path / "i32.tiff")
    with pytest.raises(DatasetError, match="i32.tiff: I pixels must be 16-bit"):
        decode_image(tmp_path / "i32.tiff", channels=1)
    folder = tmp_path / "set" / "cls"
    folder.mkdir(parents=True)
    Image.fromarray(ramp16).save(folder / "x.png")
    ds = load("imagefolder", root=tmp_path / "set", progress=False)
    assert ds.channels == 1 and torch.equal(ds.images[0, 0, 0], expected)


# ----------------------------------------------------------------------------- bundled
def test_bundled_both_splits():
    tr = load("bundled")
    te = load("bundled", root=None, split="test")
    for ds, per_class in ((tr, 50), (te, 20)):
        assert ds.images.dtype == torch.uint8 and ds.images.shape[1:] == (1, 28, 28)
        assert ds.class_counts() == [per_class] * 10 and len(ds) == 10 * per_class
        assert ds.classes == list(FASHION_MNIST_CLASSES) and ds.name == "bundled"
        assert ds.mean == (0.2861,) and ds.std == (0.3530,)
        assert int(ds.images.max()) > 200  # real images, not blank
    assert ds.channels == 1 and ds.image_size == (28, 28)


# ----------------------------------------------------------------------------- ImageDataset
def _toy(n_per=(3, 1, 2)) -> ImageDataset:
    labels = torch.tensor([c for c, k in enumerate(n_per) for _ in range(k)])[[5, 0, 3, 1, 4, 2]]
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 2, 2, 2).clone()
    return ImageDataset(images, labels, ["a", "b", "c"], (0.5, 0.5), (0.25, 0.5), "toy")


def test_take_per_class_and_selection():
    ds = load("bundled")
    first = ds.take_per_class(3)
    assert first.labels.tolist() == [c for c in range(10) for _ in range(3)]
    assert torch.equal(first.images[:3], ds.by_class()[0][:3])
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    r1, r2 = ds.take_per_class(4, generator=g1), ds.take_per_class(4, generator=g2)
    assert torch.equal(r1.images, r2.images) and r1.class_counts() == [4] * 10
    assert not torch.equal(r1.images, ds.take_per_class(4).images)
    with pytest.raises(ConfigError, match="fewer than 51 images") as e:
        ds.take_per_class(51)
    assert "'T-shirt/top' (label 0): 50" in str(e.value)

    toy = _toy()
    assert [len(x) for x in toy.by_class()] == [3, 1, 2]
    assert toy.by_class()[2][:, 0, 0, 0].tolist() == [0, 4]  # dataset order within a class
    with pytest.raises(ConfigError, match=r"'b' \(label 1\): 1"):
        toy.take_per_class(2)
    sub = toy.subset(toy.labels == 0)
    assert sub.labels.tolist() == [0, 0, 0] and sub.classes == toy.classes
    assert toy.subset([5, 0]).images[:, 0, 0, 0].tolist() == [5, 0]


def test_normalize_and_validation():
    toy = _toy()
    x = toy.to_float()
    assert x.dtype == torch.float32 and float(x.max()) == pytest.approx(5 / 255)
    y = toy.normalize(x)
    torch.testing.assert_close(y[:, 0], (x[:, 0] - 0.5) / 0.25)
    torch.testing.assert_close(y[:, 1], (x[:, 1] - 0.5) / 0.5)
    torch.testing.assert_close(toy.denormalize(y), x)
    with pytest.raises(ConfigError, match="float tensor"):
        toy.normalize(toy.images)
    with pytest.raises(ConfigError, match="labels must lie"):
        ImageDataset(toy.images, torch.full((6,), 3), ["a", "b", "c"], (0, 0), (1, 1), "x")
    with pytest.raises(ConfigError, match="2 values"):
        ImageDataset(toy.images, toy.labels, ["a", "b", "c"], (0,), (1,), "x")
    assert "n=6" in repr(toy)


# ----------------------------------------------------------------------------- load()
def test_load_names_splits_and_options(tmp_path):
    assert set(DATASET_NAMES) == {
        "cifar10", "cifar100", "fashion_mnist", "imagenette", "imagewoof", "imagefruit",
        "imageyellow", "imagemeow", "imagesquawk", "imagefolder", "bundled"}
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'") as e:
        load("mnist")
    assert "cifar10" in str(e.value) and "imagesquawk" in str(e.value)
    with pytest.raises(ConfigError, match="unknown split 'validation'") as e:
        load("bundled", split="validation")
    assert "train, test" in str(e.value)
    with pytest.raises(ConfigError, match="unknown split 'val' for cifar10"):
        load("cifar10", root=tmp_path, split="val")
    with pytest.raises(ConfigError, match="valid splits: train, val, test"):
        load("imagenette", root=tmp_path, split="dev")
    with pytest.raises(ConfigError, match="unknown option.*image_size.*valid options: none"):
        load("bundled", image_size=32)
    with pytest.raises(ConfigError, match="valid options: image_size"):
        load("imagenette", root=tmp_path, size=32)
    assert load("BUNDLED", split="TEST").name == "bundled"
