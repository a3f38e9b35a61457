"""Soft labels: their bitrate (DD-RUO (A4)), the simplex quantizer, the .ddf section, and training on them."""
import itertools
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ddfast
import ddfast.distill.training as training
from ddfast import _cpu
from ddfast.cli import main
from ddfast.coding import decode, encode, inspect, quantize_at
from ddfast.coding.binary import varint
from ddfast.coding.container import unpack
from ddfast.distill.dsa import DSA
from ddfast.errors import BitstreamError, ConfigError
from ddfast.eval import evaluate
from ddfast.labels import SoftLabels, quantize_soft_labels, resolution_of, soft_cross_entropy, soft_label_bits

from coding_helpers import FINE_STEPS, random_set

GOLDEN = Path(__file__).parent / "data" / "golden.ddf"
COUNTS = [3, 2]  # images per class of the small file: rows 0-2 are class 0, rows 3-4 class 1


# -- the bitrate of (A4) -------------------------------------------------------------------------
def test_soft_label_bits_matches_the_papers_figure():
    bits = soft_label_bits(1000, 2 ** -24)
    assert math.floor(bits) == 15456  # "r(Y) ~ 15,456 bits/vector" (DD-RUO, A1)
    assert bits == pytest.approx(999 * 24 - sum(math.log2(j) for j in range(1, 1000)), rel=1e-12)
    assert soft_label_bits(1, 0.5) == 0.0 and soft_label_bits(2, 2 ** -10) == 10.0


def _lattice_points(k: int, m: int) -> int:
    """Brute force: K-tuples of non-negative integers that sum to M."""
    return sum(1 for head in itertools.product(range(m + 1), repeat=k - 1) if sum(head) <= m)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("m", [1, 2, 4, 8, 16])
def test_soft_label_bits_is_the_volume_approximation_of_the_lattice_count(k, m):
    count = _lattice_points(k, m)
    assert count == math.comb(m + k - 1, k - 1)
    bits = soft_label_bits(k, 1 / m)
    # log2 C(M + K - 1, K - 1) = (A4) + sum_j log2(1 + j / M): never below (A4), within K(K-1) / (2 M ln 2)
    assert math.log2(count) == pytest.approx(bits + sum(math.log2(1 + j / m) for j in range(1, k)), abs=1e-9)
    assert bits - 1e-9 <= math.log2(count) <= bits + k * (k - 1) / (2 * m * math.log(2)) + 1e-9


def test_soft_label_bits_approaches_the_count_at_fine_resolution():
    exact = math.log2(math.comb(2 ** 20 + 9, 9))
    assert exact - soft_label_bits(10, 2 ** -20) == pytest.approx(0, abs=1e-4)


def test_bad_arguments_are_refused():
    for k, eps in ((0, 0.1), (2.0, 0.1), (True, 0.1), (3, 0), (3, 1.5), (3, "x")):
        with pytest.raises(ConfigError):
            soft_label_bits(k, eps)
    assert resolution_of(2 ** -16) == 65536 and resolution_of(1e-4) == 10000 and resolution_of(1) == 1
    for eps in (0.3, 0, -0.5, float("nan"), 2 ** -33):
        with pytest.raises(ConfigError, match="eps"):
            resolution_of(eps)


# -- the quantizer ------------------------------------------------------------------------------
def test_largest_remainders_fill_each_row_to_m():
    labels = quantize_soft_labels(torch.tensor([[0.5, 0.3, 0.2], [0.25, 0.25, 0.5]]), 1 / 7)
    # 3.5, 2.1, 1.4 -> 3, 2, 1 + the missing 1 to the largest remainder; 1.75, 1.75, 3.5 -> 1, 1, 3 + ties: lower first
    assert labels.counts.tolist() == [[4, 2, 1], [2, 2, 3]] and labels.resolution == 7
    assert labels.probabilities().dtype == torch.float32


