"""Report labelling by one of three methods: the rules, the learned labeler, or both.

- ``rules``: :func:`preprocessing.report_labeler.label_report` (values, zones, evidence).
- ``bert``: a saved :class:`~multimodal.labeling.bert_labeler.BertLabeler` (values only).
- ``ensemble``: the rules, except where the learned labeler is sure of another class (its probability
  at least the model's ``ensemble_threshold``); zones and evidence come from the rules where the final
  value is the rules' own.

Every method gives the same label values (1 / 0 / -1 / None), and :func:`label_file` applies the same
uncertain-label policies as the dataset layouts (:data:`preprocessing.vocab.UNCERTAIN_CHOICES`).
"""

from __future__ import annotations

import json
from pathlib import Path

from multimodal.labeling.bert_labeler import CLASS_VALUES, BertLabeler
from preprocessing.errors import ConfigError, MmdxError
from preprocessing.labeler.lexicon import CONVENTIONS, DEFAULT_CONVENTION
from preprocessing.report_labeler import NO_FINDING, SUPPORT_DEVICES, label_report, read_reports, stated_codes
from preprocessing.vocab import apply_uncertain_policy, resolve_observations, uncertain_value

METHODS = ("rules", "bert", "ensemble")


def ensemble_values(rules: dict[str, int | None], proba_row, model: BertLabeler) -> dict[str, int | None]:
    """One report's values: the rules' value of each observation unless the learned labeler gives another
    class a probability of at least ``model.config.ensemble_threshold`` (``proba_row``: ``[O, 4]``).
    No Finding then follows CheXpert's rule from the final values (1 only when no other observation but
    Support Devices is 1 or -1)."""
    out = dict(rules)
    for i, name in enumerate(model.config.observations):
        p, c = proba_row[i].max(-1)
        if float(p) >= model.config.ensemble_threshold:
            out[name] = CLASS_VALUES[int(c)]
    if out.get(NO_FINDING) is not None:
        out[NO_FINDING] = int(not any(v in (1, -1) for k, v in out.items() if k not in (NO_FINDING, SUPPORT_DEVICES)))
    return out


def label_texts(texts: list[str], method: str = "rules", model: str | BertLabeler | None = None,
                convention: str = DEFAULT_CONVENTION, observations: str | list[str] = "chexpert",
                batch_size: int = 32, progress: bool = False) -> list[dict]:
    """Label ``texts``; one dict per text with ``values`` (observation -> 1/0/-1/None) and ``codes``, and
    for the rules and the ensemble ``zones`` and ``evidence`` (see
    :meth:`preprocessing.report_labeler.ReportLabels.to_dict`).

    ``model``: a saved learned labeler's directory (or the loaded model), needed by "bert" and
    "ensemble", whose observations are the model's. ``convention``: the rules' reading ("chexpert" or
    "iu"). ``progress`` shows a bar (reports per second).
    """
    from tqdm.auto import tqdm

    if method not in METHODS:
        raise MmdxError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    if method == "rules":
        return [label_report(t, observations, convention).to_dict()
                for t in tqdm(texts, desc="label (rules)", unit="report", disable=not progress)]
    if model is None:
        raise MmdxError(f"--method {method} needs --model (a learned labeler directory, see mmdx label-train)")
    labeler = model if isinstance(model, BertLabeler) else BertLabeler.from_pretrained(model)
    proba = labeler.predict_proba(texts, batch_size=batch_size, progress=progress)
    if method == "bert":
        return [{"values": v, "codes": stated_codes(v)} for v in labeler.values_from_proba(proba)]
    out = []
    for text, row in zip(texts, proba):
        rules = label_report(text, labeler.config.observations, convention).to_dict()
        values = ensemble_values(rules["values"], row, labeler)
        kept = {k for k, v in values.items() if v == rules["values"].get(k)}
        out.append({"values": values, "codes": stated_codes(values),
                    "zones": {k: z if k in kept and values[k] in (1, -1) else [] for k, z in rules["zones"].items()},
                    "evidence": {k: e for k, e in rules["evidence"].items() if k in kept}})
    return out


def label_file(input_path: str | Path, out_path: str | Path, fields: list[str] | tuple[str, ...] = ("findings", "impression"),
               method: str = "rules", model: str | None = None, convention: str = DEFAULT_CONVENTION,
               observations: str | list[str] = "chexpert", id_field: str | None = None,
               uncertain: str | None = "keep", batch_size: int = 32, progress: bool = False) -> int:
    """Label every line of a JSONL file of reports; write one JSON line per input line; return the line count.

    Each output line holds ``id``, ``line``, ``text`` (see :func:`preprocessing.report_labeler.read_reports`),
    ``method`` and the labels of :func:`label_texts`; a line that is not a JSON object gives ``{"id": null,
    "line": n, "error": "..."}`` and labelling goes on. ``uncertain`` ("keep" / None, "U-Ignore", "U-Ones",
    "U-Zeros": :func:`preprocessing.vocab.uncertain_value`, as ``mmdx manifest --uncertain`` and the
    manifest writers) rewrites uncertain values. Raises :class:`MmdxError` for a missing input, an unknown
    method, convention or observation list, :class:`ConfigError` (key ``uncertain``) for an unknown policy.
    """
    if convention not in CONVENTIONS:
        raise MmdxError(f"--convention: expected one of {', '.join(CONVENTIONS)}, got {convention!r}")
    try:
        uncertain_value(uncertain)
    except ValueError as err:
        raise ConfigError("uncertain", str(err)) from err
    try:
        resolve_observations(observations)
    except ValueError as err:
        raise MmdxError(f"--observations: {err}") from err
    rows = list(read_reports(input_path, fields, id_field))
    good = [r for r in rows if "error" not in r]
    labels = iter(label_texts([r["text"] for r in good], method, model, convention, observations, batch_size, progress))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", encoding="utf-8") as dst:
        for row in rows:
            if "error" not in row:
                found = next(labels)
                values = apply_uncertain_policy(found["values"], uncertain)
                row |= {"method": method, **found, "values": values, "codes": stated_codes(values)}
            dst.write(json.dumps(row) + "\n")
    return len(rows)
