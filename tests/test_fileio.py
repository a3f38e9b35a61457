"""Atomic writes: complete files or nothing, never a stray temporary file."""
import json
import os
import stat

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
