"""Every input file of `mmdx score` lands in exactly one of results / errors / skipped, with the view
rule's choices and a reason a person understands; no single file or study takes a run down."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

from multimodal.inference import scoring
from multimodal.inference.results import read_jsonl
from multimodal.inference.scoring import errors_path, score, skipped_path

REPO_ROOT = Path(__file__).resolve().parents[3]


def _dx(study: str, view: str | None, instance: int, sop: str | None = None, **tags) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = uid.DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop or uid.generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, uid.generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality, ds.InstanceNumber = "P1", "Test^Patient", "DX", instance
    if view:
        ds.ViewPosition = view
    ds.Rows = ds.Columns = 32
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(32 * 32) * (instance + 1) % 4000).astype(np.uint16).tobytes()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def _non_image(study: str, sop_class: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    ds.StudyInstanceUID, ds.Modality = study, "SR" if ".88." in sop_class else "PR"
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture()
def archive(tmp_path) -> tuple[list[Path], dict]:
    """A folder + manifest with every accounting case; returns (inputs, expectations)."""
    folder = tmp_path / "archive"
    rng = random.Random(7)
    big = "1.2.826.0.1.3680043.8.498.10"  # 6 images, an SR, a PR and a copy of one instance
    views = ["PA", "AP", "LL", "RL", None, None]
    instances = rng.sample(range(1, 20), len(views))
    names = {}
    for view, instance in zip(views, instances):
        names[view or f"none{instance}"] = _save(_dx(big, view, instance), folder / "big" / f"img{instance}.dcm")
    copy = folder / "big" / "copy_of_ll.dcm"
    shutil.copy(names["LL"], copy)
    _save(_non_image(big, uid.BasicTextSRStorage), folder / "big" / "report.dcm")
    _save(_non_image(big, uid.GrayscaleSoftcopyPresentationStateStorage), folder / "big" / "ps.dcm")
    corrupt = "1.2.826.0.1.3680043.8.498.11"  # its PA cannot be decoded: the AP replaces it
    pa = _dx(corrupt, "PA", 1)
    pa.PixelData = pa.PixelData[:100]
    _save(pa, folder / "corrupt" / "pa.dcm")
    _save(_dx(corrupt, "AP", 2), folder / "corrupt" / "ap.dcm")
    _save(_dx(corrupt, "LL", 3), folder / "corrupt" / "ll.dcm")
    order = "1.2.826.0.1.3680043.8.498.12"  # the lateral comes first in instance order
    _save(_dx(order, None, 1, PatientOrientation=["A", "F"]), folder / "order" / "1.dcm")
    _save(_dx(order, None, 2, SeriesDescription="CHEST PA"), folder / "order" / "2.dcm")
    for single in range(1, 4):  # one-image studies
        _save(_dx(f"1.2.826.0.1.3680043.8.498.2{single}", "AP", 1), folder / "single" / f"{single}.dcm")
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for name in ("x.png", "x.jpg"):
        Image.fromarray(np.full((16, 16), 90, np.uint8)).save(pngs / name)
    manifest = tmp_path / "manifest.jsonl"
    (tmp_path / "listed").mkdir()
    for name in ("m1a.png", "m1b.png"):
        Image.fromarray(np.full((16, 16), 60, np.uint8)).save(tmp_path / "listed" / name)
    manifest.write_text("".join(json.dumps({"study_id": "m1", "images": [f"listed/{name}"]}) + "\n"
                                for name in ("m1a.png", "m1b.png")))
    expect = {"big_used": {str(names["PA"]): "frontal (PA)", str(names["LL"]): "lateral (LL)"},
              "corrupt_used": {str(folder / "corrupt" / "ap.dcm"): "frontal (AP)",
                               str(folder / "corrupt" / "ll.dcm"): "lateral (LL)"},
              "order_used": [str(folder / "order" / "2.dcm"), str(folder / "order" / "1.dcm")],
              "copy": str(copy), "ll": str(names["LL"]), "corrupt_pa": str(folder / "corrupt" / "pa.dcm"),
              "manifest_line_2": f"{manifest}:2", "manifest_image": str(tmp_path / "listed" / "m1a.png")}
    return [folder, pngs, manifest], expect


def _accounting(out: Path) -> tuple[dict, dict, dict]:
    used = {s["path"]: (r["study_id"], s["view"]) for r in read_jsonl(out) for s in r["sources"]}
    failed = {e["path"]: e for e in read_jsonl(errors_path(out)) if e["scope"] != "output"}
    skipped = {s["path"]: s for s in read_jsonl(skipped_path(out))}
    return used, failed, skipped


def test_every_input_lands_in_exactly_one_place_with_its_reason(tiny_model_dir, archive, tmp_path):
    inputs, expect = archive
    out = tmp_path / "scores.jsonl"
    summary = score(tiny_model_dir, inputs, out, batch_size=2, workers=1, generate=False, progress=False)

    used, failed, skipped = _accounting(out)
    every_file = {str(p) for p in inputs[0].rglob("*.dcm")} | {str(p) for p in inputs[1].iterdir()}
    inputs_seen = set(used) | set(failed) | set(skipped)
    assert every_file <= inputs_seen
    assert not set(used) & set(failed) and not set(used) & set(skipped) and not set(failed) & set(skipped)
    assert inputs_seen - every_file == {expect["manifest_line_2"], expect["manifest_image"]}

    big = {p: v for p, (study, v) in used.items() if study == "1.2.826.0.1.3680043.8.498.10"}
    lateral, duplicate = (expect["ll"], expect["copy"]) if expect["ll"] in big else (expect["copy"], expect["ll"])
    big[expect["ll"]] = big.pop(lateral)
    assert big == expect["big_used"]  # the frontal (PA before AP) and the lateral (LL before RL)
    assert skipped[duplicate]["reason"] == f"same SOPInstanceUID as {lateral}"
    assert {p: v for p, (s, v) in used.items() if s == "1.2.826.0.1.3680043.8.498.11"} == expect["corrupt_used"]
    order = [s["path"] for r in read_jsonl(out) if r["study_id"] == "1.2.826.0.1.3680043.8.498.12"
             for s in r["sources"]]
    assert order == expect["order_used"]  # SeriesDescription "PA" first, PatientOrientation A/F lateral second

    reasons = {Path(p).name: s["reason"] for p, s in skipped.items()}
    assert reasons["report.dcm"] == "not an image (Basic Text SR Storage)"
    assert reasons["ps.dcm"].startswith("not an image (Grayscale Softcopy Presentation State")
    beyond = [s for s in skipped.values() if s["study_id"] == "1.2.826.0.1.3680043.8.498.10"
              and s["reason"].startswith("study has")]
    assert len(beyond) == 4 and beyond[0]["reason"] == "study has 6 images, the model takes 2 (frontal + lateral)"
    assert skipped[expect["manifest_line_2"]]["reason"] == "duplicate study id in manifest line 2 (first on line 1)"
    assert failed[expect["corrupt_pa"]]["scope"] == "file" and "truncated" in failed[expect["corrupt_pa"]]["reason"]

    assert summary["files"] == {"used": len(used), "skipped": len(skipped), "failed": len(failed)}
    assert summary["scored"] == 9 and summary["failed"] == 0  # 6 DICOM studies, 2 images, 1 manifest line
    ids = [r["study_id"] for r in read_jsonl(out)]
    assert "x.png" in ids and "x.jpg" in ids and "m1" in ids  # x.png and x.jpg are two studies

    again = score(tiny_model_dir, inputs, out, batch_size=2, workers=1, generate=False, progress=False)
    assert again["scored"] == 0 and again["files"] == {"used": 0, "skipped": 0, "failed": 0}
    assert _accounting(out) == (used, failed, skipped)


def test_ids_that_differ_only_in_unsafe_characters_get_their_own_outputs(tiny_model_dir, tmp_path, phantom_dir):
    image = sorted((phantom_dir / "dicom").rglob("PA.dcm"))[0]
    manifest = tmp_path / "ids.jsonl"
    manifest.write_text("".join(json.dumps({"study_id": sid, "images": [str(image)]}) + "\n"
                                for sid in ("a/b", "a b", "a?b")))
    out = tmp_path / "scores.jsonl"
    score(tiny_model_dir, [manifest], out, workers=0, generate=False, progress=False, sr_dir=tmp_path / "sr",
          heatmap_dir=tmp_path / "heat")
    assert len(list(read_jsonl(out))) == 3
    assert len(list((tmp_path / "sr").glob("*.dcm"))) == 3
    assert len(list((tmp_path / "heat").glob("*.npz"))) == 3


def test_a_study_whose_outputs_cannot_be_written_is_an_error_line_and_the_run_goes_on(
        tiny_model_dir, phantom_dir, tmp_path, monkeypatch):
    from multimodal.inference import writer

    calls = []

    def broken_heatmaps(result, *args, **kwargs):
        calls.append(result.study_id)
        if len(calls) == 1:
            raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(writer, "write_heatmaps", broken_heatmaps)
    out = tmp_path / "scores.jsonl"
    summary = score(tiny_model_dir, [phantom_dir / "dicom"], out, workers=0, generate=False, progress=False,
                    heatmap_dir=tmp_path / "heat")
    assert summary["scored"] == 8 and summary["output_errors"] == 1
    [line] = [e for e in read_jsonl(errors_path(out)) if e["scope"] == "output"]
    assert line["key"] == f"{calls[0]}#heatmaps" and "RecursionError" in line["reason"]


def test_adversarial_corpus_is_scored_in_one_run_with_every_file_accounted_for(
        tiny_model_dir, adversarial_corpus, tmp_path):
    folder, readable = adversarial_corpus
    out = tmp_path / "scores.jsonl"
    summary = score(tiny_model_dir, [folder], out, workers=1, generate=False, progress=False,
                    sr_dir=tmp_path / "sr")
    used, failed, skipped = _accounting(out)
    assert sorted(Path(p).name for p in used) == sorted(n for n, ok in readable.items() if ok)
    assert sorted(Path(p).name for p in failed) == sorted(n for n, ok in readable.items() if not ok)
    assert not skipped and summary["files"]["failed"] == len(failed)
    # every SR is written, that of the deeply nested file too, but for the unknown character set's
    outputs = [e for e in read_jsonl(errors_path(out)) if e["scope"] == "output"]
    assert [Path(e["path"]).name for e in outputs] == ["bad_charset.dcm"] and "ISO_IR 999" in outputs[0]["reason"]
    assert len(list((tmp_path / "sr").glob("*.dcm"))) == len(used) - 1


_CHILD = """
import sys, time
from multimodal.inference import predictor
run_batch = predictor.Predictor.run_batch
def slow(self, *args, **kwargs):
    time.sleep(30)
    return run_batch(self, *args, **kwargs)
