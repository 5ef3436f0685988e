"""SYNTHETIC chest-like radiographs ("phantom studies") for demos and end-to-end learnability tests.

Nothing here is patient data. Each study is a frontal (PA) view and sometimes a lateral view,
written as DICOM with every file marked ``SYNTHETIC PHANTOM`` (SeriesDescription, ImageComments,
StudyDescription). The images are drawn from simple shapes: two dark lungs with vessel-like
markings, a bright mediastinum and heart, ribs, clavicles and diaphragm, noise, and a small random
shift/rotation/scale/contrast per study. Findings over :data:`preprocessing.vocab.PHANTOM_OBSERVATIONS`
are planted independently (prevalence :data:`PREVALENCE` each) at known zones:

- Cardiomegaly: a wider and taller heart (cardiothoracic ratio about 0.6 instead of 0.4), zone cardiac;
- Pleural Effusion: fluid density with a meniscus at one base, blunting the costophrenic angle;
- Lung Lesion: a round, sharply bordered bright nodule or mass in one lung zone;
- Consolidation: a patchy, ill-defined bright area in one lung zone;
- Pneumothorax: a dark band without lung markings at one apex, bounded by a thin pleural line.

Each planted finding gets its zone and a box (the bounding box of its pixels in the written frontal
image). The indication text is drawn mostly independently of the findings (a model cannot read the
answer from it), and the findings text comes from varied templates that state every observation.
The same seed writes identical files byte for byte. See ``docs/data.md``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_encoder
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)
from scipy.ndimage import gaussian_filter
from scipy.special import expit

from multimodal.data.manifest import Box, StudyRecord, write_manifest
from preprocessing.vocab import PHANTOM_OBSERVATIONS, ZONE_BOXES

PREVALENCE = 0.35
LATERAL_PROBABILITY = 0.4
SPLIT_FRACTIONS = (("train", 0.70), ("val", 0.15), ("test", 0.15))
FIELD_OF_VIEW_MM = 400.0
SYNTHETIC = "SYNTHETIC PHANTOM"
# SNOMED CT codes for AnatomicRegionSequence (CID 4031) and ViewCodeSequence (CID 4010).
CHEST_CODE = ("43799004", "SCT", "Chest")
VIEW_CODES = {"PA": ("399348003", "SCT", "postero-anterior"), "LL": ("399173006", "SCT", "left lateral")}

# Written in turn (frontal view of study i gets entry i % len); the compressed ones fall back to
# RLE Lossless, which pydicom encodes itself, when their encoder package is not installed.
TRANSFER_SYNTAXES: tuple[UID, ...] = (
    ExplicitVRLittleEndian,
    RLELossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    DeflatedExplicitVRLittleEndian,
    JPEGLSLossless,
)
_UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)

LUNG_ZONES = ("right_upper", "right_middle", "right_lower", "left_upper", "left_middle", "left_lower")
ZONE_PHRASES = {
    "right_upper": "right upper lobe",
    "right_middle": "right mid lung",
    "right_lower": "right lower lobe",
    "left_upper": "left upper lobe",
    "left_middle": "left mid lung",
    "left_lower": "left lower lobe",
}

# Findings sentences: the first variant is drawn with probability 0.8, the others share the rest.
HEART_NORMAL = ("The heart size is normal.", "The cardiac silhouette is within normal limits.", "Normal heart size.")
HEART_ENLARGED = ("The cardiac silhouette is enlarged.", "The heart is enlarged.", "Cardiomegaly.")
LESION = ("There is a {kind} in the {where}.", "A {kind} is seen in the {where}.")
NO_LESION = ("No pulmonary nodule or mass.", "There is no pulmonary nodule or mass.")
CONSOLIDATION = ("There is consolidation in the {where}.", "Patchy consolidation is present in the {where}.")
NO_CONSOLIDATION = ("No focal consolidation.", "There is no focal consolidation.")
EFFUSION = ("There is a {size} {side} pleural effusion.", "A {size} {side} pleural effusion is present.")
NO_EFFUSION = ("No pleural effusion.", "There is no pleural effusion.")
PNEUMOTHORAX = ("There is a {side} apical pneumothorax.", "A {side} apical pneumothorax is present.")
NO_PNEUMOTHORAX = ("No pneumothorax.", "There is no pneumothorax.")

INDICATIONS = (
    "cough", "shortness of breath", "chest pain", "pre-op", "follow-up", "fall", "hypoxia", "weakness",
    "routine screening", "abdominal pain", "hypertension", "syncope", "cough and fever", "dyspnea",
)
# Complaints that hint at one observation; drawn for positive and negative studies alike, so a
# hint raises the chance of its finding only modestly (about 0.5 instead of 0.35).
HINTS = {
    "Cardiomegaly": "history of heart failure",
    "Pleural Effusion": "dyspnea and leg swelling",
    "Lung Lesion": "weight loss, smoker",
    "Consolidation": "fever and productive cough",
    "Pneumothorax": "sudden pleuritic chest pain",
}
HINT_PROBABILITY = 0.2


@dataclass
class _Planted:
    """One planted finding: its zone, how much of it each canvas pixel holds (float [n, n], its box
    is where this reaches half its peak) and words for the text."""

    zone: str
    weight: np.ndarray
    words: dict[str, str] = field(default_factory=dict)


@dataclass
class _Canvas:
    """Anatomy coordinates of every pixel of an n x n canvas after the study's small random pose.

    ``x``/``y`` are in [0, 1] (x to the image right, y down) in the frame where the anatomy and
    the zones are defined; the pose maps it onto the image, so zones hold up to the pose jitter.
    """

    x: np.ndarray
    y: np.ndarray
    n: int

    @classmethod
    def posed(cls, n: int, rng: np.random.Generator) -> _Canvas:
        v, u = (np.mgrid[0:n, 0:n] + 0.5) / n
        scale = rng.uniform(0.97, 1.03)
        angle = math.radians(rng.uniform(-1.5, 1.5))
        tx, ty = rng.uniform(-0.015, 0.015, size=2)
        du, dv = (u - 0.5 - tx) / scale, (v - 0.5 - ty) / scale
        c, s = math.cos(angle), math.sin(angle)
        return cls(x=0.5 + c * du + s * dv, y=0.5 - s * du + c * dv, n=n)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        """Normalised radius: < 1 inside the ellipse; float32 [n, n]."""
        return np.sqrt(((self.x - cx) / rx) ** 2 + ((self.y - cy) / ry) ** 2).astype(np.float32)

    def soft(self, radius: np.ndarray, edge_px: float = 1.5, size: float = 0.3) -> np.ndarray:
        """Inside-ness in [0, 1] of a normalised-radius map, blurred over about ``edge_px`` pixels."""
        return expit((1.0 - radius) * (size * self.n / edge_px))


def _weighted_choice(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    """The first option with probability 0.8, the others sharing the rest evenly."""
    if len(options) == 1 or rng.random() < 0.8:
        return options[0]
    return options[1 + int(rng.integers(len(options) - 1))]


def _lung_masks(cv: _Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Soft masks (float32 [n, n]) of the right lung (image left) and the left lung (image right)."""
    masks = []
    for side in (-1, 1):
        x = cv.x if side < 0 else 1.0 - cv.x
        lateral, medial = 0.105, 0.43
        t = np.clip((x - lateral) / (medial - lateral), 0.0, 1.0)
        # The hemidiaphragm domes up centrally, leaving a sharp costophrenic angle laterally.
        dome = 0.90 - 0.09 * np.sin(np.pi * (0.15 + 0.75 * t)) + (0.02 if side > 0 else 0.0)
        wall = np.sqrt(((x - 0.27) / 0.165) ** 2 + ((cv.y - 0.55) / 0.50) ** 2)
        below = expit((dome - cv.y) * (cv.n / 1.5))
        masks.append((cv.soft(wall, size=0.165) * below).astype(np.float32))
    return masks[0], masks[1]


