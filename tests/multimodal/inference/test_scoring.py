"""`mmdx score`: every input accounted for once, crash isolation, kill + resume, API == CLI."""

from __future__ import annotations

import functools
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from multimodal.cli import main
from multimodal.inference import scoring
from multimodal.inference.predictor import Predictor
from multimodal.inference.results import read_jsonl
from multimodal.inference.scoring import FAULT_INJECT_ENV, errors_path, merge_parts, score, skipped_path

REPO_ROOT = Path(__file__).resolve().parents[3]


def _ids(path: Path, key: str) -> list[str]:
    return [record[key] for record in read_jsonl(path)]


@pytest.fixture()
def mixed_folder(phantom_dir, tmp_path) -> Path:
    """Good phantom studies, a truncated DICOM, a text file named .dcm and a decoder-crashing file."""
    folder = tmp_path / "mixed"
    shutil.copytree(phantom_dir / "dicom", folder)
    good = sorted(folder.rglob("PA.dcm"))[0].read_bytes()
    other_study = pydicom.dcmread(io.BytesIO(good))
    other_study.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    buffer = io.BytesIO()
    other_study.save_as(buffer)
    (folder / "truncated.dcm").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) - 500])  # pixels cut
    (folder / "not_dicom.dcm").write_text("this is a text file, not an image")
    (folder / "crash_me.dcm").write_bytes(good.replace(b"DICM", b"DICX", 1))  # its own study, by path
    return folder


def test_mixed_folder_accounts_for_every_input_exactly_once(tiny_model_dir, mixed_folder, tmp_path, monkeypatch,
                                                            request):
    monkeypatch.setenv(FAULT_INJECT_ENV, "crash_me*")
    out = tmp_path / "scores.jsonl"
    model_threads = []
    run_batch = Predictor.run_batch
    monkeypatch.setattr(Predictor, "run_batch",
                        lambda self, *a, **k: model_threads.append(torch.get_num_threads()) or run_batch(self, *a, **k))
    request.addfinalizer(functools.partial(torch.set_num_threads, torch.get_num_threads()))
    torch.set_num_threads(3)

    summary = score(tiny_model_dir, [mixed_folder], out, batch_size=3, workers=1, generate=False, progress=False)

    # the model gets the cores the decode worker leaves; the caller's thread count comes back
    assert set(model_threads) == {max(1, scoring._cores() - 1)} and torch.get_num_threads() == 3

    scored, failed = _ids(out, "study_id"), _ids(errors_path(out), "study_id")
    assert len(scored) == len(set(scored)) == 8 == summary["scored"]
    assert sorted(failed) == ["1.2.826.0.1.3680043.8.498.1", "crash_me.dcm", "not_dicom.dcm"] and summary["failed"] == 3
    reasons = {e["study_id"]: e["reason"] for e in read_jsonl(errors_path(out))}
    assert "crash" in reasons["crash_me.dcm"]
    assert "truncated" in reasons["1.2.826.0.1.3680043.8.498.1"].lower()
    assert "not a DICOM file" in reasons["not_dicom.dcm"]

    again = score(tiny_model_dir, [mixed_folder], out, batch_size=3, workers=1, generate=False, progress=False)
    assert again["skipped"] == 11 and again["scored"] == again["failed"] == 0
    assert len(_ids(out, "study_id")) == 8