def test_quantized_rows_sum_exactly_and_round_trip():
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(4 * torch.randn(50, 10, generator=gen), 1)
    for eps in (2 ** -24, 2 ** -8, 1 / 3, 1):
        labels = quantize_soft_labels(probs, eps)
        m = resolution_of(eps)
        assert labels.counts.dtype == torch.int64 and (labels.counts.sum(1) == m).all() and (labels.counts >= 0).all()
        assert (labels.counts.double() - probs.double() / probs.double().sum(1, keepdim=True) * m).abs().max() < 1
        again = quantize_soft_labels(labels.probabilities(), eps)
        assert torch.equal(again.counts, labels.counts)
    assert quantize_soft_labels(probs, 1).counts.argmax(1).tolist() == probs.argmax(1).tolist()


def test_quantizer_refuses_what_is_not_a_probability_row():
    for bad, message in ((torch.tensor([[0.5, 0.6]]), "sum to 1"), (torch.tensor([[1.5, -0.5]]), "non-negative"),
                         (torch.tensor([[float("nan"), 1.0]]), "finite"), (torch.tensor([0.5, 0.5]), r"\[N, K\]"),
                         (torch.tensor([[1, 0]]), r"\[N, K\]")):
        with pytest.raises(ConfigError, match=message):
            quantize_soft_labels(bad, 2 ** -8)
    with pytest.raises(ConfigError, match="sum to M"):
        SoftLabels(torch.tensor([[3, 4]]), 8)


# -- the .ddf section ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qset():
    return quantize_at(random_set(COUNTS, (12, 10), 3, 16, 2, 2, seed=1), FINE_STEPS)


@pytest.fixture(scope="module")
def soft() -> torch.Tensor:
    """Soft labels of the five images, mostly peaked on their own class, one peaked on the other."""
    return torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.05, 0.95], [0.5, 0.5]])


@pytest.fixture(scope="module")
def files(qset, soft) -> dict:
    plain = encode(qset, 64)
    qset.soft_labels = quantize_soft_labels(soft, 2 ** -24)
    try:
        labelled = encode(qset, 64)
    finally:
        qset.soft_labels = None
    return {"plain": plain, "labelled": labelled}


def test_soft_labels_round_trip_exactly(files, soft):
    expected = quantize_soft_labels(soft, 2 ** -24)
    back = decode(files["labelled"]).soft_labels
    assert back.resolution == 2 ** 24 and torch.equal(back.counts, expected.counts)
    out = ddfast.decompress(files["labelled"])
    images, labels = out
    assert torch.equal(out.soft_labels, expected.probabilities())  # bit for bit
    assert out.images is images and labels.tolist() == [0, 0, 0, 1, 1]
    part = ddfast.decompress(files["labelled"], classes=[1])
    assert torch.equal(part.soft_labels, expected.probabilities()[3:])
    assert torch.equal(decode(files["labelled"], classes=[1]).soft_labels.counts, expected.counts[3:])
    assert encode(decode(files["labelled"]), 64) == files["labelled"]


def test_files_without_soft_labels_are_unchanged(files):
    golden = GOLDEN.read_bytes()
    assert decode(golden).soft_labels is None and ddfast.decompress(golden).soft_labels is None
    assert encode(decode(golden), 64) == golden
    plain, labelled = unpack(files["plain"]), unpack(files["labelled"])
    assert plain.label_span is None and not plain.header.soft_labels
    # The labelled file is the plain one with flag bit 2 set and the section appended.
    first = labelled.label_span[0]
    assert first == len(files["plain"]) and plain.header_bytes == labelled.header_bytes
    assert files["labelled"][plain.header_bytes:first] == files["plain"][plain.header_bytes:]
    differ = [i for i in range(plain.header_bytes) if files["plain"][i] != files["labelled"][i]]
    flags_at = plain.header_bytes - 4 - 1  # header: ... flags (last field, no normalization), CRC32
    assert differ[0] == flags_at and files["labelled"][flags_at] == files["plain"][flags_at] | 4
    assert all(i >= flags_at for i in differ)