def _ribs(cv: _Canvas) -> np.ndarray:
    """Posterior ribs and clavicles as bright curved bands, float32 [n, n] in [0, 1]."""
    lateral = np.abs(cv.x - 0.5)
    spacing, count = 0.085, 9
    # Rib k follows the curve first + spacing * k; the nearest one decides the band intensity.
    offset = (cv.y - (0.12 + 0.9 * (lateral - 0.05) ** 2 - 0.05 * lateral)) / spacing
    nearest = np.clip(np.rint(offset), 0, count - 1)
    ribs = np.clip(1.0 - np.abs(offset - nearest) * spacing / 0.011, 0, 1) * (lateral > 0.04)
    clavicle = 0.10 - 0.12 * (lateral - 0.05)
    clavicles = np.clip(1.0 - np.abs(cv.y - clavicle) / 0.014, 0, 1) * (lateral > 0.03) * (lateral < 0.38)
    return np.maximum(ribs, clavicles).astype(np.float32)


def _place(rng: np.random.Generator, zone: str, margin: float, avoid: np.ndarray | None = None,
           cv: _Canvas | None = None) -> tuple[float, float]:
    """A centre inside ``zone`` at least ``margin`` from its edges (and outside ``avoid`` if given)."""
    x0, y0, x1, y1 = ZONE_BOXES[zone]
    for _ in range(20):
        cx, cy = rng.uniform(x0 + margin, x1 - margin), rng.uniform(y0 + margin, y1 - margin)
        if avoid is None or cv is None:
            break
        i, j = min(int(cy * cv.n), cv.n - 1), min(int(cx * cv.n), cv.n - 1)
        if avoid[i, j] < 0.5:
            break
    return cx, cy


