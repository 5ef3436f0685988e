"""A scored archive as `mmdx score` and `mmdx evaluate` leave it, without running a model: phantom
DICOM studies, result lines (with and without the optional fields), heat maps, an errors file, a
skipped file and an evaluation folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from multimodal.data.phantom import write_phantom_dataset
from multimodal.inference.results import ObservationResult, Peak, SourceImage, StudyResult, safe_file_stem
from preprocessing.vocab import PHANTOM_OBSERVATIONS

OBSERVATIONS = list(PHANTOM_OBSERVATIONS)


@pytest.fixture(scope="session")
def scored(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scored")
    write_phantom_dataset(root / "phantom", studies=6, seed=3, size=64)
    rng = np.random.default_rng(0)
    heat_dir, lines = root / "heatmaps", []
    heat_dir.mkdir()
    for n, path in enumerate(sorted((root / "phantom" / "dicom").rglob("PA.dcm"))):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        probs = rng.random(len(OBSERVATIONS))
        observations = {name: ObservationResult(probability=float(p), threshold=0.5, positive=bool(p >= 0.5),
                                                zones=["right_lower"] if p >= 0.5 else [],
                                                peak=Peak(10.0, 20.0) if p >= 0.5 else None)
                        for name, p in zip(OBSERVATIONS, probs)}
        result = StudyResult(study_id=str(ds.StudyInstanceUID), observations=observations, findings=f"finding {n}.",
                             study_instance_uid=str(ds.StudyInstanceUID), model={"name": "mmdx-test", "version": "0.0.1",
                                                                                 "config_hash": "abcd"},
                             sources=[SourceImage(str(path), ds.Rows, ds.Columns, str(ds.SOPInstanceUID),
                                                  square_to_pixels=(float(ds.Columns), 0.0, float(ds.Rows), 0.0))],
                             heatmaps=rng.random((len(OBSERVATIONS), 4, 4)).astype(np.float32))
        np.savez_compressed(heat_dir / f"{safe_file_stem(result.study_id)}.npz", heatmaps=result.heatmaps,
                            observations=np.array(OBSERVATIONS))
        line = result.to_dict()
        if n == 0:  # what issue #14's results carry: each view's slot, the study's files left out
            line["sources"][0]["view"] = "frontal (PA)"
            line["skipped"] = [{"path": "in/extra.dcm", "reason": "a third view (max_views is 2)"}]
        if n % 2:  # fields issue #15 adds: uncertainty and an indeterminate decision, on some lines only
            for k, obs in enumerate(line["observations"].values()):
                obs["uncertainty"] = round(0.1 * k, 6)
            first = line["observations"][OBSERVATIONS[0]]
            first["decision"], first["positive"] = "indeterminate", False
        lines.append(line)
    results = root / "results.jsonl"
    results.write_text("".join(json.dumps(line) + "\n" for line in lines))
    (root / "results.jsonl.errors.jsonl").write_text(json.dumps(
        {"study_id": "broken-study", "path": "in/broken.dcm", "reason": "not a DICOM file", "stage": "decode",
         "key": "broken-study"}) + "\n")
    (root / "results.jsonl.skipped.jsonl").write_text(json.dumps(
        {"study_id": "lateral-only", "path": "in/lat.dcm", "reason": "no frontal view"}) + "\n")
    return {"results": results, "heatmaps": heat_dir, "eval": _evaluation(root / "eval", rng)}


def _evaluation(out: Path, rng) -> Path:
    """An `mmdx evaluate` folder: metrics.json, predictions.npz, pointing.jsonl and two overlays."""
    (out / "overlays").mkdir(parents=True)
    n = 40
    labels = (rng.random((n, len(OBSERVATIONS))) < 0.4).astype(np.float32)
    probs = np.clip(labels * 0.6 + rng.random(labels.shape) * 0.5, 0, 1).astype(np.float32)
    np.savez_compressed(out / "predictions.npz", probs=probs, labels=labels, label_mask=np.ones_like(labels, bool),
                        study_ids=np.array([f"s{i}" for i in range(n)]), observations=np.array(OBSERVATIONS))
    per_observation = {name: {"auroc": 0.9, "ap": 0.8, "precision": 0.7, "recall": 0.6, "f1": 0.65, "n": n,
                              "positives": int(labels[:, d].sum()), "ci": {"auroc": [0.8, 0.95], "ap": [0.7, 0.9],
                                                                           "f1": [0.5, 0.8]}}
                       for d, name in enumerate(OBSERVATIONS)}
    metrics = {"summary": {"n_studies": n, "macro_auroc": 0.9, "macro_auroc_ci": [0.85, 0.95], "pointing_game": 0.5},
               "split": "test", "classification": {"per_observation": per_observation,
                                                   "thresholds": {name: 0.5 for name in OBSERVATIONS}}}
    (out / "metrics.json").write_text(json.dumps(metrics))
    trials = [{"study_id": "s1", "observation": "Cardiomegaly", "hit": True, "error_px": 0.0, "probability": 0.9,
               "overlay": "s1_Cardiomegaly.png"},
              {"study_id": "s2", "observation": "Pneumothorax", "hit": False, "error_px": 12.5, "probability": 0.7,
               "overlay": "s2_Pneumothorax.png"}]
    (out / "pointing.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trials))
    for t in trials:
        Image.new("RGB", (32, 32), "red").save(out / "overlays" / t["overlay"])
    return out
