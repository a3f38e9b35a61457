"""ddfast encode / decode / info: round trips through the command line, and clear errors before any work."""
import json

import pytest
import torch
from PIL import Image

import ddfast
from ddfast.cli import decode as decode_cli
from ddfast.cli import encode as encode_cli
from ddfast.cli import main
from ddfast.cli._common import check_output_path, parse_classes
from ddfast.codec import CodecConfig, SyntheticSet
from ddfast.distill.baselines import PixelSet
from ddfast.errors import ConfigError

COUNTS = [2, 3, 2]
SIZE = (12, 12)
MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
# A CUDA device that does not exist here, whether or not the machine has a GPU.
MISSING_DEVICE = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"


def _tiny_set(normalization: bool) -> SyntheticSet:
    """A small set with seeded random weights (so every part of the codec is exercised) and small latents."""
    syn = SyntheticSet(COUNTS, SIZE, channels=3, slice_size=2,
                       config=CodecConfig(synthesis="v4-40", arm_context=8, arm_depth=1))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in syn.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    assert (syn.config.gain * syn.stack.latents).round().abs().max() <= 20
    if normalization:
        syn.metadata.update(normalization=[MEAN, STD], syn_lr=0.01)
    return syn


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """Saved sets (with and without normalization) and their .ddf files, written with the Python API."""
    folder = tmp_path_factory.mktemp("ddf")
    out = {}
    for name, normalization in (("norm", True), ("plain", False)):
        syn = _tiny_set(normalization)
        out[f"{name}_set"] = folder / f"{name}.pt"
        syn.save(out[f"{name}_set"])
        out[name] = folder / f"{name}.ddf"
        out[name].write_bytes(ddfast.compress(syn))
    return out


def _fail(*args, **kwargs):
    raise AssertionError("work started before the arguments were checked")