def _draw_frontal(cv: _Canvas, rng: np.random.Generator, present: dict[str, bool]) -> tuple[np.ndarray, dict[str, _Planted]]:
    """A PA chest phantom (float32 [n, n], higher = denser) and the findings planted in it."""
    n = cv.n
    planted: dict[str, _Planted] = {}
    body = cv.soft(cv.ellipse(0.5, 0.58, 0.47, 0.62), size=0.47)
    image = 0.04 + 0.36 * body + 0.12 * body * expit((cv.y - 0.86) * (n / 3.0))
    right_lung, left_lung = _lung_masks(cv)
    lungs = np.maximum(right_lung, left_lung)

    texture = gaussian_filter(rng.standard_normal((n, n)).astype(np.float32), sigma=max(n / 200.0, 0.6))
    texture /= texture.std() + 1e-6
    hilum = np.minimum(cv.ellipse(0.38, 0.45, 0.2, 0.25), cv.ellipse(0.62, 0.45, 0.2, 0.25))
    markings = 0.025 * texture * (0.5 + np.exp(-hilum))
    aerated = lungs.copy()

    if present["Pneumothorax"]:
        side = "right" if rng.random() < 0.5 else "left"
        x = cv.x if side == "right" else 1.0 - cv.x
        gap = rng.uniform(0.10, 0.13)
        # Collapsed lung edge: the lung outline shrunk by `gap` towards the hilum.
        edge = np.sqrt(((x - 0.29) / (0.165 - gap)) ** 2 + ((cv.y - 0.55 - gap) / (0.50 - gap)) ** 2)
        lung = right_lung if side == "right" else left_lung
        apex = expit((0.33 - cv.y) * (n / 2.0))
        space = lung * (edge > 1.0) * apex
        aerated = aerated * (1.0 - space)
        line = np.clip(1.0 - np.abs(edge - 1.0) * (0.165 - gap) * n / 1.0, 0, 1) * apex * lung
        image = image + 0.35 * line
        planted["Pneumothorax"] = _Planted(f"{side}_upper", space, {"side": side})

    image = image * (1.0 - lungs) + (0.13 + markings * aerated) * lungs
    image = image - 0.16 * (lungs - aerated)
    # Trachea (air column) over a bright mediastinum.
    mediastinum = cv.soft(cv.ellipse(0.5, 0.30, 0.075, 0.32), size=0.075)
    image = np.maximum(image, 0.62 * mediastinum)
    image = image - 0.25 * cv.soft(cv.ellipse(0.5, 0.18, 0.015, 0.17), size=0.015) * mediastinum

    enlarged = present["Cardiomegaly"]
    rx = rng.uniform(0.22, 0.25) if enlarged else rng.uniform(0.15, 0.17)
    ry = rng.uniform(0.15, 0.17) if enlarged else rng.uniform(0.12, 0.13)
    cx, cy = 0.53 + 0.5 * (rx - 0.16), 0.72
    heart = cv.soft(cv.ellipse(cx, cy, rx, ry), size=rx)
    image = np.maximum(image, 0.66 * heart + image * (1 - heart))
    if enlarged:
        planted["Cardiomegaly"] = _Planted("cardiac", heart)

    if present["Pleural Effusion"]:
        side = "right" if rng.random() < 0.5 else "left"
        size = "small" if rng.random() < 0.5 else "moderate"
        x = cv.x if side == "right" else 1.0 - cv.x
        level, rise = (0.76, 0.08) if size == "small" else (0.69, 0.10)
        t = np.clip((x - 0.105) / (0.43 - 0.105), 0.0, 1.0)
        meniscus = level + 0.03 * (side == "left") - rise * (1.0 - t) ** 2
        lung = right_lung if side == "right" else left_lung
        fluid = lung * expit((cv.y - meniscus) * (n / 2.0))
        image = image * (1.0 - fluid) + 0.58 * fluid
        planted["Pleural Effusion"] = _Planted(f"{side}_lower", fluid, {"side": side, "size": size})

    lesion_zone = None
    if present["Lung Lesion"]:
        lesion_zone = LUNG_ZONES[int(rng.integers(len(LUNG_ZONES)))]
        radius = rng.uniform(0.035, 0.06)
        lx, ly = _place(rng, lesion_zone, 0.045 + radius, avoid=heart, cv=cv)
        blob = cv.soft(cv.ellipse(lx, ly, radius, radius), edge_px=0.8, size=radius)
        image = image + 0.50 * blob
        kind = "nodule" if radius < 0.047 else "mass"
        planted["Lung Lesion"] = _Planted(lesion_zone, blob, {"kind": kind, "where": ZONE_PHRASES[lesion_zone]})

    if present["Consolidation"]:
        zones = [z for z in LUNG_ZONES if z != lesion_zone]
        zone = zones[int(rng.integers(len(zones)))]
        ox, oy = _place(rng, zone, 0.09, avoid=heart, cv=cv)
        patch = np.zeros((n, n), np.float32)
        for _ in range(5):
            px, py = ox + rng.normal(0, 0.03), oy + rng.normal(0, 0.025)
            r = rng.uniform(0.03, 0.05)
            patch = np.maximum(patch, np.exp(-(((cv.x - px) ** 2 + (cv.y - py) ** 2) / (2 * r * r))))
        mottle = 0.75 + 0.25 * gaussian_filter(rng.random((n, n)).astype(np.float32), sigma=max(n / 128, 0.6))
        opacity = np.clip(1.6 * patch - 0.3, 0, 1) * mottle * lungs
        image = image + 0.35 * opacity
        planted["Consolidation"] = _Planted(zone, opacity, {"where": ZONE_PHRASES[zone]})

    image = image + 0.10 * _ribs(cv) * body
    return image.astype(np.float32), planted