_SLOW_CHILD = """
import sys, time
from multimodal.inference import predictor
run_batch = predictor.Predictor.run_batch
def slow(self, *args, **kwargs):
    time.sleep(0.2)  # room for the parent's SIGKILL to land mid-run
    return run_batch(self, *args, **kwargs)
predictor.Predictor.run_batch = slow
from multimodal.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_killed_run_resumes_to_the_same_results_without_duplicates(tiny_model_dir, mixed_folder, tmp_path):
    (mixed_folder / "crash_me.dcm").unlink()  # no fault injection here
    report = pydicom.Dataset()
    report.file_meta = pydicom.dataset.FileMetaDataset()
    report.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    report.SOPClassUID = report.file_meta.MediaStorageSOPClassUID = pydicom.uid.BasicTextSRStorage
    report.SOPInstanceUID = report.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    report.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    report.save_as(mixed_folder / "report.dcm", enforce_file_format=True)
    args = ["score", "--model", str(tiny_model_dir), "--input", str(mixed_folder), "--batch-size", "1",
            "--workers", "0", "--no-findings", "--quiet"]
    killed = tmp_path / "killed.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", _SLOW_CHILD, *args, "--out", str(killed)], env=env,
                             stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and child.poll() is None:
        if killed.exists() and killed.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.01)
    assert child.poll() is None, f"the run ended before it could be killed: {child.stderr.read().decode()[-2000:]}"
    child.send_signal(signal.SIGKILL)
    child.wait()
    partial = killed.read_bytes().count(b"\n")
    assert 2 <= partial < 8

    assert main([*args, "--out", str(killed)]) == 0
    whole = tmp_path / "whole.jsonl"
    assert main([*args, "--out", str(whole)]) == 0

    resumed = _ids(killed, "study_id")
    assert len(resumed) == len(set(resumed)) == 8
    assert sorted(resumed) == sorted(_ids(whole, "study_id"))
    for accounts in (errors_path, skipped_path):  # the same accounting, each line once
        keys = _ids(accounts(killed), "key")
        assert len(keys) == len(set(keys)) and sorted(keys) == sorted(_ids(accounts(whole), "key")) and keys
    assert killed.read_bytes().endswith(b"\n")
    probs = lambda path: {r["study_id"]: [o["probability"] for o in r["observations"].values()]  # noqa: E731
                          for r in read_jsonl(path)}
    for study_id, values in probs(whole).items():
        assert np.allclose(probs(killed)[study_id], values, atol=1e-5)


def test_python_api_gives_the_numbers_of_the_cli(tiny_model_dir, phantom_dir, tmp_path):
    out = tmp_path / "scores.parquet"
    manifest = phantom_dir / "manifest.jsonl"
    assert main(["score", "--model", str(tiny_model_dir), "--input", str(manifest), "--out", str(out),
                 "--format", "parquet", "--workers", "0", "--quiet", "--sr-dir", str(tmp_path / "sr")]) == 0
    records = {r["study_id"]: r for r in read_jsonl(out.with_suffix(".jsonl"))}

    import pyarrow.parquet as pq

    assert sorted(pq.read_table(out).column("study_id").to_pylist()) == sorted(records)
    assert len(list((tmp_path / "sr").glob("*.dcm"))) == len(records)

    from multimodal.data.manifest import load_manifest

    predictor = Predictor.from_pretrained(tiny_model_dir)
    studies = load_manifest(manifest)[:3]
    results = predictor.predict_many([s.images for s in studies], texts=[s.text for s in studies], batch_size=2)
    for study, result in zip(studies, results):
        cli = records[study.study_id]
        assert result.findings == cli["findings"]
        for name, obs in result.observations.items():
            assert obs.probability == pytest.approx(cli["observations"][name]["probability"], abs=1e-5)
            assert obs.zones == cli["observations"][name]["zones"]
            assert obs.peak.x == pytest.approx(cli["observations"][name]["peak"]["x"])


def test_parallel_model_lanes_write_the_same_results_in_input_order(tiny_model_dir, phantom_dir, tmp_path):
    before = torch.get_num_threads()
    runs = {}
    for lanes in (1, 3):
        out = tmp_path / f"lanes-{lanes}.jsonl"
        summary = score(tiny_model_dir, [phantom_dir / "dicom"], out, batch_size=2, workers=0, threads=lanes,
                        device="cpu", progress=False)
        assert summary["scored"] == 8 and summary["failed"] == 0
        runs[lanes] = list(read_jsonl(out))
    assert torch.get_num_threads() == before  # the lanes' single-thread setting does not leak
    assert [r["study_id"] for r in runs[3]] == [r["study_id"] for r in runs[1]]
    for one, three in zip(runs[1], runs[3]):
        assert one["findings"] == three["findings"]
        for name, obs in one["observations"].items():
            assert three["observations"][name]["probability"] == pytest.approx(obs["probability"], abs=1e-5)


def test_sharded_ranks_together_score_every_study_once(tiny_model_dir, phantom_dir, tmp_path, monkeypatch):
    out = tmp_path / "scores.csv"
    monkeypatch.delenv("MASTER_ADDR", raising=False)  # no process group: each rank writes its part
    monkeypatch.setenv("WORLD_SIZE", "2")
    per_rank = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        per_rank.append(score(tiny_model_dir, [phantom_dir / "dicom"], out, output_format="csv", workers=0,
                              generate=False, progress=False))

    merged = merge_parts(out, world_size=2, output_format="csv")

    assert per_rank[0]["scored"] > 0 and per_rank[1]["scored"] > 0
    assert per_rank[0]["scored"] + per_rank[1]["scored"] == merged["results"] == 8
    ids = _ids(out.with_suffix(".jsonl"), "study_id")
    assert len(ids) == len(set(ids)) == 8
    assert len(out.read_text().splitlines()) == 1 + 8


def test_model_lanes_follow_the_torch_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # as torchrun leaves each of several processes
        assert scoring.model_lanes(torch.device("cpu")) == 1
        assert scoring.model_lanes(torch.device("cpu"), threads=3) == 3
    finally:
        torch.set_num_threads(before)
    assert scoring.model_lanes(torch.device("cpu")) == before
    assert scoring.model_lanes(torch.device("cuda")) == 1


def test_each_local_rank_scores_on_its_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_RANK", "6")
    assert scoring.rank_device(torch.device("cuda")) == torch.device("cuda", 2)
    assert scoring.rank_device(torch.device("cuda", 1)) == torch.device("cuda", 1)  # asked for explicitly
    assert scoring.rank_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.delenv("LOCAL_RANK")
    assert scoring.rank_device(torch.device("cuda")) == torch.device("cuda")


def test_decode_workers_import_neither_torch_nor_monai():
    # A worker (started fresh and again after every codec crash) must be up in about a second;
    # torch + MONAI take ~10 s to import on a loaded 2-core machine.
    probe = ("import sys, multimodal.inference.prepare, multimodal.inference.scoring; "
             "print(sorted(m for m in ('torch', 'monai', 'albumentations', 'highdicom') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
