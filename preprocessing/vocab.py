"""The label set and the region grid, defined once and imported everywhere else.

Observations are named lists: a model's config names one of them (or gives its own list).
Zones live in the *patient's* frame; on a radiograph in display orientation (the patient's
right on the image left, as every reader here produces) the right lung is on the image left.

Zone geometry on the normalised square image (coordinates in [0, 1], x to the image right,
y downwards, after the letterbox resize of :mod:`preprocessing.transforms`)::

          x: 0.0   0.10        0.42 0.5 0.58        0.90  1.0
    y 0.06      +-----------------+---+-----------------+
               | right_upper      | m |      left_upper  |
    y 0.36     +------------------+ e +------------------+
               | right_middle     | d |     left_middle  |
    y 0.60     +------------------+ i +--------+---------+
               | right_lower      | a | cardiac(0.40-0.78)|
    y 0.90     +------------------+---+------------------+

``mediastinum`` spans x 0.42-0.58, y 0.06-0.60 and ``cardiac`` spans x 0.40-0.78, y 0.52-0.88;
they overlap the lung zones on purpose (a projection radiograph superimposes them).
"""

from __future__ import annotations

import numpy as np

CHEXPERT_OBSERVATIONS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

NIH_OBSERVATIONS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)

# The eight NIH classes that radiologists drew boxes for.
NIH_BOXED_OBSERVATIONS: tuple[str, ...] = NIH_OBSERVATIONS[:8]

# What the phantom generator plants (CheXpert names, so the report labeler reads its text).
PHANTOM_OBSERVATIONS: tuple[str, ...] = (
    "Cardiomegaly",
    "Pleural Effusion",
    "Lung Lesion",
    "Consolidation",
    "Pneumothorax",
)

OBSERVATION_SETS: dict[str, tuple[str, ...]] = {
    "chexpert": CHEXPERT_OBSERVATIONS,
    "nih": NIH_OBSERVATIONS,
    "nih_boxed": NIH_BOXED_OBSERVATIONS,
    "phantom": PHANTOM_OBSERVATIONS,
}

ZONES: tuple[str, ...] = (
    "right_upper",
    "right_middle",
    "right_lower",
    "left_upper",
    "left_middle",
    "left_lower",
    "cardiac",
    "mediastinum",
)

# (x0, y0, x1, y1) on the normalised display image; see the module docstring.
ZONE_BOXES: dict[str, tuple[float, float, float, float]] = {
    "right_upper": (0.10, 0.06, 0.42, 0.36),
    "right_middle": (0.10, 0.36, 0.42, 0.60),
    "right_lower": (0.10, 0.60, 0.42, 0.90),
    "left_upper": (0.58, 0.06, 0.90, 0.36),
    "left_middle": (0.58, 0.36, 0.90, 0.60),
    "left_lower": (0.58, 0.60, 0.90, 0.90),
    "cardiac": (0.40, 0.52, 0.78, 0.88),
    "mediastinum": (0.42, 0.06, 0.58, 0.60),
}


def resolve_observations(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Return the observation list named by ``spec`` (a key of OBSERVATION_SETS) or given literally."""
    if isinstance(spec, str):
        if spec not in OBSERVATION_SETS:
            raise ValueError(f"unknown observation set {spec!r}; known: {sorted(OBSERVATION_SETS)}")
        return OBSERVATION_SETS[spec]
    names = tuple(spec)
    if not names or len(set(names)) != len(names):
        raise ValueError("an observation list must be non-empty and without duplicates")
    return names


def zone_masks(height: int, width: int) -> np.ndarray:
    """Fraction of each grid cell covered by each zone.

    Returns float32 ``[Z, height, width]`` in [0, 1], Z = len(ZONES), for a grid laid over the
    normalised image (e.g. the ViT patch grid).
    """
    ys = np.linspace(0.0, 1.0, height + 1)
    xs = np.linspace(0.0, 1.0, width + 1)
    masks = np.zeros((len(ZONES), height, width), dtype=np.float32)
    for z, name in enumerate(ZONES):
        x0, y0, x1, y1 = ZONE_BOXES[name]
        cover_y = np.clip(np.minimum(ys[1:], y1) - np.maximum(ys[:-1], y0), 0, None) / np.diff(ys)
        cover_x = np.clip(np.minimum(xs[1:], x1) - np.maximum(xs[:-1], x0), 0, None) / np.diff(xs)
        masks[z] = np.outer(cover_y, cover_x)
    return masks


def zone_of_point(x: float, y: float) -> list[str]:
    """Zones containing the normalised point (x, y); may be several (e.g. cardiac and a lung zone)."""
    return [n for n, (x0, y0, x1, y1) in ZONE_BOXES.items() if x0 <= x < x1 and y0 <= y < y1]


# Label values everywhere (labeler output, manifests, dataset layouts): 1 positive, 0 negative,
# -1 uncertain, None not mentioned / unknown (masked in the loss). How a model trains on -1 is a
# policy (Irvin et al. 2019): U-Ignore drops it, U-Zeros reads it as 0, U-Ones as 1; "keep" leaves -1
# to the model's ``uncertain_policy`` (the same names without "U-").
UNCERTAIN_POLICIES: tuple[str, ...] = ("ignore", "zeros", "ones")
UNCERTAIN_CHOICES: tuple[str, ...] = ("keep", "U-Ignore", "U-Ones", "U-Zeros")


_UNCERTAIN_VALUE: dict[str, int | None] = {"keep": -1, "ignore": None, "zeros": 0, "ones": 1}


def uncertain_value(policy: str | None) -> int | None:
    """What an uncertain (-1) label becomes under ``policy``, in the dataset layouts' spelling
    (:data:`UNCERTAIN_CHOICES`, any case) or the model config's (:data:`UNCERTAIN_POLICIES`): ignore ->
    None (not used for training), zeros -> 0, ones -> 1; ``None`` or "keep" -> -1. The one
    implementation behind ``mmdx label --uncertain``, ``mmdx manifest --uncertain`` and every manifest
    writer. ValueError names the known policies."""
    name = (policy or "keep").lower().removeprefix("u-")
    if name not in _UNCERTAIN_VALUE:
        raise ValueError(f"unknown uncertain policy {policy!r}; expected one of {', '.join(UNCERTAIN_CHOICES)}")
    return _UNCERTAIN_VALUE[name]


def apply_uncertain_policy(values: dict[str, int | None], policy: str | None) -> dict[str, int | None]:
    """``values`` with every -1 replaced as ``policy`` says (:func:`uncertain_value`)."""
    replacement = uncertain_value(policy)
    return {k: replacement if v == -1 else v for k, v in values.items()}