def _draw_lateral(cv: _Canvas, rng: np.random.Generator, planted: dict[str, _Planted]) -> np.ndarray:
    """A lateral phantom (anterior on the image left) showing the heart, fluid and lung opacities."""
    n = cv.n
    body = cv.soft(cv.ellipse(0.5, 0.58, 0.42, 0.62), size=0.42)
    image = 0.04 + 0.38 * body
    wall = cv.ellipse(0.52, 0.52, 0.30, 0.45)
    dome = 0.86 - 0.07 * np.sin(np.pi * np.clip((cv.x - 0.22) / 0.6, 0, 1))
    lung = cv.soft(wall, size=0.3) * expit((dome - cv.y) * (n / 1.5))
    texture = gaussian_filter(rng.standard_normal((n, n)).astype(np.float32), sigma=max(n / 200.0, 0.6))
    image = image * (1 - lung) + (0.15 + 0.03 * texture / (texture.std() + 1e-6)) * lung
    enlarged = "Cardiomegaly" in planted
    heart = cv.soft(cv.ellipse(0.36, 0.68, 0.19 if enlarged else 0.14, 0.18 if enlarged else 0.15), size=0.14)
    image = np.maximum(image, 0.64 * heart + image * (1 - heart))
    image = np.maximum(image, 0.70 * cv.soft(cv.ellipse(0.84, 0.55, 0.04, 0.5), size=0.04))
    if "Pleural Effusion" in planted:
        fluid = lung * expit((cv.x - 0.55) * (n / 2.0)) * expit((cv.y - 0.74 + 0.15 * (cv.x - 0.55)) * (n / 2.0))
        image = image * (1 - fluid) + 0.58 * fluid
    heights = {"upper": 0.28, "middle": 0.48, "lower": 0.68}
    for label, strength in (("Lung Lesion", 0.4), ("Consolidation", 0.3)):
        if label in planted:
            y = heights[planted[label].zone.split("_")[1]] + rng.uniform(-0.04, 0.04)
            r = 0.04 if label == "Lung Lesion" else 0.07
            image = image + strength * cv.soft(cv.ellipse(rng.uniform(0.5, 0.7), y, r, r), size=r) * lung
    return image.astype(np.float32)


