"""The report labeler measured against the IU X-ray codes and against CheXpert-convention hand labels.

    python benchmarks/eval_labeler.py parts --out runs/labeler-data [--tune-limit N]
    python benchmarks/eval_labeler.py score --set hand-dev|hand-test|iu-tune|iu-test [--method rules ...]
        [--model runs/labeler] [--convention chexpert|iu] [--show-errors] [--json out.json]

Parts (fixed before any measurement, by hashes of the uid): :func:`benchmarks.iu_codes.split_of` splits
the dev reports into ``tune`` (70 %, where the rules were developed) and ``heldout``; 300 held-out reports
were hand-labelled (``benchmarks/data/iu_hand_labels.jsonl``), half ``dev`` (decisions) and half ``test``
(reported once). ``iu-test`` is the held-out part minus the hand ``dev`` reports.

``parts`` writes the JSONL inputs of ``mmdx label-train`` (``tune.jsonl``: the tune reports with text, all of
them or the first ``--tune-limit`` in hash order; never a held-out or hand-labelled one; ``hand_dev.jsonl``;
``hand_labels.jsonl``). ``score`` prints per-observation precision / recall / F1 with 95 % bootstrap intervals (reports resampled, 1000 times) and, against the hand
labels, the exact 4-class agreement (1 / 0 / -1 / blank). Mention-level: a labeler value of 1 or -1 counts
as positive; against the IU codes the strict column counts only 1 (the codes mark positive findings).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.iu_codes import split_of, study_truth  # noqa: E402
from preprocessing.report_labeler import join_fields  # noqa: E402
from preprocessing.vocab import CHEXPERT_OBSERVATIONS  # noqa: E402

DEV_FILE = ROOT / "../shared/data/iu_xray_reports/reports_dev.jsonl"
HAND_FILE = ROOT / "benchmarks/data/iu_hand_labels.jsonl"
FIELDS = ("findings", "impression")
SETS = ("hand-dev", "hand-test", "iu-tune", "iu-test")


def _hash(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest(), 16)


def load_reports(path: Path = DEV_FILE) -> dict[str, dict]:
    """The dev file's records by uid (as text)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {str(r["uid"]): r for r in rows}


def load_hand(path: Path = HAND_FILE) -> dict[str, dict]:
    """Hand labels by uid: ``{"part": "dev"|"test", "labels": {...}}``."""
    return {r["uid"]: r for r in (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())}


def reference(name: str, reports: dict[str, dict], hand: dict[str, dict]) -> tuple[list[str], list[dict]]:
    """The uids of an evaluation set and their reference values (observation -> 1/0/-1/None).

    Hand sets: the hand labels. IU sets: 1 for every coded observation, 0 otherwise (reports not indexed
    or without text are left out)."""
    if name.startswith("hand-"):
        uids = [u for u, r in hand.items() if r["part"] == name[5:]]
        return uids, [hand[u]["labels"] for u in uids]
    part = "tune" if name == "iu-tune" else "heldout"
    uids, refs = [], []
    for uid, row in reports.items():
        if split_of(uid) != part or (name == "iu-test" and hand.get(uid, {}).get("part") == "dev"):
            continue
        truth = study_truth(row.get("mesh") or [])
        if truth is None or not join_fields(row, FIELDS):
            continue
        uids.append(uid)
        refs.append({o: int(o in truth.positives) for o in CHEXPERT_OBSERVATIONS})
    return uids, refs


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)


def agreement(refs: list[dict], preds: list[dict], strict: bool = False, boot: int = 1000, seed: int = 0) -> dict:
    """Per-observation precision / recall / F1 (+ 95 % bootstrap interval of F1), macro F1 over the
    observations with positives, and exact 4-class agreement (per observation and overall)."""
    obs = list(CHEXPERT_OBSERVATIONS)
    pos = (1,) if strict else (1, -1)
    ref = np.array([[r.get(o) in (1, -1) for o in obs] for r in refs])
    got = np.array([[p.get(o) in pos for o in obs] for p in preds])
    same = np.array([[r.get(o) == p.get(o) for o in obs] for r, p in zip(refs, preds)])
    tp, fp, fn = (ref & got), (~ref & got), (ref & ~got)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(refs), size=(boot, len(refs)))
    f_boot = _f1(tp[idx].sum(1), fp[idx].sum(1), fn[idx].sum(1))  # [boot, O]
    has = ref.sum(0) > 0
    f = _f1(tp.sum(0), fp.sum(0), fn.sum(0))
    macro_boot = np.nanmean(np.where(has, f_boot, np.nan), axis=1)
    exact_boot = same[idx].mean((1, 2))
    table = {}
    for i, o in enumerate(obs):
        t, p_, n_ = int(tp[:, i].sum()), int(fp[:, i].sum()), int(fn[:, i].sum())
        lo, hi = np.nanpercentile(f_boot[:, i], [2.5, 97.5]) if has[i] else (np.nan, np.nan)
        table[o] = {"support": t + n_, "precision": t / (t + p_) if t + p_ else 0.0, "recall": t / (t + n_) if t + n_ else 0.0,
                    "f1": float(f[i]), "f1_ci": [float(lo), float(hi)], "exact": float(same[:, i].mean())}
    return {"reports": len(refs), "observations": table, "macro_f1": float(np.nanmean(np.where(has, f, np.nan))),
            "macro_f1_ci": [float(x) for x in np.percentile(macro_boot, [2.5, 97.5])],
            "exact": float(same.mean()), "exact_ci": [float(x) for x in np.percentile(exact_boot, [2.5, 97.5])]}


