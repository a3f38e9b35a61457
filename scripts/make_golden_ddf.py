"""Write the golden .ddf file of the format tests (tests/data/golden.ddf) and its checksums.

The file is a fixed, seeded synthetic set quantized at fixed steps, so this script writes the
same bytes on every machine. Rerun it only when the format version changes on purpose:

    python scripts/make_golden_ddf.py
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from coding_helpers import FINE_STEPS, content_digest, random_set  # noqa: E402

from ddfast.coding import decode, encode, quantize_at  # noqa: E402
from ddfast.coding.container import FORMAT_VERSION  # noqa: E402


def main() -> None:
    syn = random_set([3, 2], (12, 10), channels=3, context=16, depth=2, slice_size=2, seed=2026)
    syn.metadata["normalization"] = ([0.5, 0.4, 0.3], [0.25, 0.2, 0.15])
    qset = quantize_at(syn, FINE_STEPS)
    qset.normalization = syn.metadata["normalization"]
    data = encode(qset, lane_symbols=64)
    out = ROOT / "tests" / "data"
    (out / "golden.ddf").write_bytes(data)
    record = {"format_version": FORMAT_VERSION, "bytes": len(data), "file_sha256": hashlib.sha256(data).hexdigest(),
              "content_sha256": content_digest(decode(data))}
    (out / "golden.json").write_text(json.dumps(record, indent=2) + "\n")
    print(record)


if __name__ == "__main__":
    main()