def test_encode_writes_the_same_bytes_as_compress_and_prints_a_summary(files, tmp_path, capsys):
    target = tmp_path / "out.ddf"
    assert main(["encode", str(files["norm_set"]), "-o", str(target), "--quiet", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert target.read_bytes() == files["norm"].read_bytes()
    size = target.stat().st_size
    assert f"file: {size} bytes, {size / 3000:.3f} kB per class" in out
    assert "weights" in out and "latents" in out and "largest MSE vs the float decode" in out
    assert "in the file" in out and "estimated" in out and "time:" in out
    assert err == ""
    assert [p.name for p in tmp_path.iterdir()] == ["out.ddf"]


def test_decode_raw_equals_decompress(files, tmp_path, capsys):
    target = tmp_path / "images.pt"
    assert main(["decode", str(files["norm"]), "-o", str(target), "--raw"]) == 0
    images, labels = ddfast.decompress(files["norm"].read_bytes())
    got = PixelSet.load(target)
    assert torch.equal(got.images, images) and torch.equal(got.labels, labels)
    assert got.meta["normalized"] is False and got.meta["classes"] == [0, 1, 2]
    assert got.meta["source"] == str(files["norm"])
    assert got.syn_lr == pytest.approx(0.01)
    assert "in pixel space" in capsys.readouterr().out


def test_decode_normalizes_with_the_files_mean_and_std(files, tmp_path, capsys):
    target = tmp_path / "images.pt"
    assert main(["decode", str(files["norm"]), "-o", str(target)]) == 0
    assert "normalized" in capsys.readouterr().out
    images, labels = ddfast.decompress(files["norm"].read_bytes())
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (MEAN, STD))
    got = PixelSet.load(target)
    assert torch.allclose(got.images, (images - mean) / std, rtol=1e-5, atol=1e-5)
    assert torch.equal(got.labels, labels) and got.meta["normalized"] is True


def test_decode_without_normalization_keeps_pixels_and_says_so(files, tmp_path, capsys):
    target = tmp_path / "images.pt"
    assert main(["decode", str(files["plain"]), "-o", str(target)]) == 0
    out = capsys.readouterr().out
    assert "note:" in out and "no normalization" in out
    got = PixelSet.load(target)
    assert torch.equal(got.images, ddfast.decompress(files["plain"].read_bytes())[0])
    assert got.meta["normalized"] is False and got.syn_lr is None


def test_decode_classes_subset_and_png(files, tmp_path, capsys):
    target, png = tmp_path / "images.pt", tmp_path / "grid.png"
    assert main(["decode", str(files["norm"]), "-o", str(target), "--classes", "2,0", "--raw", "--png", str(png)]) == 0
    images, labels = ddfast.decompress(files["norm"].read_bytes(), classes=[0, 2])
    got = PixelSet.load(target)
    assert torch.equal(got.images, images) and torch.equal(got.labels, labels)
    assert labels.tolist() == [0, 0, 2, 2]
    assert got.meta["classes"] == [0, 2]
    with Image.open(png) as picture:
        assert picture.size == (2 * SIZE[1], 2 * SIZE[0]) and picture.mode == "RGB"
    assert f"wrote {png}" in capsys.readouterr().out


def test_info_json_bytes_sum_to_the_file_size(files, capsys):
    assert main(["info", str(files["norm"]), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    size = files["norm"].stat().st_size
    assert record["total_bytes"] == size and sum(record["bytes"].values()) == size
    assert record["images_per_class"] == COUNTS and len(record["slices"]) == 4
    assert record["latent_bits"] > 0 and record["estimated_latent_bits"] > 0
    assert main(["info", str(files["norm"]), "--json", "--no-estimate"]) == 0
    assert json.loads(capsys.readouterr().out)["latent_bits"] is None


def test_info_table(files, capsys):
    assert main(["info", str(files["plain"])]) == 0
    out = capsys.readouterr().out
    size = files["plain"].stat().st_size
    for text in ("2 3 2", "synthesis v4-40", "16384 symbols per lane", "none (decoded images stay in pixel space)",
                 f"total{size:>17}  100.0", f"{size / 3:.1f} (bpc)", "overhead/slice", "estimated by the float ARM"):
        assert text in out, text


def test_parse_classes_and_check_output_path(tmp_path):
    assert parse_classes("0,3") == [0, 3] and parse_classes(" 2 ") == [2]
    for junk in ("x", "", "1,,2", "-1", "1,1"):
        with pytest.raises(ConfigError, match="--classes"):
            parse_classes(junk)
    assert check_output_path(str(tmp_path / "a.pt"), "output") == tmp_path / "a.pt"
    with pytest.raises(ConfigError, match="is a folder"):
        check_output_path(str(tmp_path), "output")
    with pytest.raises(ConfigError, match="does not exist"):
        check_output_path(str(tmp_path / "no" / "a.pt"), "output")
    with pytest.raises(ConfigError, match="not writable"):  # a real probe: os.access says yes to root
        check_output_path("/proc/a.pt", "output")


def _damaged(files, tmp_path):
    data = bytearray(files["norm"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "damaged.ddf"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("command,argv,message", [
    ("encode", ["{missing}", "-o", "{out}"], "does not exist"),
    ("encode", ["{norm_set}", "-o", "{file}/out.ddf"], "is not a folder"),
    ("encode", ["{norm_set}", "-o", "{out}", "--device", MISSING_DEVICE], "device"),
    ("encode", ["{norm_set}", "-o", "{norm_set}"], "same file"),
    ("decode", ["{missing}", "-o", "{out}"], "does not exist"),
    ("decode", ["{damaged}", "-o", "{out}"], "{damaged}: section"),
    ("decode", ["{norm}", "-o", "{out}", "--classes", "x"], "--classes must be comma-separated class ids"),
    ("decode", ["{norm}", "-o", "{out}", "--classes", "99"], "got [99]"),
    ("decode", ["{norm}", "-o", "{file}/out.pt"], "is not a folder"),
    ("decode", ["{norm}", "-o", "{out}", "--png", "{file}/grid.png"], "is not a folder"),
    ("decode", ["{norm}", "-o", "{out}", "--device", MISSING_DEVICE], "device"),
    ("info", ["{missing}"], "does not exist"),
    ("info", ["{damaged}"], "{damaged}: section"),
])
def test_errors_exit_2_with_a_message_and_no_output(files, tmp_path, capsys, command, argv, message):
    (tmp_path / "file").write_text("not a folder")
    names = {"missing": tmp_path / "missing.ddf", "out": tmp_path / "out", "file": tmp_path / "file",
             "damaged": _damaged(files, tmp_path), **{k: files[k] for k in ("norm", "norm_set")}}
    before = sorted(tmp_path.iterdir())
    assert main([command] + [a.format(**names) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ddfast {command}: error: ") and err.count("\n") == 1
    assert message.format(**names) in err
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize("argv", [
    ["--device", MISSING_DEVICE],
    ["-o", "{file}/out"],
    ["--png", "{file}/grid.png"],
])
def test_device_and_output_errors_come_before_any_work(files, tmp_path, monkeypatch, capsys, argv):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setattr(SyntheticSet, "load", _fail)
    monkeypatch.setattr(encode_cli, "post_quantize", _fail)
    monkeypatch.setattr(decode_cli, "read_ddf", _fail)
    monkeypatch.setattr(decode_cli, "decode", _fail)
    argv = [a.format(file=tmp_path / "file") for a in argv]
    cases = [["decode", str(files["norm"]), "-o", str(tmp_path / "out.pt")]]
    if "--png" not in argv:
        cases.append(["encode", str(files["norm_set"]), "-o", str(tmp_path / "out.ddf")])
    for case in cases:
        assert main(case + argv) == 2
        assert "error:" in capsys.readouterr().err