def test_inspect_itemizes_the_soft_label_bytes(files, tmp_path, capsys):
    info = inspect(files["labelled"], estimate=False)
    extra = len(files["labelled"]) - len(files["plain"])
    assert info.bytes["soft_labels"] == extra and sum(info.bytes.values()) == info.total_bytes
    assert info.bytes_per_class == len(files["labelled"]) / 2
    assert info.soft_labels == {"rows": 5, "classes": 2, "eps": 2 ** -24, "bits_per_label": 8 * extra / 5,
                                "bound_bits_per_label": 24.0}
    assert "soft_labels" not in inspect(files["plain"], estimate=False).bytes
    path = tmp_path / "labelled.ddf"
    path.write_bytes(files["labelled"])
    assert main(["info", str(path), "--no-estimate"]) == 0
    out = capsys.readouterr().out
    assert f"soft_labels {extra:>10}" in out and "5 x 2 at eps 5.96046e-08" in out


def test_compress_takes_soft_labels_and_checks_them_first(monkeypatch, soft):
    syn = random_set(COUNTS, (12, 10), 3, 16, 2, 2, seed=1)
    import ddfast.coding.encoder as encoder

    monkeypatch.setattr(encoder, "post_quantize", lambda *a, **k: pytest.fail("work started"))
    for bad, message in (((soft[:4], 2 ** -8), r"one row per image .*\(5 x 2\)"), ((soft, 0.3), "eps"),
                         ("labels", "SoftLabels")):
        with pytest.raises(ConfigError, match=message):
            ddfast.compress(syn, soft_labels=bad)


def _with_label_payload(data: bytes, payload: bytes) -> bytes:
    """``data`` with its soft-label section's payload replaced (length and CRC32 recomputed)."""
    first = unpack(data).label_span[0]
    return data[:first] + varint(len(payload)) + payload + zlib.crc32(payload).to_bytes(4, "little")


def _payload(resolution: int, order: int, values, orders) -> bytes:
    codes = _cpu.eg_encode(np.array(values, np.int64), np.array(orders, np.int32))
    return varint(resolution) + bytes([order]) + codes


def test_damaged_soft_labels_are_reported(files):
    data = files["labelled"]
    start, end = unpack(data).label_span[1:]
    flipped = bytearray(data)
    flipped[end - 1] ^= 0x01
    with pytest.raises(BitstreamError, match="soft-label section, bytes .*CRC32 mismatch"):
        decode(bytes(flipped))
    with pytest.raises(BitstreamError, match="soft-label section"):
        decode(data[:-3])
    zero = [0] * 5
    valid = _payload(8, 0, zero + [1, 2, 3, 1, 3], [0] * 10)  # rows (7,1) (6,2) (5,3) (1,7) (3,5)
    assert decode(_with_label_payload(data, valid)).soft_labels.counts.tolist() == [[7, 1], [6, 2], [5, 3], [1, 7],
                                                                                     [3, 5]]
    cases = {
        _payload(8, 0, [2] + zero[1:] + [1, 2, 3, 1, 3], [0] * 10): "largest-count offset 2 is not below 2",
        _payload(8, 0, zero + [9, 2, 3, 1, 3], [0] * 10): r"value 5 at bit \d+ is 9, beyond \+-8",
        _payload(8, 0, zero + [1, 2, 3, 1, 5], [0] * 10): "soft label 4: its counts are not a label",  # (5, 3)
        _payload(8, 0, zero + [1, -2, 3, 1, 3], [0] * 10): "negative value at index 6",
        valid + b"\x00": "bytes or bits left over",
        _payload(8, 13, zero + [1, 2, 3, 1, 3], [0] * 10): "order 13",
        _payload(0, 0, zero + [1, 2, 3, 1, 3], [0] * 10): "resolution must be positive",
    }
    for payload, message in cases.items():
        with pytest.raises(BitstreamError, match=f"soft-label section, byte \\d+: .*{message}"):
            decode(_with_label_payload(data, payload))
    padded = bytearray(valid)
    padded[-1] |= 0x01  # the last padding bit: the ten codes take 5 + 24 = 29 bits
    with pytest.raises(BitstreamError, match="left over"):
        decode(_with_label_payload(data, bytes(padded)))
    # The flag without the section: the file ends where the section should start.
    plain_with_flag = files["labelled"][:unpack(data).label_span[0]]
    with pytest.raises(BitstreamError, match="soft-label section"):
        decode(plain_with_flag)


