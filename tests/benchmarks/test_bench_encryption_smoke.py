"""The encryption benchmark still runs end to end (tiny size, one repeat), so it cannot rot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks import bench_encryption  # noqa: E402


def test_bench_encryption_tiny_reports_ratios(tmp_path: Path) -> None:
    out = tmp_path / "enc.json"
    assert bench_encryption.main(["--size", "64", "--entries", "2", "--records", "5", "--repeats", "1",
                                  "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert set(payload["ratios"]) == {"cache read", "cache write", "result log append"}
    assert all(row["ms_per_item"] > 0 for row in payload["results"])
