"""ddfast show / ddfast plot: PNG pages of a .ddf file and rate-utility curves of run folders."""
import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import ddfast
from ddfast.cli import main
from ddfast.cli import show as show_cli
from ddfast.codec import CodecConfig, SyntheticSet
from ddfast.errors import ConfigError
from ddfast.pipeline import RunSummary
from ddfast.report import (
    ClassPanel,
    MissingDependencyError,
    class_panels,
    draw_curve,
    draw_page,
    paper_anchors,
    read_run,
)
from ddfast.report.pages import GAP, HEADER_HEIGHT, LABEL_WIDTH, MARGIN, page_size
from ddfast.report.paper import TABLE_A3, TABLE_A4

COUNTS = [2, 3]
SIZE = (12, 12)  # 4 latent grids (12, 6, 3, 2); pages enlarge 12-pixel images 6 times (72-pixel tiles)


def _tiny_set(seed: int) -> SyntheticSet:
    syn = SyntheticSet(COUNTS, SIZE, channels=3, slice_size=2,
                       config=CodecConfig(synthesis="v4-40", arm_context=8, arm_depth=1))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in syn.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return syn


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run folder as the pipeline leaves it for show: distilled.ddf and the phase-1 set init.pt."""
    folder = tmp_path_factory.mktemp("run")
    (folder / "distilled.ddf").write_bytes(ddfast.compress(_tiny_set(0)))
    _tiny_set(1).save(folder / "init.pt")
    return folder


def _png(path) -> np.ndarray:
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        return np.asarray(picture.convert("RGB"))


def _tile(page: np.ndarray, row_top: int, column: int, tile: int) -> np.ndarray:
    x = LABEL_WIDTH + column * (tile + GAP)
    return page[row_top:row_top + tile, x:x + tile]


def test_show_page_has_the_layout_size_and_the_file_and_init_images(run_folder, tmp_path, capsys):
    out = tmp_path / "page.png"
    code = main(["show", str(run_folder / "distilled.ddf"), "--out", str(out), "--run", str(run_folder),
                 "--device", "cpu"])
    assert code == 0
    # 3 columns (class 1 has 3 images); per class a header and 6 rows: init, distilled, 4 latent grids.
    assert (LABEL_WIDTH, HEADER_HEIGHT, GAP, MARGIN) == (112, 22, 2, 4)
    page = _png(out)
    assert page.shape == (2 * (22 + 6 * (72 + 2)) + 4, 112 + 3 * (72 + 2) + 4, 3) == (936, 338, 3)
    assert "2 classes (initialization, distilled, 4 latent grids), 338x936 pixels" in capsys.readouterr().out
    # The tiles are the file's images and the initialization's, each pixel drawn as a 6 x 6 block.
    images, _ = ddfast.decompress((run_folder / "distilled.ddf").read_bytes())
    init = SyntheticSet.load(run_folder / "init.pt").eval()
    with torch.no_grad():
        init_images, _ = init()
    for k, (first, count) in enumerate(((0, 2), (2, 3))):
        top = k * (22 + 6 * 74) + 22
        for j in range(count):
            for image, row_top in ((init_images[first + j], top), (images[first + j], top + 74)):
                want = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).repeat(6, 0).repeat(6, 1)
                assert np.abs(_tile(page, row_top, j, 72).astype(float) - want).max() <= 1.0
    # Class 0 has no third image: that cell stays white.
    assert (_tile(page, 22 + 74, 2, 72) == 255).all()


def test_show_images_scale_and_no_latents(run_folder, tmp_path):
    out = tmp_path / "small.png"
    assert main(["show", str(run_folder / "distilled.ddf"), "--out", str(out), "--images", "1", "--no-latents",
                 "--scale", "2", "--classes", "1", "--device", "cpu"]) == 0
    assert _png(out).shape == (22 + 1 * (24 + 2) + 4, 112 + 1 * (24 + 2) + 4, 3)


def test_latent_rows_are_the_integer_latents_on_their_grids(run_folder):
    qset = ddfast.coding.decode((run_folder / "distilled.ddf").read_bytes())
    panels = class_panels(qset.to_synthetic_set(), qset.class_ids, [1])
    assert [tuple(g.shape) for g in panels[1].latents] == [(1, 12, 12), (1, 6, 6), (1, 3, 3), (1, 2, 2)]
    # Class 1, image 1 is the second image of slice 1 (slices of at most 2 images: [0, 1], [2]).
    flat = torch.cat([g.reshape(-1) for g in panels[1].latents])
    assert torch.equal(flat, qset.latents[1, 1].to(torch.int32))
    assert panels[0].init is None and page_size(panels, 1) == (112 + 14 + 4, 2 * (22 + 5 * 14) + 4)


def test_draw_page_greys_and_latent_colours(tmp_path):
    """One-channel images are drawn grey; a latent at +max is the colour map's top, 0 its middle."""
    import matplotlib

    image = torch.linspace(0, 1, 16).reshape(1, 1, 4, 4)
    latents = [torch.tensor([[[0, 3], [-3, 0]]], dtype=torch.int32).repeat_interleave(2, 1).repeat_interleave(2, 2),
               torch.tensor([[[0, 3], [-3, 0]]], dtype=torch.int32)]
    panel = ClassPanel(7, [0], image, latents=latents)
    assert draw_page([panel], tmp_path / "p.png", scale=1) == (112 + 6 + 4, 22 + 3 * 6 + 4)
    page = _png(tmp_path / "p.png").astype(float)
    grey = page[22:26, 112:116]
    assert np.abs(grey - (image[0, 0].numpy() * 255)[..., None]).max() <= 1.0
    cmap = matplotlib.colormaps["RdBu_r"]
    for row in (1, 2):  # grid 0 (4 x 4) and grid 1 (2 x 2, each latent on 2 x 2 pixels): the same picture
        tile = page[22 + row * 6:22 + row * 6 + 4, 112:116]
        for (y, x), value in (((0, 0), 0.5), ((0, 2), 1.0), ((2, 0), 0.0)):
            want = np.asarray(cmap(value)[:3]) * 255
            assert np.abs(tile[y:y + 2, x:x + 2] - want).max() <= 1.0