predictor.Predictor.run_batch = slow
from multimodal.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the worker processes")
def test_decode_workers_forkserver_and_tracker_exit_when_the_parent_is_killed(tiny_model_dir, phantom_dir,
                                                                              tmp_path):
    args = ["score", "--model", str(tiny_model_dir), "--input", str(phantom_dir / "dicom"), "--out",
            str(tmp_path / "s.jsonl"), "--workers", "2", "--batch-size", "1", "--no-findings", "--quiet"]
    child = subprocess.Popen([sys.executable, "-c", _CHILD, *args], start_new_session=True,
                             env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    deadline = time.monotonic() + 180
    helpers: set[int] = set()
    while time.monotonic() < deadline and len(helpers) < 4:  # forkserver, tracker, 2 workers
        time.sleep(0.5)
        helpers = _descendants(child.pid)
    assert len(helpers) >= 4, "the decode workers did not start"
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in helpers):
        time.sleep(0.2)
    left = [p for p in helpers if _alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "processes outlived their parent"


def test_scoring_is_split_into_named_stages_without_test_hooks_in_signatures():
    import inspect

    from multimodal.inference import prepare

    assert "fault_inject" not in inspect.signature(prepare.prepare_study).parameters
    assert "fault_inject" not in inspect.signature(prepare.make_preparer).parameters
    assert len(inspect.getsource(scoring.score).splitlines()) < 70


def test_headers_sent_between_processes_are_shallow_but_keep_code_sequences():
    import pickle

    from adversarial_dicom import _image, _nested

    from multimodal.inference.prepare import sr_header

    ds = _image(ReferencedStudySequence=_nested(100))
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "399348003", "SCT", "postero-anterior"
    ds.ViewCodeSequence = [code]
    header = sr_header(ds)
    assert "ReferencedStudySequence" not in header and "PixelData" not in header
    assert header.ViewCodeSequence[0].CodeMeaning == "postero-anterior" and header.PatientID == ds.PatientID
    assert len(pickle.dumps(header)) < 10_000


def test_a_study_the_model_fails_on_is_an_error_line_and_its_batch_mates_are_scored(
        tiny_model_dir, phantom_dir, tmp_path, monkeypatch):
    from multimodal.inference.predictor import Predictor

    from multimodal.inference.sources import discover_studies

    poisoned = sorted(s.study_id for s in discover_studies([phantom_dir / "dicom"]).studies)[1]
    run_batch = Predictor.run_batch

    def fails_on_one(self, prepared, *args, **kwargs):
        if any(p.study_id == poisoned for p in prepared):
            raise RuntimeError("NaN in the attention scores")
        return run_batch(self, prepared, *args, **kwargs)

    monkeypatch.setattr(Predictor, "run_batch", fails_on_one)
    out = tmp_path / "scores.jsonl"
    summary = score(tiny_model_dir, [phantom_dir / "dicom"], out, batch_size=4, workers=0, generate=False,
                    progress=False)
    assert summary["scored"] == 7 and summary["failed"] == 1
    [error] = [e for e in read_jsonl(errors_path(out)) if e["scope"] == "study"]
    assert error["study_id"] == poisoned and error["stage"] == "model" and "NaN" in error["reason"]
