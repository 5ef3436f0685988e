"""DICOM (and, by dispatch, PNG/JPEG) files to :class:`~preprocessing.radiograph.Radiograph`.

Pixel pipeline for one DICOM image, in this order:

0. Bounds (:func:`check_pixel_budget`), before any decoder allocates: Rows x Columns and the
   codestream's own size at most ``MAX_FRAME_PIXELS``; uncompressed pixel data long enough for
   every frame the header claims; RLE data able to hold the claimed size (64:1 at most).
1. Decode the **first frame** only (multi-frame files: later frames are ignored, and
   ``Radiograph.number_of_frames`` says how many there were). With ``target_size``, JPEG 2000 files
   are decoded at a lower resolution level (the codestream's wavelet ``reduce``, through
   :mod:`preprocessing.openjpeg`) so that the short side (``fit="long"``: the long side) stays
   >= ``REDUCE_SLACK * target_size``; a file with fewer levels, a colour codestream, or a codec
   error falls back to a full decode. Other transfer syntaxes decode fully.
2. Colour (RGB, YBR_*) becomes gray with ITU-R BT.601 luma weights and is scaled by its bit depth.
3. Shrink (area interpolation) so the short side (``fit="long"``: the long side) equals
   ``target_size`` when it is larger. ``fit="long"`` suits a consumer that letterboxes (scales the
   long side to the model's size, as inference does): a reduced level then only has to cover the
   long side, and for elongated images that is often one level coarser (4x fewer pixels to decode).
4. Modality LUT: Modality LUT Sequence if present, else Rescale Slope/Intercept.
5. VOI: the VOI LUT Sequence (first LUT) if present, else the first Window Center/Width pair with
   VOILUTFunction LINEAR (default), LINEAR_EXACT or SIGMOID; otherwise, or when the window is
   invalid (width <= 0), a **robust percentile window**: 0.5 % to 99.5 % of the non-padding pixels.
6. MONOCHROME1 (or Presentation LUT Shape INVERSE) is inverted so that higher = brighter = denser.
7. Pixels whose stored value is the Pixel Padding Value (up to Pixel Padding Range Limit) become 0.
8. Display orientation from Patient Orientation (0020,0020): if the row direction points to the
   patient's right (``R``), flip left-right so the patient's right is on the image left; if the
   column direction points to the head (``H``), flip up-down. Laterals (rows ``A``/``P``) are not
   flipped left-right. Without Patient Orientation nothing is flipped.

Modality policy: only projection radiography is accepted (``ACCEPTED_MODALITIES``: CR, DX, DR, RG,
XA, OT and a missing/empty Modality); anything else (CT, MR, US, ...) raises
:class:`~preprocessing.errors.UnsupportedImageError` unless ``check_modality=False``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLELossless,
)

from preprocessing import openjpeg
from preprocessing.errors import CodecMissingError, DicomReadError, ImageReadError, UnsupportedImageError
from preprocessing.radiograph import FITS, Radiograph, shrink_to_target

ACCEPTED_MODALITIES = frozenset({"CR", "DX", "DR", "RG", "XA", "OT", ""})
# A JPEG 2000 level may fall this far below the target side: the resize then upsamples by <= 5 %
# (no visible loss of detail), and sizes just under a power-of-two fraction of the image (1760 px
# at 224: 220 px at 1/8) decode one level coarser, 2.5-4x faster.
REDUCE_SLACK = 0.95
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")
PERCENTILE_WINDOW = (0.5, 99.5)
# The largest frame decoded (8192 x 8192, twice a detector's 4300 x 3500 in each direction): at
# 32 bits per sample and the float copies of the pipeline it stays well under 2 GB per process.
MAX_FRAME_PIXELS = 8192 * 8192
# JPEG start-of-frame markers (SOF0-3, 5-7, 9-11, 13-15) and JPEG-LS SOF55.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7})
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float / Double Float Pixel Data
# CharLS (pyjpegls) decodes JPEG-LS ~3x faster than libjpeg (RG2_JLSL.dcm: 72 vs 232 ms CPU);
# pydicom would otherwise pick its first-registered plugin.
_PREFERRED_PLUGIN = {syntax: "pyjpegls" for syntax in JPEGLSTransferSyntaxes}
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


def read_radiograph(
    src: str | os.PathLike[str] | Dataset, target_size: int | None = None, *, fit: str = "short",
    check_modality: bool = True,
) -> Radiograph:
    """Read one image file (DICOM, or PNG/JPEG/TIFF by content) or a pydicom Dataset.

    ``target_size`` (px): the image will be used at this size, so the pixels may be returned with
    their short side (``fit="long"``: long side) shrunk to ``target_size`` (never enlarged); JPEG
    2000 then decodes fewer resolution levels. Raises :class:`~preprocessing.errors.ImageReadError` subclasses naming the
    file and the cause; never another exception for a bad file.
    """
    if target_size is not None and target_size < 1:
        raise ValueError(f"target_size must be a positive number of pixels, got {target_size}")
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    if isinstance(src, Dataset):
        filename = getattr(src, "filename", None)
        path = filename if isinstance(filename, str) else None
        where = path or f"<dataset {src.get('SOPInstanceUID', '?')}>"
    else:
        path = where = str(src)
        if not Path(path).is_file():
            raise ImageReadError(path, "no such file" if not Path(path).exists() else "not a regular file")
        if Path(path).stat().st_size == 0:
            raise ImageReadError(path, "empty file (0 bytes)")
    try:
        if isinstance(src, Dataset):
            return _radiograph_from_dataset(src, path, where, target_size, fit, check_modality)
        if _looks_like_plain_image(Path(path)):
            from preprocessing.image_io import read_image

            return read_image(path, target_size, fit=fit)
        return _radiograph_from_dataset(read_dicom_dataset(path), path, where, target_size, fit, check_modality)
    except ImageReadError:
        raise
    except OSError as err:
        raise ImageReadError(where, f"cannot read the file: {err.strerror or err}") from err
    except Exception as err:  # a header value of the wrong type, etc.: still name the file and cause
        raise DicomReadError(where, f"could not be processed: {type(err).__name__}: {err}") from err


def read_dicom_dataset(path: str | os.PathLike[str]) -> Dataset:
    """``pydicom.dcmread`` with the project's errors; files without a preamble/file meta are read too."""
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        pass  # no preamble or file meta: try again without the check
    except Exception as err:  # pydicom raises many types on corrupt input
        raise DicomReadError(path, _read_failure(err)) from err
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as err:
        raise DicomReadError(path, f"not a DICOM file ({_read_failure(err)})") from err
    if not any(tag in ds for tag in (*_PIXEL_DATA_TAGS, 0x00080016, 0x00080060, 0x00280010)):
        raise DicomReadError(path, "not a DICOM file (no DICOM preamble and no recognisable DICOM elements)")
    return ds