def _fail(*args, **kwargs):
    raise AssertionError("work started before the arguments were checked")


@pytest.mark.parametrize("extra, message", [
    (["--out", "{tmp}/missing/page.png"], "folder {tmp}/missing does not exist"),
    (["--out", "{tmp}/page.png", "--run", "{tmp}/norun"], "--run {tmp}/norun does not exist or is not a folder"),
    (["--out", "{tmp}/page.png", "--run", "{tmp}"], "the run's initialization {tmp}/init.pt does not exist"),
    (["--out", "{tmp}/page.png", "--images", "0,x"], "--images must be comma-separated image indices"),
    (["--out", "{tmp}/page.png", "--images", "1,1"], "--images must list distinct non-negative indices"),
    (["--out", "{tmp}/page.png", "--scale", "0"], "--scale must be a positive integer"),
    (["--out", "{ddf}"], "are the same file"),
])
def test_show_checks_its_arguments_before_decoding(run_folder, tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.setattr(show_cli, "decode", _fail)
    ddf = str(run_folder / "distilled.ddf")
    argv = [a.format(tmp=tmp_path, ddf=ddf) for a in extra]
    assert main(["show", ddf, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ddfast show: error:") and message.format(tmp=tmp_path) in err, err
    assert main(["show", str(tmp_path / "nofile.ddf"), "--out", str(tmp_path / "p.png")]) == 2
    assert f".ddf file {tmp_path}/nofile.ddf does not exist" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))


def test_show_refuses_images_a_class_lacks_and_an_init_of_another_set(run_folder, tmp_path, capsys):
    ddf = str(run_folder / "distilled.ddf")
    assert main(["show", ddf, "--out", str(tmp_path / "p.png"), "--images", "2", "--device", "cpu"]) == 2
    assert "image 2 asked for, but class 0 has 2 images (0..1)" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    SyntheticSet([2, 2], SIZE, channels=3).save(other / "init.pt")
    assert main(["show", ddf, "--out", str(tmp_path / "p.png"), "--run", str(other), "--device", "cpu"]) == 2
    assert "class 1: the initialization has 2 images, the file 3" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


def _no_matplotlib(monkeypatch):
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)  # `import matplotlib...` now raises ImportError


def test_without_matplotlib_show_and_plot_exit_2_with_the_install_hint(run_folder, tmp_path, monkeypatch, capsys):
    _no_matplotlib(monkeypatch)
    assert main(["show", str(run_folder / "distilled.ddf"), "--out", str(tmp_path / "p.png")]) == 2
    assert "ddfast show needs matplotlib: pip install 'ddfast[plot]'" in capsys.readouterr().err
    assert main(["plot", str(run_folder), "--out", str(tmp_path / "c.png")]) == 2
    assert "ddfast plot needs matplotlib: pip install 'ddfast[plot]'" in capsys.readouterr().err
    with pytest.raises(MissingDependencyError, match=r"pip install 'ddfast\[plot\]'") as err:
        draw_curve([], tmp_path / "c.png")
    assert isinstance(err.value, ImportError)
    assert not list(tmp_path.iterdir())


