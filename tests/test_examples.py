"""The worked examples run end to end in their --quick mode, each in its own process."""
import subprocess
import sys
from pathlib import Path

import pytest

import ddfast

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("script", ["dm_dc_style.py", "gm_dc_style.py", "tm_mtt_style.py"])
def test_example_runs_and_writes_a_file(script, tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "kB per class, accuracy" in done.stdout
    images, labels = ddfast.decompress((tmp_path / "distilled.ddf").read_bytes())
    assert images.shape == (20, 1, 28, 28) and labels.tolist() == [c for c in range(10) for _ in range(2)]  # 2 per class