def hedged_coded(refs: list[dict], preds: list[dict]) -> tuple[int, int]:
    """How many of the labeler's uncertain (-1) values the reference codes as positive, of all of them: the
    evidence for how the IU coders treat hedged findings (docs/labeler.md, "Counting against the codes")."""
    pairs = [(r.get(o), p.get(o)) for r, p in zip(refs, preds) for o in CHEXPERT_OBSERVATIONS if o != "No Finding"]
    hedged = [r for r, p in pairs if p == -1]
    return sum(r == 1 for r in hedged), len(hedged)


def write_parts(out: Path, tune_limit: int | None = None) -> None:
    """The JSONL inputs of ``mmdx label-train``: tune reports (rule labels), hand-dev reports and labels."""
    reports, hand = load_reports(), load_hand()
    out.mkdir(parents=True, exist_ok=True)
    tune = sorted((u for u, r in reports.items() if split_of(u) == "tune" and join_fields(r, FIELDS)),
                  key=lambda u: _hash(f"train:{u}"))[:tune_limit]
    dev = [u for u, r in hand.items() if r["part"] == "dev"]
    for name, uids in (("tune.jsonl", tune), ("hand_dev.jsonl", dev)):
        (out / name).write_text("".join(json.dumps(reports[u]) + "\n" for u in uids), encoding="utf-8")
    (out / "hand_labels.jsonl").write_text("".join(json.dumps({"uid": u, "labels": hand[u]["labels"]}) + "\n"
                                                   for u in dev), encoding="utf-8")
    print(f"wrote {len(tune)} tune and {len(dev)} hand-dev reports -> {out}")


def score(a: argparse.Namespace) -> dict:
    """Label the set's reports with each method and compare with its reference."""
    from multimodal.labeling import label_texts
    from multimodal.labeling.bert_labeler import BertLabeler

    reports, hand = load_reports(), load_hand()
    uids, refs = reference(a.set, reports, hand)
    texts = [join_fields(reports[u], FIELDS) for u in uids]
    model = BertLabeler.from_pretrained(a.model) if a.model else None
    results = {}
    for method in a.method:
        preds = [r["values"] for r in label_texts(texts, method, model, a.convention, progress=True)]
        res = agreement(refs, preds, strict=False)
        if a.set.startswith("iu-"):
            res["strict"] = agreement(refs, preds, strict=True)
            res["hedged_coded"] = hedged_coded(refs, preds)
        results[method] = res
        print(f"\n## {a.set}, {method}, convention {a.convention}: {res['reports']} reports")
        strict = a.set.startswith("iu-")
        print("| observation | support | precision | recall | F1 [95% CI] |" + (" F1 (1 only) |" if strict else " exact 4-class |"))
        print("|---|---|---|---|---|---|")
        for o, t in res["observations"].items():
            last = f"{res['strict']['observations'][o]['f1']:.3f}" if strict else f"{t['exact']:.3f}"
            print(f"| {o} | {t['support']} | {t['precision']:.3f} | {t['recall']:.3f} | {t['f1']:.3f} "
                  f"[{t['f1_ci'][0]:.2f}, {t['f1_ci'][1]:.2f}] | {last} |")
        lo, hi = res["macro_f1_ci"]
        tail = f"strict macro {res['strict']['macro_f1']:.3f}" if strict else f"exact 4-class {res['exact']:.3f} [{res['exact_ci'][0]:.3f}, {res['exact_ci'][1]:.3f}]"
        print(f"| **macro** | | | | **{res['macro_f1']:.3f}** [{lo:.3f}, {hi:.3f}] | {tail} |")
        if "hedged_coded" in res:
            coded, total = res["hedged_coded"]
            print(f"uncertain (-1) values the coders coded: {coded} of {total}")
        if a.show_errors:
            for uid, ref, pred, text in zip(uids, refs, preds, texts):
                wrong = {o: (ref.get(o), pred.get(o)) for o in CHEXPERT_OBSERVATIONS if ref.get(o) != pred.get(o)}
                if wrong:
                    print(f"-- {uid} {wrong}\n   {text}")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("parts", help="write the JSONL inputs of mmdx label-train")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tune-limit", type=int, default=None, help="tune reports for the rules stage (default: all)")
    s = sub.add_parser("score", help="agreement of the labeler methods with a reference")
    s.add_argument("--set", choices=SETS, required=True)
    s.add_argument("--method", nargs="+", default=["rules"], choices=["rules", "bert", "ensemble"])
    s.add_argument("--model", default=None, help="learned labeler directory (bert, ensemble)")
    s.add_argument("--convention", default="chexpert", choices=["chexpert", "iu"])
    s.add_argument("--show-errors", action="store_true", help="print every disagreement (development sets only)")
    s.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.command == "parts":
        write_parts(a.out, a.tune_limit)
        return 0
    if a.show_errors and a.set not in ("hand-dev", "iu-tune"):
        ap.error("--show-errors reads development sets only (hand-dev, iu-tune)")
    results = score(a)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