def _findings_text(rng: np.random.Generator, planted: dict[str, _Planted]) -> str:
    """Findings sentences in a fixed order (heart, lesion, consolidation, effusion, pneumothorax)."""
    def say(label: str, positive: tuple[str, ...], negative: tuple[str, ...]) -> str:
        if label in planted:
            return _weighted_choice(rng, positive).format(**planted[label].words)
        return _weighted_choice(rng, negative)

    return " ".join([
        say("Cardiomegaly", HEART_ENLARGED, HEART_NORMAL),
        say("Lung Lesion", LESION, NO_LESION),
        say("Consolidation", CONSOLIDATION, NO_CONSOLIDATION),
        say("Pleural Effusion", EFFUSION, NO_EFFUSION),
        say("Pneumothorax", PNEUMOTHORAX, NO_PNEUMOTHORAX),
    ])


def _indication(rng: np.random.Generator, present: dict[str, bool], age: int, sex: str) -> str:
    """Indication text: a complaint drawn almost independently of the findings (see HINTS)."""
    if rng.random() < HINT_PROBABILITY:
        weights = np.array([2.0 if present[o] else 1.0 for o in PHANTOM_OBSERVATIONS])
        complaint = HINTS[PHANTOM_OBSERVATIONS[int(rng.choice(len(weights), p=weights / weights.sum()))]]
    else:
        complaint = INDICATIONS[int(rng.integers(len(INDICATIONS)))]
    if rng.random() < 0.5:
        return f"{age}-year-old {'man' if sex == 'M' else 'woman'} with {complaint}."
    return complaint[0].upper() + complaint[1:] + "."


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _encodable(syntax: UID) -> UID:
    if syntax in _UNCOMPRESSED or get_encoder(syntax).is_available:
        return syntax
    return RLELossless


def _to_stored(image: np.ndarray, rng: np.random.Generator, bits: int, monochrome1: bool) -> np.ndarray:
    """Noise, contrast jitter and quantisation to ``bits``; MONOCHROME1 stores inverted values."""
    noisy = image + rng.normal(0.0, rng.uniform(0.008, 0.018), image.shape).astype(np.float32)
    gamma, gain, offset = rng.uniform(0.85, 1.2), rng.uniform(0.9, 1.1), rng.uniform(-0.03, 0.03)
    shown = np.clip(gain * np.clip(noisy, 0, 1) ** gamma + offset, 0.0, 1.0)
    top = (1 << bits) - 1
    stored = np.rint(shown * top).astype(np.uint16)
    return (top - stored).astype(np.uint16) if monochrome1 else stored


