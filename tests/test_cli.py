"""The ddfast command line: demo runs end to end, bad arguments give clear errors."""
import subprocess
import sys

from ddfast.cli import main


def test_demo_runs_the_whole_job_and_prints_the_baseline(tmp_path, capsys):
    png, out = tmp_path / "demo.png", tmp_path / "run"
    code = main(["demo", "--preset", "bundled-dm-tiny", "--out", str(out), "--png", str(png), "--device", "cpu",
                 "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "DM-RUO: the .ddf file" in printed and "DM on pixels, 8-bit (baseline)" in printed
    assert "shortened" in printed and "accuracy" in printed
    assert (out / "distilled.ddf").is_file() and (out / "summary.json").is_file()
    assert png.stat().st_size > 0 and not list(tmp_path.rglob("*.tmp"))


def test_demo_rejects_bad_values(tmp_path, capsys):
    assert main(["demo", "--set", "spc=0", "--out", str(tmp_path / "a")]) == 2
    assert "spc must be a positive integer" in capsys.readouterr().err
    assert main(["demo", "--set", "synthesis=v9-9", "--out", str(tmp_path / "b")]) == 2
    assert "unknown synthesis version 'v9-9'" in capsys.readouterr().err
    assert main(["demo", "--png", str(tmp_path / "missing" / "x.png"), "--out", str(tmp_path / "c")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_console_entry_point_shows_help():
    result = subprocess.run([sys.executable, "-m", "ddfast", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout
