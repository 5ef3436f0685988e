"""Where the model looks: pointing game on radiologist boxes, zone-level F1, heat-map overlays.

Pointing game (Zhang et al. 2016, as used for NIH ChestX-ray8 by Wang et al. 2017 and later work):
a hit when the arg-max of an observation's heat map falls inside one of that observation's boxes
enlarged by a tolerance. The published tolerance is 15 px on NIH's 1024-px images; we keep it as a
fraction of the image's longer side (15/1024 = 1.46 %), i.e. 7.5 px on the 512-px NIH PNGs here,
15 px on 1024-px originals, ~44 px on a 3000-px DICOM. Because the letterbox that maps an original
image into the model's square is one uniform scale plus a shift, testing in the square with
``15 * S / 1024`` px is the same test as in original pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

NIH_TOLERANCE_PX = 15.0
NIH_REFERENCE_SIZE = 1024.0


def tolerance_px(image_shape: tuple[int, int]) -> float:
    """Pointing-game tolerance in pixels of an image of ``(height, width)``: 15 px per 1024 px of its longer side."""
    return NIH_TOLERANCE_PX * max(image_shape) / NIH_REFERENCE_SIZE


def heatmap_peak(heatmap: np.ndarray, image_size: int) -> tuple[float, float]:
    """Arg-max of one heat map, in pixels of the model's square input.

    ``heatmap`` is float ``[h, w]`` on the patch grid of the ``image_size`` x ``image_size`` input;
    it is bilinearly upsampled to that square first (as when drawn over the image), so the peak is a
    pixel, not a cell. Returns ``(x, y)`` (x to the right, y down) at the pixel's centre. A point in
    the square maps to the original image through the letterbox geometry's inverse (one uniform
    scale and a shift), which is why comparing in the square with a scaled tolerance is exact.
    """
    up = F.interpolate(torch.as_tensor(heatmap, dtype=torch.float32)[None, None], size=(image_size, image_size),
                       mode="bilinear", align_corners=False)[0, 0]
    iy, ix = divmod(int(torch.argmax(up)), image_size)
    return ix + 0.5, iy + 0.5


def point_in_boxes(x: float, y: float, boxes: list[tuple[float, float, float, float]], tolerance: float) -> bool:
    """True when ``(x, y)`` lies in any ``(x, y, w, h)`` box grown by ``tolerance`` on every side."""
    return any(bx - tolerance <= x <= bx + bw + tolerance and by - tolerance <= y <= by + bh + tolerance
               for bx, by, bw, bh in boxes)


def pointing_trials(heatmaps: np.ndarray, boxes: list[list[dict]], observations: list[str], image_size: int
                    ) -> list[tuple[int, int, list, tuple[float, float], bool]]:
    """Pointing-game trials: one per study and observation with boxes.

    ``heatmaps [N, D, h, w]`` (logits or probabilities: only the arg-max counts), ``boxes`` per study a
    list of ``{"label", "xywh"}`` in pixels of the ``image_size`` square (labels matched to
    ``observations`` ignoring case and ``_``). A trial is ``(study index, observation index, boxes,
    peak, hit)``, with the tolerance :func:`tolerance_px` of the square.
    """
    tolerance = tolerance_px((image_size, image_size))
    index = {name.lower().replace("_", " "): d for d, name in enumerate(observations)}
    trials = []
    for n, study_boxes in enumerate(boxes):
        by_label: dict[int, list] = {}
        for box in study_boxes:
            d = index.get(box["label"].lower().replace("_", " "))
            if d is not None:
                by_label.setdefault(d, []).append(tuple(box["xywh"]))
        for d, rects in by_label.items():
            x, y = heatmap_peak(heatmaps[n, d], image_size)
            trials.append((n, d, rects, (x, y), point_in_boxes(x, y, rects, tolerance)))
    return trials


def pointing_game(hits: dict[str, list[bool]]) -> dict:
    """Aggregate pointing-game hits: ``{"per_observation": {name: {accuracy, n}}, "mean", "overall"}``.

    ``mean`` averages the per-observation accuracies (the usual table entry); ``overall`` pools boxes.
    """
    per_obs = {name: {"accuracy": float(np.mean(h)), "n": len(h)} for name, h in hits.items() if h}
    pooled = [x for h in hits.values() for x in h]
    return {
        "per_observation": per_obs,
        "mean": float(np.mean([m["accuracy"] for m in per_obs.values()])) if per_obs else None,
        "overall": float(np.mean(pooled)) if pooled else None,
    }


def pointing_game_ci(trials: list[tuple], observations: list[str], n_bootstrap: int = 500, seed: int = 0,
                     level: float = 0.95) -> list[float] | None:
    """Percentile bootstrap interval of the pointing game's ``mean`` (over observations), resampling
    studies with replacement (a study's trials stay together). ``trials`` as from
    :func:`pointing_trials`; None without trials or with ``n_bootstrap`` 0."""
    if not trials or not n_bootstrap:
        return None
    studies = sorted({t[0] for t in trials})
    by_study: dict[int, list[tuple[int, bool]]] = {n: [] for n in studies}
    for n, d, _, _, hit in trials:
        by_study[n].append((d, bool(hit)))
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(n_bootstrap):
        hits: dict[str, list[bool]] = {}
        for n in rng.choice(studies, size=len(studies), replace=True):
            for d, hit in by_study[n]:
                hits.setdefault(observations[d], []).append(hit)
        means.append(pointing_game(hits)["mean"])
    tail = (1 - level) / 2
    return [float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))]


def zone_f1(zone_probs: np.ndarray, zone_targets: np.ndarray, zone_mask: np.ndarray, zones: list[str],
            threshold: float = 0.5) -> dict:
    """Zone-level F1 over the (study, observation) pairs that carry zone labels.

    ``zone_probs``/``zone_targets`` are ``[N, D, Z]`` and ``zone_mask`` bool ``[N, D]``. Returns
    ``{"micro_f1", "macro_f1", "per_zone": {zone: f1}}`` (None when no pair has zone labels).
    """
    from sklearn.metrics import f1_score

    ok = np.asarray(zone_mask, bool)
    if not ok.any():
        return {"micro_f1": None, "macro_f1": None, "per_zone": {}}
    pred, true = zone_probs[ok] >= threshold, zone_targets[ok] >= 0.5
    per_zone = {z: float(f1_score(true[:, k], pred[:, k], zero_division=0)) for k, z in enumerate(zones)
                if true[:, k].any() or pred[:, k].any()}
    return {"micro_f1": float(f1_score(true.ravel(), pred.ravel(), zero_division=0)),
            "macro_f1": float(np.mean(list(per_zone.values()))) if per_zone else None, "per_zone": per_zone}


def save_overlay(image: np.ndarray, heatmap: np.ndarray, path: str | Path, title: str = "",
                 boxes: list[tuple[float, float, float, float]] = (), peak: tuple[float, float] | None = None) -> Path:
    """Write a PNG of a heat map over the model's square input image.

    ``image`` is ``[S, S]`` (any intensity range), ``heatmap`` ``[h, w]`` probabilities; ``boxes``
    (``x, y, w, h``) and ``peak`` (``x, y``) are in the same square's pixels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    size = image.shape[-1]
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.imshow(image, cmap="gray")
    ax.imshow(heatmap, cmap="jet", alpha=0.35, extent=(0, size, size, 0), interpolation="bilinear")
    for bx, by, bw, bh in boxes:
        ax.add_patch(Rectangle((bx, by), bw, bh, fill=False, ec="lime", lw=1.5))
    if peak is not None:
        ax.plot(*peak, marker="+", c="white", ms=12, mew=2)
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