def _dicom(pixels: np.ndarray, *, syntax: UID, modality: str, view: str, bits: int, monochrome1: bool,
           windowed: bool, uids: dict[str, str], patient: dict[str, str], number: int, size: int) -> Dataset:
    """A DX/CR instance holding ``pixels`` (uint16 [rows, cols]) in ``syntax``."""
    sop_class = DigitalXRayImageStorageForPresentation if modality == "DX" else ComputedRadiographyImageStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uids["sop"]
    meta.TransferSyntaxUID = syntax if syntax in _UNCOMPRESSED else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, uids["sop"]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.PatientName, ds.PatientID = patient["name"], patient["id"]
    ds.PatientSex, ds.PatientAge, ds.PatientBirthDate = patient["sex"], patient["age"], ""
    ds.StudyDate, ds.SeriesDate, ds.ContentDate = patient["date"], patient["date"], patient["date"]
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "090000"
    ds.AccessionNumber, ds.StudyID, ds.ReferringPhysicianName = patient["accession"], patient["accession"][-8:], ""
    ds.StudyDescription = f"{SYNTHETIC} CHEST"
    ds.SeriesDescription = f"{SYNTHETIC} {view}"
    ds.ImageComments = f"{SYNTHETIC}: generated by mmdx, not patient data"
    ds.Manufacturer, ds.InstitutionName = "mmdx phantom", "SYNTHETIC"
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = modality, "CHEST", view
    ds.SeriesNumber, ds.InstanceNumber = number, 1
    # Display orientation as written: PA with the patient's right on the image left; lateral with
    # anterior on the image left.
    ds.PatientOrientation = ["L", "F"] if view == "PA" else ["P", "F"]
    ds.AnatomicRegionSequence = [_code(*CHEST_CODE)]
    ds.BurnedInAnnotation, ds.LossyImageCompression = "NO", "00"
    if modality == "DX":
        ds.ViewCodeSequence = [_code(*VIEW_CODES[view])]
        # Type 1/2 attributes of the DX Image, DX Anatomy Imaged, DX Detector and DX Positioning modules.
        ds.PresentationIntentType, ds.ImageType = "FOR PRESENTATION", ["ORIGINAL", "PRIMARY"]
        ds.ImagerPixelSpacing = [FIELD_OF_VIEW_MM / size] * 2
        ds.ImageLaterality, ds.DetectorType, ds.PositionerType = "U", "", ""
        ds.AcquisitionContextSequence = []
        # Stored values rise with attenuation (MONOCHROME2) or fall with it (MONOCHROME1).
        ds.PixelIntensityRelationship = "LIN"
        ds.PixelIntensityRelationshipSign = 1 if monochrome1 else -1
        ds.PresentationLUTShape = "INVERSE" if monochrome1 else "IDENTITY"
    ds.PixelSpacing = [round(FIELD_OF_VIEW_MM / size, 6)] * 2
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    # DX "for presentation" must carry a VOI window; CR studies exercise the window-less path.
    if windowed or modality == "DX":
        top = (1 << bits) - 1
        ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = round(top / 2 + 0.5, 1), top + 1, "LINEAR"
    if syntax in _UNCOMPRESSED:
        ds.PixelData = pixels.tobytes()
    else:
        ds.compress(syntax, pixels, generate_instance_uid=False)
    return ds


def write_phantom_dataset(out: str | Path, studies: int = 200, seed: int = 0, size: int = 256) -> Path:
    """Write ``studies`` SYNTHETIC phantom studies as DICOM under ``out`` and return the manifest path.

    Layout: ``out/dicom/<study_id>/{PA,LL}.dcm`` and ``out/manifest.jsonl`` (labels over
    :data:`preprocessing.vocab.PHANTOM_OBSERVATIONS`, zones, boxes in pixels of the written
    frontal image, indication ``text``, ``findings`` and a 70/15/15 train/val/test ``split``).
    Frontal images are ``size`` rows by 86-100 % of ``size`` columns (so letterboxing is exercised);
    the anatomy is laid out so that, once letterboxed to a square, each finding lies in its zone of
    :data:`preprocessing.vocab.ZONE_BOXES`. The same ``seed`` gives identical files.
    """
    if studies < 1 or size < 40:  # smaller images do not fit the JPEG 2000 encoder's resolution levels
        raise ValueError(f"need studies >= 1 and size >= 40, got studies={studies}, size={size}")
    out = Path(out)
    splits = np.empty(studies, dtype=object)
    order = np.random.default_rng([seed, 7]).permutation(studies)
    start = 0
    for name, fraction in SPLIT_FRACTIONS:
        stop = studies if name == SPLIT_FRACTIONS[-1][0] else start + int(round(fraction * studies))
        splits[order[start:stop]] = name
        start = stop
    records = [_write_study(out, i, seed, size, str(splits[i])) for i in range(studies)]
    return write_manifest(records, out / "manifest.jsonl")