def _read_failure(err: Exception) -> str:
    if isinstance(err, EOFError) or "truncat" in str(err).lower() or "bytes" in str(err).lower():
        return f"truncated file ({err})"
    return f"pydicom could not parse it: {type(err).__name__}: {err}"


def _looks_like_plain_image(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(132)
    if head[128:132] == b"DICM":
        return False
    return head.startswith(_IMAGE_MAGIC) or path.suffix.lower() in _IMAGE_SUFFIXES


# ---------------------------------------------------------------------------------------------
# Dataset -> Radiograph


def _radiograph_from_dataset(ds: Dataset, path: str | None, where: str, target_size: int | None, fit: str,
                             check_modality: bool) -> Radiograph:
    if not any(tag in ds for tag in _PIXEL_DATA_TAGS):
        raise DicomReadError(where, "no pixel data (this DICOM object holds no image)")
    modality = str(ds.get("Modality", "") or "").upper()
    if check_modality and modality not in ACCEPTED_MODALITIES:
        accepted = ", ".join(sorted(m for m in ACCEPTED_MODALITIES if m))
        raise UnsupportedImageError(
            where, f"modality {modality!r} is not a projection radiograph (accepted: {accepted} or none)")
    photometric = str(ds.get("PhotometricInterpretation", "") or "").upper()
    if photometric not in MONOCHROME + COLOUR:
        raise UnsupportedImageError(
            where, f"photometric interpretation {photometric or 'missing'!r} is not supported "
                   f"(supported: {', '.join(MONOCHROME + COLOUR)})")
    _check_image_module(ds, where)
    syntax = _transfer_syntax(ds, where)
    check_pixel_budget(ds, syntax, where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about fixable quirks; errors still raise
            stored, photometric, reduction = _decode_first_frame(ds, syntax, photometric, target_size, fit, where)
    except ImageReadError:
        raise
    except Exception as err:
        raise DicomReadError(where, _decode_failure(err, syntax)) from err
    decoded_shape = (int(stored.shape[0]), int(stored.shape[1]))

    if photometric in MONOCHROME:
        values, window, source = _grayscale_to_unit(stored, ds, photometric, target_size, fit)
    else:
        values = shrink_to_target(stored.astype(np.float32) @ _LUMA, target_size, fit)
        values /= float(2 ** min(int(ds.get("BitsStored", 8) or 8), 32) - 1)
        window, source = None, "bit_depth"
    flips = _display_flips(ds)
    if flips[0]:
        values = values[:, ::-1]
    if flips[1]:
        values = values[::-1, :]
    return Radiograph(
        pixels=np.ascontiguousarray(np.clip(values, 0.0, 1.0), dtype=np.float32),
        path=path,
        study_uid=_str_or_none(ds.get("StudyInstanceUID")),
        series_uid=_str_or_none(ds.get("SeriesInstanceUID")),
        sop_uid=_str_or_none(ds.get("SOPInstanceUID")),
        patient_id=_str_or_none(ds.get("PatientID")),
        accession_number=_str_or_none(ds.get("AccessionNumber")),
        modality=modality or None,
        view_position=_str_or_none(ds.get("ViewPosition")),
        laterality=_str_or_none(ds.get("ImageLaterality") or ds.get("Laterality")),
        pixel_spacing=_pixel_spacing(ds),
        photometric=str(ds.PhotometricInterpretation),
        bits_stored=int(ds.get("BitsStored") or ds.BitsAllocated),
        transfer_syntax=str(syntax),
        original_shape=(int(ds.Rows), int(ds.Columns)),
        decoded_shape=decoded_shape,
        decode_reduction=reduction,
        number_of_frames=int(ds.get("NumberOfFrames") or 1),
        window=window,
        voi_source=source,
        flips=flips,
        dataset=_header_only(ds),
    )


def _check_image_module(ds: Dataset, where: str) -> None:
    for key in ("Rows", "Columns", "BitsAllocated", "NumberOfFrames"):
        value = ds.get(key)
        if value is None and key == "NumberOfFrames":
            continue
        try:
            valid = int(value) > 0
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise DicomReadError(where, f"invalid or missing {key} in the image pixel module: {value!r}")


def check_pixel_budget(ds: Dataset, syntax: UID, where: str) -> None:
    """Refuse, before any decoder allocates, an image whose size claims do not hold up.

    Rows x Columns (and the codestream's own size, for JPEG, JPEG-LS and JPEG 2000) must stay
    within ``MAX_FRAME_PIXELS``; uncompressed pixel data must hold every frame the header claims;
    RLE data cannot expand more than 64-fold (a two-byte run codes at most 128 bytes), so a
    636-byte file cannot be a 65535 x 65535 image. Raises DicomReadError with the numbers.
    """
    rows, cols = int(ds.Rows), int(ds.Columns)
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.BitsAllocated)
    if bits not in (1, 8, 16, 32, 64):
        raise DicomReadError(where, f"BitsAllocated {bits} is not 1, 8, 16, 32 or 64")
    if rows * cols > MAX_FRAME_PIXELS:
        raise DicomReadError(where, f"the header claims {rows} x {cols} pixels per frame, more than the "
                                    f"{MAX_FRAME_PIXELS:,} this reader accepts (a corrupt or hostile header)")
    data = next((ds[tag].value for tag in _PIXEL_DATA_TAGS if tag in ds), None)
    size = len(data) if isinstance(data, (bytes, bytearray)) else None
    if size is None:
        return
    if not syntax.is_encapsulated:
        if str(ds.get("PhotometricInterpretation", "")).upper() == "YBR_FULL_422":
            samples = 2  # chroma shared by two pixels: 2 values per pixel on average
        need = -(-rows * cols * samples * frames * bits // 8)
        if size < need:
            raise DicomReadError(where, f"truncated pixel data: {rows} x {cols} x {samples} samples x {frames} "
                                        f"frames at {bits} bits need {need:,} bytes, the file holds {size:,}")
        return
    if syntax == RLELossless and rows * cols * samples * -(-bits // 8) > 64 * size:
        raise DicomReadError(where, f"the header claims {rows} x {cols} pixels, more than {size:,} bytes of RLE "
                                    f"data can hold (at most 64 bytes per byte)")
    codestream_size = _codestream_size(_first_fragment(data))
    if codestream_size is not None and codestream_size[0] * codestream_size[1] > MAX_FRAME_PIXELS:
        raise DicomReadError(where, f"the {syntax.name} codestream claims {codestream_size[0]} x "
                                    f"{codestream_size[1]} pixels, more than the {MAX_FRAME_PIXELS:,} this "
                                    f"reader accepts")


def _first_fragment(data: bytes) -> bytes:
    """The first fragment of encapsulated pixel data (after the Basic Offset Table), or b""."""
    item = b"\xfe\xff\x00\xe0"
    if data[:4] != item:
        return b""
    start = 8 + int.from_bytes(data[4:8], "little")
    if data[start:start + 4] != item:
        return b""
    return data[start + 8:start + 8 + int.from_bytes(data[start + 4:start + 8], "little")]


def _codestream_size(fragment: bytes) -> tuple[int, int] | None:
    """(rows, columns) a JPEG 2000, JPEG or JPEG-LS codestream declares in its own header, or None."""
    if fragment[:4] == b"\xff\x4f\xff\x51" and len(fragment) >= 24:  # J2K SIZ: Xsiz, Ysiz, XOsiz, YOsiz
        x, y, x0, y0 = (int.from_bytes(fragment[k:k + 4], "big") for k in (8, 12, 16, 20))
        return max(0, y - y0), max(0, x - x0)
    if fragment[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 9 <= len(fragment) and fragment[pos] == 0xFF:
        marker = fragment[pos + 1]
        if marker in _JPEG_SOF:  # Lf(2) P(1) Y(2) X(2)
            return int.from_bytes(fragment[pos + 5:pos + 7], "big"), int.from_bytes(fragment[pos + 7:pos + 9], "big")
        if marker == 0xDA:  # start of scan: no frame header before it
            return None
        pos += 2 + int.from_bytes(fragment[pos + 2:pos + 4], "big")
    return None


def _str_or_none(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    try:
        return (float(spacing[0]), float(spacing[1])) if spacing and len(spacing) == 2 else None
    except (TypeError, ValueError):
        return None


def _header_only(ds: Dataset) -> Dataset:
    """A new Dataset with every element but the pixel data (for SR writers: patient/study context)."""
    # items() yields the still-raw elements: iterating the Dataset would convert every value (~5 ms)
    header = Dataset({tag: elem for tag, elem in ds.items() if tag not in _PIXEL_DATA_TAGS})
    if hasattr(ds, "file_meta"):
        header.file_meta = FileMetaDataset(ds.file_meta)
    return header


def _transfer_syntax(ds: Dataset, where: str) -> UID:
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax:
        return UID(syntax)
    # No file meta (e.g. a raw dataset dump): the encoding pydicom read it with tells the syntax.
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        implicit, little = ds.is_implicit_VR, ds.is_little_endian
    if implicit is None or little is None:
        raise DicomReadError(where, "no Transfer Syntax UID and the encoding is unknown")
    if implicit:
        syntax = ImplicitVRLittleEndian
    else:
        syntax = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    if not hasattr(ds, "file_meta"):
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    return syntax


# ---------------------------------------------------------------------------------------------
# Decoding


def codec_package(syntax: UID) -> str:
    """The pip packages that add a decoder for ``syntax`` (for error messages)."""
    if syntax in (JPEG2000, JPEG2000Lossless) or "4.20" in syntax:  # 1.2.840.10008.1.2.4.20x: HTJ2K
        return "pylibjpeg pylibjpeg-openjpeg"
    if syntax in JPEGLSTransferSyntaxes:
        return "pylibjpeg pylibjpeg-libjpeg (or pyjpegls)"
    if syntax in JPEGTransferSyntaxes:
        return "pylibjpeg pylibjpeg-libjpeg"
    if syntax == RLELossless:
        return "pylibjpeg pylibjpeg-rle"
    return "python-gdcm"


def _decode_first_frame(ds: Dataset, syntax: UID, photometric: str, target_size: int | None, fit: str,
                        where: str) -> tuple[np.ndarray, str, int]:
    """Stored values of frame 0 (``[H, W]`` or ``[H, W, 3]``), photometric after decoding, reduction."""
    if target_size and syntax in (JPEG2000, JPEG2000Lossless) and photometric in MONOCHROME:
        reduced = _decode_j2k_reduced(ds, target_size, fit)
        if reduced is not None:
            return reduced[0], photometric, reduced[1]
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as err:
        raise UnsupportedImageError(where, f"transfer syntax {syntax.name} ({syntax}) has no pixel "
                                           f"decoder in pydicom") from err
    if not decoder.is_available:
        raise CodecMissingError(where, f"transfer syntax {syntax.name} ({syntax}) needs a decoder that is "
                                       f"not installed: pip install {codec_package(syntax)}")
    plugin = _PREFERRED_PLUGIN.get(syntax, "")
    try:
        array, meta = decoder.as_array(ds, index=0, decoding_plugin=plugin if plugin in decoder.available_plugins else "")
    except Exception:
        if not plugin:
            raise
        array, meta = decoder.as_array(ds, index=0)  # let every installed plugin try
    if array.ndim == 3 and array.shape[-1] != 3:
        raise UnsupportedImageError(where, f"{array.shape[-1]} samples per pixel (expected 1 or 3)")
    return array, str(meta.get("photometric_interpretation", photometric)), 0


def _decode_failure(err: Exception, syntax: UID) -> str:
    text = str(err)
    if "less than expected" in text or "truncat" in text.lower() or isinstance(err, EOFError):
        return f"truncated pixel data ({text})"
    return f"could not decode the {syntax.name} pixel data: {type(err).__name__}: {text}"


def _decode_j2k_reduced(ds: Dataset, target_size: int, fit: str) -> tuple[np.ndarray, int] | None:
    """Decode JPEG 2000 frame 0 at the coarsest resolution level keeping the short (``fit="long"``:
    long) side >= ``REDUCE_SLACK * target_size``.

    Returns ``(stored values [h, w], levels skipped)`` or None when a full decode is needed
    (no level to skip, a colour codestream, no libopenjp2, or OpenJPEG fails at that level).
    """
    codestream = next(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1)))
    header = _j2k_header(codestream)
    if header is None or header[0] != 1 or not openjpeg.available():
        return None
    levels = header[1]
    rows, cols = int(ds.Rows), int(ds.Columns)
    side = min(rows, cols) if fit == "short" else max(rows, cols)
    reduce = 0
    while reduce < levels and -(-side // 2 ** (reduce + 1)) >= REDUCE_SLACK * target_size:
        reduce += 1
    if reduce == 0:
        return None
    try:
        samples, _ = openjpeg.decode(codestream, reduce)
    except openjpeg.OpenJPEGError:
        return None
    if samples.shape != (-(-rows // 2**reduce), -(-cols // 2**reduce)):
        return None
    return samples, reduce


def _j2k_header(codestream: bytes) -> tuple[int, int] | None:
    """(components, decomposition levels) from a J2K main header, or None."""
    if codestream[:4] != b"\xff\x4f\xff\x51" or len(codestream) < 42:
        return None
    components = int.from_bytes(codestream[40:42], "big")
    pos = 4 + int.from_bytes(codestream[4:6], "big")  # first marker after SIZ
    while pos + 4 <= len(codestream):
        marker = codestream[pos:pos + 2]
        if marker == b"\xff\x52":  # COD: Lcod(2) Scod(1) SGcod(4) then SPcod's level count
            return components, codestream[pos + 9]
        if marker == b"\xff\x90":  # start of the first tile: COD must have come before
            return None
        pos += 2 + int.from_bytes(codestream[pos + 2:pos + 4], "big")
    return None


# ---------------------------------------------------------------------------------------------
# Intensity: modality LUT, VOI, inversion, padding


def _grayscale_to_unit(stored: np.ndarray, ds: Dataset, photometric: str, target_size: int | None, fit: str
                       ) -> tuple[np.ndarray, tuple[float, float] | None, str]:
    """Stored values ``[H, W]`` -> (display values in [0, 1] ``[h, w]``, window, voi source)."""
    padding = _padding_mask(stored, ds)
    values = shrink_to_target(stored.astype(np.float32), target_size, fit)
    if padding is not None:
        padding = shrink_to_target(padding.astype(np.float32), target_size, fit) > 0.5
        if not padding.any():
            padding = None
    values = _modality_lut(values, ds)

    window: tuple[float, float] | None = None
    voi_seq = ds.get("VOILUTSequence")
    if voi_seq and "LUTData" in voi_seq[0]:
        values, source = _lut_lookup(values, voi_seq[0], normalise=True), "voi_lut"
    else:
        window = _first_window(ds)
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        if window is None:
            window, function, source = _percentile_window(values, padding), "LINEAR_EXACT", "percentile"
        else:
            source = "window"
        values = apply_window(values, *window, function=function)
    if photometric == "MONOCHROME1" or str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE":
        values = 1.0 - values
    if padding is not None:
        values[padding] = 0.0
    return values, window, source


def _padding_mask(stored: np.ndarray, ds: Dataset) -> np.ndarray | None:
    """True where the stored value is Pixel Padding Value (.. Pixel Padding Range Limit)."""
    pad = ds.get("PixelPaddingValue")
    if pad is None or isinstance(pad, (bytes, list)):
        return None
    limit = ds.get("PixelPaddingRangeLimit")
    lo, hi = (pad, pad) if limit is None or isinstance(limit, (bytes, list)) else sorted((pad, limit))
    return (stored >= lo) & (stored <= hi)


def _modality_lut(values: np.ndarray, ds: Dataset) -> np.ndarray:
    seq = ds.get("ModalityLUTSequence")
    if seq and "LUTData" in seq[0]:
        return _lut_lookup(values, seq[0], normalise=False)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None or intercept is not None:
        values = values * np.float32(slope if slope is not None else 1.0)
        values += np.float32(intercept if intercept is not None else 0.0)
    return values


def _lut_lookup(values: np.ndarray, item: Dataset, normalise: bool) -> np.ndarray:
    """Apply a DICOM LUT item (LUTDescriptor + LUTData), interpolating between entries.

    Inputs may be non-integer after area resizing, hence interpolation. With ``normalise`` the
    output is mapped from the LUT's own value range to [0, 1] (its declared bit depth is often wrong).
    """
    entries, first_mapped, bits = (int(v) for v in item.LUTDescriptor)
    entries = entries or 65536
    data = item.LUTData
    if isinstance(data, (bytes, bytearray)):
        dtype = np.uint8 if bits <= 8 and len(data) == entries else np.uint16
        table = np.frombuffer(data, dtype=dtype).astype(np.float32)
    else:
        table = np.atleast_1d(np.asarray(data, dtype=np.float32))
    table = table[:entries]
    out = np.interp(values - first_mapped, np.arange(len(table), dtype=np.float32), table).astype(np.float32)
    if normalise:
        lo, hi = float(table.min()), float(table.max())
        out = (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)
    return out


def _first_window(ds: Dataset) -> tuple[float, float] | None:
    """The first (center, width) pair, or None when absent or unusable (width <= 0)."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    try:
        center, width = float(_first_value(center)), float(_first_value(width))
    except (TypeError, ValueError, IndexError):
        return None
    return (center, width) if width > 0 and np.isfinite(center) and np.isfinite(width) else None


def _first_value(value: object) -> object:
    """The first of several values (Window Center/Width may hold one pair per window)."""
    return value[0] if isinstance(value, (MultiValue, list, tuple)) else value


def _percentile_window(values: np.ndarray, padding: np.ndarray | None) -> tuple[float, float]:
    """(center, width) spanning the 0.5-99.5 percentiles of the non-padding pixels."""
    sample = values[~padding] if padding is not None else values.ravel()
    stride = max(1, sample.size // 250_000)  # percentiles of a regular subsample: same window, 10x faster
    lo, hi = np.percentile(sample[::stride], PERCENTILE_WINDOW) if sample.size else (0.0, 1.0)
    width = max(float(hi - lo), 1e-6)
    return float(lo) + width / 2, width


def apply_window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Map modality values to [0, 1] with a VOI window (DICOM PS3.3 C.11.2.1.2/3).

    ``function``: ``LINEAR`` (the standard's default, with its 0.5/width-1 offsets),
    ``LINEAR_EXACT`` or ``SIGMOID``. Returns float32 of the same shape.
    """
    if function == "SIGMOID":
        return (1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))).astype(np.float32)
    if function == "LINEAR_EXACT" or width <= 1:
        out = (values - center) / width + 0.5
    else:
        out = (values - (center - 0.5)) / (width - 1) + 0.5
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


def _display_flips(ds: Dataset) -> tuple[bool, bool]:
    """(left-right, up-down) flips that bring the image to display orientation (see module doc)."""
    orientation = ds.get("PatientOrientation")
    if not orientation or isinstance(orientation, str) or len(orientation) != 2:
        return False, False
    row, col = str(orientation[0]).upper(), str(orientation[1]).upper()
    return row.startswith("R"), col.startswith("H")
