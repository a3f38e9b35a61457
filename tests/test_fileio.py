"""Atomic writes: complete files or nothing, never a stray temporary file."""
import json
import os
import stat
import subprocess
import sys

import pytest
import torch

from ddfast.fileio import atomic_torch_save, atomic_write, atomic_write_json


def test_atomic_writes_round_trip(tmp_path):
    atomic_write_json(tmp_path / "sub" / "a.json", {"x": 1})
    assert json.loads((tmp_path / "sub" / "a.json").read_text()) == {"x": 1}
    atomic_torch_save({"t": torch.arange(3)}, tmp_path / "b.pt")
    assert torch.equal(torch.load(tmp_path / "b.pt")["t"], torch.arange(3))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.json", "b.pt", "sub"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "c.bin"
    target.write_bytes(b"old")

    def broken(handle):
        handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["c.bin"]


def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "d.bin", lambda handle: handle.write(b"x"))
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "d.bin").stat().st_mode) == 0o644


def test_more_umasks_give_the_modes_of_a_plain_open(tmp_path):
    for umask, mode in ((0o002, 0o664), (0o077, 0o600)):
        old = os.umask(umask)
        try:
            atomic_write(tmp_path / f"u{umask:o}.bin", lambda handle: handle.write(b"x"))
            with open(tmp_path / f"plain{umask:o}.bin", "w"):
                pass
        finally:
            os.umask(old)
        assert stat.S_IMODE((tmp_path / f"u{umask:o}.bin").stat().st_mode) == mode
        assert stat.S_IMODE((tmp_path / f"plain{umask:o}.bin").stat().st_mode) == mode


def test_a_write_killed_midway_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    target = tmp_path / "big.bin"
    script = ("import sys, time\nfrom ddfast.fileio import atomic_write\n"
              "def slow(handle):\n    handle.write(b'x' * 100000); handle.flush(); print('writing', flush=True); "
              "time.sleep(60)\n"
              f"atomic_write({str(target)!r}, slow)\n")
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.kill()
    writer.wait()
    leftovers = list(tmp_path.glob(".big.bin.*.tmp"))
    assert len(leftovers) == 1 and not target.exists()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a temporary of a writer that still runs, and other names' files, are left alone
        alive = tmp_path / f".big.bin.{sleeper.pid}.abc.tmp"
        alive.write_bytes(b"busy")
        other = tmp_path / ".other.bin.1.abc.tmp"
        other.write_bytes(b"not ours")
        atomic_write(target, lambda handle: handle.write(b"new"))
        assert target.read_bytes() == b"new"
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name, "big.bin"])
    finally:
        sleeper.kill()
        sleeper.wait()
