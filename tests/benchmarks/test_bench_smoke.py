"""The training-step benchmark still runs end to end (tiny size, one step each), so it cannot rot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

bench_train = pytest.importorskip("benchmarks.bench_train")


def test_bench_train_tiny_writes_a_row_per_model_and_ratios(tmp_path: Path, capsys) -> None:
    out = tmp_path / "train.json"
    code = bench_train.main(["--size", "tiny", "--models", "mmdx,transchex,ved", "--precisions", "fp32",
                             "--repeats", "1", "--warmup", "0", "--threads", "1", "--out", str(out)])

    assert code == 0
    payload = json.loads(out.read_text())
    rows = {row["model"]: row for row in payload["results"]}
    assert set(rows) == {"mmdx", "transchex", "ved"}
    assert all(row["samples_per_s"] > 0 and row["state_mib"] > 0 for row in rows.values())
    assert set(payload["ratios"]) == {"mmdx/transchex@fp32", "mmdx/ved@fp32"}
    assert payload["size"]["image_size"] == 64 and payload["machine"]["torch_threads"] == 1
    assert "| mmdx | fp32 |" in capsys.readouterr().out