# -- plot ----------------------------------------------------------------------------------------------

def _run(folder, dataset="cifar10", method="tm", bytes_per_class=13_000.0, accuracy=0.65, std=0.01):
    """A run folder with the summary.json the pipeline writes (RunSummary's fields)."""
    folder.mkdir(parents=True)
    summary = RunSummary(preset="p", dataset=dataset, method=method, classes=10, images_per_class=4, budget_kb=None,
                         budget_met=True, mse_threshold=5e-7, file=str(folder / "distilled.ddf"),
                         file_bytes=int(10 * bytes_per_class), bytes_per_class=bytes_per_class, bytes={},
                         latent_bits=0.0, estimated_latent_bits=0.0, candidates=[], accuracy_mean=accuracy,
                         accuracy_std=std)
    (folder / "summary.json").write_text(json.dumps(summary.to_dict()))
    return folder


def test_plot_writes_a_png_of_the_size_asked_for_with_the_paper_beside(tmp_path, capsys):
    runs = [_run(tmp_path / "a"), _run(tmp_path / "b", bytes_per_class=60_000.0, accuracy=0.72),
            _run(tmp_path / "c", dataset="bundled", method="dm", bytes_per_class=1_500.0, accuracy=0.7)]
    out = tmp_path / "curve.png"
    assert main(["plot", *map(str, runs), "--out", str(out)]) == 0
    assert _png(out).shape == (500, 800, 3)
    printed = capsys.readouterr().out
    assert printed == f"ddfast plot: 3 runs -> {out} (800x500 pixels); beside DD-RUO Table A4 (cifar10)\n"
    assert main(["plot", str(runs[2]), "--out", str(out), "--size", "640x360"]) == 0
    assert _png(out).shape == (360, 640, 3) and "beside" not in capsys.readouterr().out
    assert draw_curve([read_run(_run(tmp_path / "d", dataset="imagenette"))], out) == ["Table A3 (imagenette)"]


def test_read_run_takes_the_summary_fields(tmp_path):
    point = read_run(_run(tmp_path / "a", dataset="CIFAR-10", bytes_per_class=1234.5, accuracy=0.5, std=0.02))
    assert (point.dataset, point.method, point.bytes_per_class, point.accuracy, point.std) == \
        ("cifar10", "tm", 1234.5, 0.5, 0.02)


def test_plot_refuses_runs_it_cannot_draw(tmp_path, capsys):
    unevaluated = _run(tmp_path / "noeval", accuracy=None)
    (tmp_path / "empty").mkdir()
    out = str(tmp_path / "c.png")
    for argv, message in (([str(unevaluated)], "has no accuracy: the run was not evaluated"),
                          ([str(tmp_path / "empty")], "is not a finished run folder: it has no summary.json"),
                          ([str(tmp_path / "none")], "does not exist or is not a folder"),
                          ([str(unevaluated), "--size", "800"], "--size must be WIDTHxHEIGHT"),
                          ([str(unevaluated), "--size", "100x100"], "--size must be at least 200x150 pixels")):
        assert main(["plot", *argv, "--out", out]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ddfast plot: error:") and message in err, err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "summary.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        read_run(tmp_path / "bad")
    assert not (tmp_path / "c.png").exists()


def test_paper_anchor_tables():
    nette = {(a.method, a.kb): (a.accuracy, a.std) for a in TABLE_A3["imagenette"]}
    assert nette[("TM-RUO", 179.7)] == (76.5, 0.7) and nette[("DDiF", 3.8)] == (49.1, 2.0) and len(nette) == 29
    cifar10 = {(a.method, a.kb): (a.accuracy, a.std) for a in TABLE_A4["cifar10"]}
    assert cifar10[("TM-RUO", 13)] == (70.3, 0.7) and cifar10[("SPEED", 600)] == (77.7, 0.4) and len(cifar10) == 33
    assert len(TABLE_A4["cifar100"]) == 18
    # The paper's kB are 1024 bytes: 192 kB is one 128 x 128 x 3 float32 image.
    assert TABLE_A3["imagenette"][0].bytes_per_class == 128 * 128 * 3 * 4
    assert paper_anchors("cifar100").whole_dataset == (56.2, 0.3)
    assert paper_anchors("fashion_mnist") is None