def _uid(seed: int, index: int, *parts: str) -> str:
    """A UUID-derived UID (root 2.25, PS3.5 B.2) hashed from the seed, the study and ``parts``,
    so reruns give the same UIDs."""
    digest = hashlib.sha256("|".join(["mmdx-phantom", str(seed), str(index), *parts]).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def _write_study(out: Path, index: int, seed: int, size: int, split: str) -> StudyRecord:
    rng = np.random.default_rng([seed, index])
    study_id = f"phantom-{seed}-{index:05d}"
    present = {o: bool(rng.random() < PREVALENCE) for o in PHANTOM_OBSERVATIONS}
    age, sex = int(rng.integers(25, 90)), "M" if rng.random() < 0.5 else "F"
    patient = {
        "name": f"PHANTOM^{index + 1:04d}", "id": f"PHANTOM-{seed}-{index + 1:05d}", "sex": sex,
        "age": f"{age:03d}Y", "date": f"2024{1 + index % 12:02d}{1 + index % 28:02d}",
        "accession": f"PH{seed % 1000:03d}{index:07d}",
    }
    modality = "DX" if rng.random() < 0.5 else "CR"
    monochrome1, bits = bool(rng.random() < 0.5), int(rng.choice([10, 12, 14, 16]))
    width = size - 2 * int(rng.integers(0, int(0.07 * size) + 1))
    crop = (size - width) // 2

    frontal, planted = _draw_frontal(_Canvas.posed(size, rng), rng, present)
    views = {"PA": frontal}
    if rng.random() < LATERAL_PROBABILITY:
        views["LL"] = _draw_lateral(_Canvas.posed(size, rng), rng, planted)

    folder = out / "dicom" / study_id
    folder.mkdir(parents=True, exist_ok=True)
    images, syntaxes = [], []
    for number, (view, image) in enumerate(views.items(), start=1):
        syntax = _encodable(TRANSFER_SYNTAXES[(index + 3 * (number - 1)) % len(TRANSFER_SYNTAXES)])
        pixels = _to_stored(image[:, crop:crop + width], rng, bits, monochrome1)
        ds = _dicom(pixels, syntax=syntax, modality=modality, view=view, bits=bits, monochrome1=monochrome1,
                    windowed=index % 3 != 2, uids={"study": _uid(seed, index, "study"), "series": _uid(seed, index, "series", view),
                                                   "sop": _uid(seed, index, "sop", view)},
                    patient=patient, number=number, size=size)
        path = folder / f"{view}.dcm"
        ds.save_as(path, enforce_file_format=True)
        images.append(str(path))
        syntaxes.append(str(syntax))

    boxes = []
    for label, finding in planted.items():
        weight = finding.weight[:, crop:crop + width]
        rows, cols = np.nonzero(weight >= 0.5 * weight.max())
        x0, y0 = int(cols.min()), int(rows.min())
        boxes.append(Box(label=label, xywh=(x0, y0, int(cols.max()) - x0 + 1, int(rows.max()) - y0 + 1)))
    return StudyRecord(
        study_id=study_id, images=images, views=list(views), split=split, patient_id=patient["id"],
        text=_indication(rng, present, age, sex), findings=_findings_text(rng, planted),
        labels={o: int(present[o]) for o in PHANTOM_OBSERVATIONS},
        regions={label: [finding.zone] for label, finding in planted.items()}, boxes=boxes,
        meta={"synthetic": True, "modality": modality, "bits_stored": bits,
              "photometric": "MONOCHROME1" if monochrome1 else "MONOCHROME2", "transfer_syntaxes": syntaxes,
              "details": {label: finding.words for label, finding in planted.items() if finding.words}},
    )
