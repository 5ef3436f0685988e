"""`write_report(results, out, eval_dir=None, images=None)`: a static HTML report that opens from disk.

Layout of ``out``::

    index.html          the study table: sort, filter (observation, probability, decision,
                        uncertainty, status), pages of PAGE_SIZE rows, drawn by assets/report.js
                        from data/studies.js (a script, not JSON: browsers refuse to fetch files
                        from disk)
    studies/<n>.html    one page per scored study: views, heat-map overlays per positive
                        observation (toggle), observations with codes, zones, findings, indication, model
    errors.html         studies that could not be scored (<results>.errors.jsonl) or were skipped
                        (<results>.skipped.jsonl)
    evaluation.html     with ``eval_dir``: curves, reliability, metrics with intervals, confusion
                        counts, best and worst pointing examples
    img/, eval/, assets/

No network: the pages load only files under ``out`` (no CDN, no fonts from elsewhere). Images are
``loading="lazy"`` and live on the study pages, so the index stays small for thousands of studies.
Fields a results line may lack (``decision``, ``uncertainty``, ``indication``, ``sources`` and
their ``view``, the study's ``failed``/``skipped`` files) are shown when present.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape

from multimodal.inference.results import SourceImage, read_jsonl, safe_file_stem
from multimodal.models.calibration import DECISIONS
from multimodal.report.evaluation import evaluation_context
from multimodal.report.images import overlay_box, write_overlay, write_view
from preprocessing.codes import observation_code
from preprocessing.crypto import Keyring, read_file
from preprocessing.errors import MmdxError

PAGE_SIZE = 50
_SOURCE_FIELDS = {f.name for f in dataclasses.fields(SourceImage)}  # a newer line may carry more
ASSETS = Path(__file__).with_name("assets")


def write_report(results: str | Path, out: str | Path, eval_dir: str | Path | None = None,
                 images: str | Path | None = None) -> Path:
    """Write the report of the ``mmdx score`` log ``results`` (JSONL) into ``out``; return ``out/index.html``.

    ``eval_dir``: an ``mmdx evaluate`` output folder (adds evaluation.html). ``images``: the
    ``mmdx score --heatmaps`` folder; its ``<study>.npz`` heat maps become overlays of the first
    view. Errors and skipped studies are read from ``<results>.errors.jsonl`` and
    ``<results>.skipped.jsonl`` when they exist. Raises :class:`MmdxError` naming the missing input.
    """
    results, out = Path(results), Path(out)
    if not results.is_file():
        raise MmdxError(f"--results: {results} does not exist")
    heat_dir = Path(images) if images is not None else None
    if heat_dir is not None and not heat_dir.is_dir():
        raise MmdxError(f"--images: {heat_dir} is not a folder")
    for sub in ("studies", "img", "data"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    shutil.copytree(ASSETS, out / "assets", dirs_exist_ok=True)
    env = Environment(loader=PackageLoader("multimodal.report"), autoescape=select_autoescape())
    env.filters["prob"] = lambda v: "" if v is None else f"{v:.4f}"

    evaluation = evaluation_context(Path(eval_dir), out) if eval_dir is not None else None
    records = list(read_jsonl(results))
    observations = list(dict.fromkeys(name for r in records for name in r["observations"]))
    rows = []
    for n, record in enumerate(records):
        page = f"studies/{n:06d}.html"
        study = _study(record, n, out, heat_dir)
        (out / page).write_text(env.get_template("study.html").render(study=study, root="..",
                                                                             has_evaluation=evaluation is not None), encoding="utf-8")
        rows.append(_row(record, page))
    problems = _problems(results)
    rows += [{"id": p.get("study_id") or p.get("path") or "", "page": "errors.html", "status": p["status"],
              "reason": p.get("reason", ""), "p": {}, "d": {}, "u": {}, "positives": []} for p in problems]
    data = {"observations": observations, "rows": rows, "pageSize": PAGE_SIZE}
    (out / "data" / "studies.js").write_text("window.MMDX_REPORT = " + json.dumps(data, separators=(",", ":")) + ";\n",
                                             encoding="utf-8")
    pages = ["index.html", "errors.html"] + (["evaluation.html"] if evaluation is not None else [])
    context = {"root": ".", "results": results.name, "n_scored": len(records), "problems": problems,
               "n_errors": sum(p["status"] == "error" for p in problems),
               "n_skipped": sum(p["status"] == "skipped" for p in problems),
               "model": records[0].get("model", {}) if records else {}, "evaluation": evaluation,
               "has_evaluation": evaluation is not None, "decisions": DECISIONS}
    for name in pages:
        (out / name).write_text(env.get_template(name).render(**context), encoding="utf-8")
    return out / "index.html"


def _problems(results: Path) -> list[dict[str, Any]]:
    """The lines of ``<results>.errors.jsonl`` and ``<results>.skipped.jsonl`` (absent files: none), with a status."""
    return [{**line, "status": status} for status, suffix in (("error", ".errors.jsonl"), ("skipped", ".skipped.jsonl"))
            for line in read_jsonl(results.with_name(results.name + suffix))]


def _decision(obs: dict) -> str:
    """The result's ``present`` / ``absent`` / ``indeterminate`` (results written before decisions
    existed fall back to ``positive``, as the SR does)."""
    return obs.get("decision") or ("present" if obs.get("positive") else "absent")


def _row(record: dict, page: str) -> dict[str, Any]:
    """One line of the study table (short keys: the index holds thousands)."""
    obs = record["observations"]
    return {"id": record["study_id"], "page": page, "status": "scored", "reason": "",
            "p": {k: v["probability"] for k, v in obs.items()}, "d": {k: _decision(v) for k, v in obs.items()},
            "u": {k: v["uncertainty"] for k, v in obs.items() if v.get("uncertainty") is not None},
            "positives": [k for k, v in obs.items() if _decision(v) == "present"]}


def _study(record: dict, n: int, out: Path, heat_dir: Path | None) -> dict[str, Any]:
    """The study page's content; writes its view PNGs and heat-map overlays under ``out/img``."""
    stem = f"{n:06d}"
    observations = [{"name": name, "code": observation_code(name), "uncertainty": None, **o, "decision": _decision(o)}
                    for name, o in record["observations"].items()]
    views = []
    for v, source in enumerate(record.get("sources") or []):
        file = f"img/{stem}_v{v}.png"
        views.append({"index": v, "path": source.get("path"), "slot": source.get("view"), "overlays": [],
                      "image": file if write_view(source.get("path"), out / file) else None})
    heat = _heatmaps(heat_dir, record["study_id"])
    if views and views[0]["image"] and heat is not None:
        box = overlay_box(SourceImage(**{k: v for k, v in record["sources"][0].items() if k in _SOURCE_FIELDS}))
        names, maps = heat
        for o in observations:
            if o["decision"] == "present" and o["name"] in names and box is not None:
                file = f"img/{stem}_{safe_file_stem(o['name'])}.png"
                write_overlay(maps[names.index(o["name"])], out / file)
                views[0]["overlays"].append({"observation": o["name"], "image": file, "box": box})
    return {"id": record["study_id"], "uid": record.get("study_instance_uid"), "findings": record.get("findings"),
            "indication": record.get("indication") or record.get("text"), "model": record.get("model") or {},
            "observations": observations, "views": views, "timings": record.get("timings_ms") or {},
            "left_out": [{**f, "status": status} for status in ("failed", "skipped") for f in record.get(status) or []]}


def _heatmaps(heat_dir: Path | None, study_id: str) -> tuple[list[str], Any] | None:
    """(observation names, heat maps ``[D, h, w]``) of a study from ``mmdx score --heatmaps``, or None."""
    if heat_dir is None or not (heat_dir / f"{safe_file_stem(study_id)}.npz").is_file():
        return None
    # Heat maps written with a key file are encrypted: read_file decrypts them (MMDX_KEY_FILE).
    with np.load(io.BytesIO(read_file(heat_dir / f"{safe_file_stem(study_id)}.npz", Keyring.from_env()))) as data:
        return [str(o) for o in data["observations"]], data["heatmaps"]
