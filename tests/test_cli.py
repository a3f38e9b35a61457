"""The ddfast command line: demo runs end to end, bad arguments give clear errors."""
import subprocess
import sys

import torch

from ddfast.cli import main


def test_demo_prints_psnr_and_size_and_writes_files(tmp_path, capsys):
    png, saved = tmp_path / "demo.png", tmp_path / "syn.pt"
    code = main(["demo", "--spc", "2", "--candidates", "2", "1", "--iterations", "3", "2",
                 "--png", str(png), "--save", str(saved)])
    out = capsys.readouterr().out
    assert code == 0
    assert "PSNR (dB)" in out and "latents (kB)" in out and "Ankle boot" in out
    assert png.stat().st_size > 0
    payload = torch.load(saved)
    assert payload["images_per_class"] == [2] * 10 and payload["channels"] == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_demo_rejects_bad_values(capsys):
    assert main(["demo", "--spc", "0"]) == 2
    assert "--spc must be >= 1" in capsys.readouterr().err
    assert main(["demo", "--synthesis", "v9-9", "--iterations", "1", "1"]) == 2
    assert "unknown synthesis version 'v9-9'" in capsys.readouterr().err


def test_console_entry_point_shows_help():
    result = subprocess.run([sys.executable, "-m", "ddfast", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout
