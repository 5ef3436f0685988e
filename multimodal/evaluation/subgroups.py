"""Subgroup performance: AUROC per value of a manifest field (sex, age band, view, any ``meta`` key).

Fields are read from each study: ``view`` is its first view (``StudyRecord.views``), ``sex`` and
``age`` the ``meta`` keys ``patient_sex`` / ``sex`` and ``patient_age`` / ``age``, ``age_band``
the age cut into :data:`AGE_BANDS`, and any other name a ``meta`` key or a ``StudyRecord`` attribute.
A study without the field is left out of that field's table. Each subgroup gets the classification
metrics of :func:`~multimodal.evaluation.classification.classification_metrics` (AUROC with
bootstrap 95 % intervals over the subgroup's studies); the gap of an observation is the largest
minus the smallest subgroup AUROC where at least two subgroups define it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from multimodal.data.manifest import StudyRecord
from multimodal.evaluation.classification import classification_metrics

AGE_BANDS = ((0, 40, "<40"), (40, 60, "40-59"), (60, 80, "60-79"), (80, 200, "80+"))
META_ALIASES = {"sex": ("patient_sex", "sex"), "age": ("patient_age", "age")}


def subgroup_value(record: StudyRecord, field: str) -> str | None:
    """The subgroup of ``record`` for ``field`` as text, or None when the study does not say."""
    if field == "view":
        return record.views[0] if record.views else None
    if field == "age_band":
        age = subgroup_value(record, "age")
        try:
            years = float(age)
        except (TypeError, ValueError):
            return None
        return next((label for low, high, label in AGE_BANDS if low <= years < high), None)
    for key in META_ALIASES.get(field, (field,)):
        if record.meta.get(key) not in (None, ""):
            return str(record.meta[key])
    value = getattr(record, field, None) if field in StudyRecord.model_fields else None
    return None if value in (None, "") else str(value)


def subgroup_metrics(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, observations: list[str],
                     thresholds: np.ndarray, groups: dict[str, list[str | None]], n_bootstrap: int = 500,
                     seed: int = 0) -> dict[str, Any]:
    """Per field and subgroup: studies, macro AUROC (+ CI) and per-observation AUROC (+ CI, counts).

    ``groups`` maps a field to one value (or None) per study, aligned with the ``[N, D]`` arrays.
    Returns ``{field: {"groups": {value: {n, macro_auroc, macro_auroc_ci, per_observation: {name:
    {auroc, ci, n, positives}}}}, "gap": {name: {gap, highest, lowest}}, "missing": count}}``.
    """
    result = {}
    for field, values in groups.items():
        table = {}
        for value in sorted({v for v in values if v is not None}):
            rows = np.array([i for i, v in enumerate(values) if v == value])
            m = classification_metrics(probs[rows], labels[rows], mask[rows], observations, thresholds,
                                       n_bootstrap=n_bootstrap, seed=seed)
            table[value] = {"n": len(rows), "macro_auroc": m["macro"]["auroc"],
                            "macro_auroc_ci": m.get("ci", {}).get("macro_auroc"),
                            "per_observation": {name: {"auroc": o["auroc"], "ci": (o.get("ci") or {}).get("auroc"),
                                                       "n": o["n"], "positives": o["positives"]}
                                                for name, o in m["per_observation"].items()}}
        result[field] = {"groups": table, "gap": _gaps(table, [*observations, "macro"]),
                         "missing": sum(v is None for v in values)}
    return result


def _gaps(table: dict[str, dict], names: list[str]) -> dict[str, dict]:
    gaps = {}
    for name in names:
        scores = {value: (g["macro_auroc"] if name == "macro" else g["per_observation"].get(name, {}).get("auroc"))
                  for value, g in table.items()}
        scores = {v: s for v, s in scores.items() if s is not None}
        if len(scores) >= 2:
            high, low = max(scores, key=scores.get), min(scores, key=scores.get)
            gaps[name] = {"gap": scores[high] - scores[low], "highest": high, "lowest": low}
    return gaps


def plot_subgroups(result: dict[str, Any], path: str | Path) -> Path:
    """Macro AUROC with its 95 % interval per subgroup, one panel per field (PNG); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields = list(result)
    fig, axes = plt.subplots(1, max(1, len(fields)), figsize=(4 * max(1, len(fields)), 3.5), dpi=110, squeeze=False)
    for ax, field in zip(axes[0], fields):
        rows = [(v, g) for v, g in result[field]["groups"].items() if g["macro_auroc"] is not None]
        for k, (value, g) in enumerate(rows):
            lo, hi = g["macro_auroc_ci"] or (g["macro_auroc"], g["macro_auroc"])
            ax.errorbar(k, g["macro_auroc"], yerr=[[g["macro_auroc"] - lo], [hi - g["macro_auroc"]]], fmt="o", capsize=3)
        ax.set_xticks(range(len(rows)), [f"{v}\n(n={g['n']})" for v, g in rows], fontsize=7)
        ax.axhline(0.5, ls="--", c="grey", lw=0.8)
        ax.set(title=field, ylabel="macro AUROC (95% CI)", ylim=(0, 1))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