# -- training on soft labels --------------------------------------------------------------------
def test_soft_cross_entropy_equals_cross_entropy_on_one_hot_targets():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=gen, requires_grad=True)
    labels = torch.tensor([0, 3, 1, 1, 2, 0])
    soft = soft_cross_entropy(logits, F.one_hot(labels, 4).float())
    hard = F.cross_entropy(logits, labels)
    torch.testing.assert_close(soft, hard, rtol=0, atol=1e-7)
    (g_soft,), (g_hard,) = torch.autograd.grad(soft, logits), torch.autograd.grad(hard, logits)
    torch.testing.assert_close(g_soft, g_hard, rtol=0, atol=1e-7)
    uniform = soft_cross_entropy(torch.zeros(2, 4), torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]]))
    assert float(uniform) == pytest.approx(math.log(4))
    two = soft_cross_entropy(torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([[0.5, 0.5]]))
    assert float(two) == pytest.approx(0.5 * math.log(4) + 0.5 * math.log(4 / 3))


class _Recorder(torch.nn.Module):
    """Logits from each image's constant value, and a record of the values it saw."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(k))
        self.seen = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.mean((1, 2, 3)).detach().round().long())
        return x.mean((1, 2, 3))[:, None] * self.w


def test_dsa_batches_keep_each_image_with_its_soft_label(monkeypatch):
    n, k = 8, 3
    images = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()
    targets = torch.softmax(torch.randn(n, k, generator=torch.Generator().manual_seed(1)), 1)
    seen_targets = []

    def recording_loss(out, y):
        seen_targets.append(y)
        return soft_cross_entropy(out, y)

    monkeypatch.setattr(training, "soft_cross_entropy", recording_loss)
    net = _Recorder(k)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    training.train_epoch(net, images, targets, opt, batch_size=3, dsa=DSA("flip", seed=0),
                         generator=torch.Generator().manual_seed(2))
    assert len(seen_targets) == 3
    for ids, y in zip(net.seen, seen_targets):
        assert torch.equal(y, targets[ids])
    assert sorted(torch.cat(net.seen).tolist()) == list(range(n))


def test_evaluate_trains_on_a_files_soft_labels(files):
    out = ddfast.decompress(files["labelled"])
    gen = torch.Generator().manual_seed(3)
    test = (torch.rand(6, 3, 12, 10, generator=gen), torch.tensor([0, 1] * 3))
    result = evaluate(out.images, out.labels, test, arch="ConvNetW32", runs=1, epochs=2, seed=0,
                      soft_labels=out.soft_labels, progress=False)
    assert len(result.accuracies) == 1 and result.epochs == 2 and 0 <= result.accuracies[0] <= 1
    with pytest.raises(ConfigError, match="one row per image: 5 rows, got 4"):
        evaluate(out.images, out.labels, test, arch="ConvNetW32", runs=1, epochs=2, soft_labels=out.soft_labels[:4],
                 progress=False)
    with pytest.raises(ConfigError, match="one column per class: 3 columns, got 2"):
        evaluate(out.images, out.labels, test, arch="ConvNetW32", runs=1, epochs=2, soft_labels=out.soft_labels,
                 num_classes=3, progress=False)
