"""DICOM reading: every transfer syntax we can encode, each LUT/photometric path, orientation, errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.pixels import apply_windowing

from preprocessing import dicom as dicom_module
from preprocessing import openjpeg
from preprocessing.dicom import apply_window, read_radiograph
from preprocessing.errors import CodecMissingError, DicomReadError, ImageReadError, UnsupportedImageError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

HAS_OPENJPEG = importlib.util.find_spec("openjpeg") is not None
HAS_JPEGLS = importlib.util.find_spec("jpeg_ls") is not None

# (transfer syntax, encoder keyword arguments, lossless)
SYNTAXES = [
    (uid.ImplicitVRLittleEndian, None, True),
    (uid.ExplicitVRLittleEndian, None, True),
    (uid.ExplicitVRBigEndian, None, True),
    (uid.DeflatedExplicitVRLittleEndian, None, True),
    (uid.RLELossless, {}, True),
    pytest.param(uid.JPEGLSLossless, {}, True, marks=pytest.mark.skipif(not HAS_JPEGLS, reason="pyjpegls missing")),
    pytest.param(uid.JPEGLSNearLossless, {"jls_error": 2}, False,
                 marks=pytest.mark.skipif(not HAS_JPEGLS, reason="pyjpegls missing")),
    pytest.param(uid.JPEG2000Lossless, {}, True,
                 marks=pytest.mark.skipif(not HAS_OPENJPEG, reason="pylibjpeg-openjpeg missing")),
    pytest.param(uid.JPEG2000, {"j2k_cr": [8]}, False,
                 marks=pytest.mark.skipif(not HAS_OPENJPEG, reason="pylibjpeg-openjpeg missing")),
]


def encode(ds: Dataset, syntax: uid.UID, kwargs: dict | None) -> Dataset:
    """``ds`` re-encoded in ``syntax`` (compressed via pydicom's encoders)."""
    if kwargs is not None:
        ds.compress(syntax, **kwargs)
    elif syntax == uid.ExplicitVRBigEndian:
        ds.file_meta.TransferSyntaxUID = syntax
        ds.PixelData = np.frombuffer(ds.PixelData, dtype="<u2").byteswap().tobytes()
    else:
        ds.file_meta.TransferSyntaxUID = syntax
    return ds


@pytest.mark.parametrize(("syntax", "kwargs", "lossless"), SYNTAXES)
def test_every_encodable_transfer_syntax_reads_like_uncompressed(
        tmp_path, chest_like, dx_dataset, save, syntax, kwargs, lossless):
    pixels = chest_like()
    reference = read_radiograph(save(dx_dataset(pixels), tmp_path / "ref.dcm")).pixels
    path = save(encode(dx_dataset(pixels), syntax, kwargs), tmp_path / "x.dcm")

    rg = read_radiograph(path)

    assert rg.transfer_syntax == syntax
    assert rg.pixels.dtype == np.float32 and rg.pixels.shape == pixels.shape
    if lossless:
        np.testing.assert_allclose(rg.pixels, reference, atol=1e-6)
    else:
        assert np.abs(rg.pixels - reference).mean() < 0.01


def test_jpeg_baseline_8bit(tmp_path, chest_like, dx_dataset, save):
    # pydicom has no JPEG baseline encoder: Pillow writes the codestream, pydicom encapsulates it
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate

    pixels = chest_like(bits=8).astype(np.uint8)
    reference = read_radiograph(dx_dataset(pixels, bits_stored=8, WindowCenter=128, WindowWidth=256)).pixels
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    ds = dx_dataset(pixels, bits_stored=8, WindowCenter=128, WindowWidth=256)
    ds.BitsAllocated = 8
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = uid.JPEGBaseline8Bit
    rg = read_radiograph(save(ds, tmp_path / "jpeg.dcm"))
    assert rg.transfer_syntax == uid.JPEGBaseline8Bit
    assert np.abs(rg.pixels - reference).mean() < 0.01


def test_metadata_and_header_without_pixels(tmp_path, chest_like, dx_dataset, save):
    ds = dx_dataset(chest_like(), ViewPosition="AP", ImageLaterality="L", PixelSpacing=[0.15, 0.16])
    rg = read_radiograph(save(ds, tmp_path / "a.dcm"))

    assert (rg.study_uid, rg.series_uid, rg.sop_uid) == (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert (rg.patient_id, rg.accession_number, rg.modality) == ("P001", "A42", "DX")
    assert (rg.view_position, rg.laterality, rg.pixel_spacing) == ("AP", "L", (0.15, 0.16))
    assert (rg.photometric, rg.bits_stored, rg.original_shape) == ("MONOCHROME2", 12, (96, 80))
    assert rg.dataset.PatientName == "Test^Patient" and "PixelData" not in rg.dataset
    assert rg.dataset.file_meta.TransferSyntaxUID == uid.ExplicitVRLittleEndian


def test_accepts_a_dataset_in_memory(chest_like, dx_dataset):
    rg = read_radiograph(dx_dataset(chest_like()))
    assert rg.path is None and rg.pixels.shape == (96, 80)


def test_window_maps_center_to_mid_gray_and_clips(dx_dataset):
    pixels = np.array([[0, 900, 1000, 1100, 4000]], dtype=np.uint16)
    rg = read_radiograph(dx_dataset(pixels, WindowCenter=1000, WindowWidth=201))
    np.testing.assert_allclose(rg.pixels[0], [0.0, 0.0025, 0.5025, 1.0, 1.0], atol=1e-3)
    assert rg.voi_source == "window" and rg.window == (1000.0, 201.0)


@pytest.mark.parametrize("function", ["LINEAR", "SIGMOID"])
def test_window_functions_agree_with_pydicom(dx_dataset, chest_like, function):
    ds = dx_dataset(chest_like(), WindowCenter=2000, WindowWidth=1500, VOILUTFunction=function)
    raw = ds.pixel_array
    expected = apply_windowing(raw.astype(float), ds)  # pydicom's output spans 0 .. 2**BitsStored - 1
    rg = read_radiograph(ds)
    np.testing.assert_allclose(rg.pixels, expected / (2**12 - 1), atol=2e-3)


def test_linear_exact_window():
    values = np.array([900.0, 1000.0, 1050.0, 1100.0])
    np.testing.assert_allclose(apply_window(values, 1000, 200, "LINEAR_EXACT"), [0.0, 0.5, 0.75, 1.0])


def test_first_of_several_windows_is_used(dx_dataset, chest_like):
    rg = read_radiograph(dx_dataset(chest_like(), WindowCenter=[500, 3000], WindowWidth=[100, 2000]))
    assert rg.window == (500.0, 100.0)


def test_rescale_slope_intercept_precedes_the_window(dx_dataset):
    pixels = np.array([[100, 200, 300]], dtype=np.uint16)
    # modality values 2x - 100 = 100, 300, 500; window 300 +- 200 (LINEAR_EXACT for round numbers)
    rg = read_radiograph(dx_dataset(pixels, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=300,
                                    WindowWidth=400, VOILUTFunction="LINEAR_EXACT"))
    np.testing.assert_allclose(rg.pixels[0], [0.0, 0.5, 1.0], atol=1e-6)


def lut_item(first: int, table: list[int], bits: int = 16) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [len(table), first, bits]
    item.LUTData = table
    return item


def test_modality_lut_sequence(dx_dataset):
    pixels = np.array([[10, 11, 12, 13]], dtype=np.uint16)
    ds = dx_dataset(pixels, WindowCenter=200, WindowWidth=400, VOILUTFunction="LINEAR_EXACT")
    ds.ModalityLUTSequence = [lut_item(10, [0, 100, 200, 400])]
    ds.ModalityLUTSequence[0].ModalityLUTType = "US"
    np.testing.assert_allclose(read_radiograph(ds).pixels[0], [0.0, 0.25, 0.5, 1.0], atol=1e-6)


def test_voi_lut_sequence_wins_over_window(dx_dataset):
    pixels = np.array([[0, 1, 2, 3, 9]], dtype=np.uint16)
    ds = dx_dataset(pixels, WindowCenter=1, WindowWidth=1)
    ds.VOILUTSequence = [lut_item(0, [1000, 2000, 3000, 5000], bits=16)]
    rg = read_radiograph(ds)
    np.testing.assert_allclose(rg.pixels[0], [0.0, 0.25, 0.5, 1.0, 1.0], atol=1e-6)
    assert rg.voi_source == "voi_lut" and rg.window is None


def test_percentile_window_ignores_outliers_and_padding(dx_dataset, chest_like):
    pixels = chest_like().astype(np.uint16) // 4  # 10-bit content in a 16-bit container
    pixels[:, :10] = 65535  # padding around the collimated field
    pixels[50, 50] = 60000  # one hot pixel must not set the window
    ds = dx_dataset(pixels, bits_stored=16, PixelPaddingValue=65535)

    rg = read_radiograph(ds)

    assert rg.voi_source == "percentile"
    assert rg.window[0] + rg.window[1] / 2 < 1100  # upper end of the window from the real content
    assert np.all(rg.pixels[:, :10] == 0.0)  # padding is black
    assert rg.pixels[:, 10:].mean() > 0.2


def test_padding_range_limit(dx_dataset, chest_like):
    pixels = chest_like()
    pixels[:5] = 0
    pixels[5:8] = 3
    rg = read_radiograph(dx_dataset(pixels, PixelPaddingValue=0, PixelPaddingRangeLimit=3,
                                    WindowCenter=2048, WindowWidth=4096))
    assert np.all(rg.pixels[:8] == 0.0) and rg.pixels[8:].min() > 0.0


def test_invalid_window_falls_back_to_percentile(dx_dataset, chest_like):
    rg = read_radiograph(dx_dataset(chest_like(), WindowCenter=100, WindowWidth=0))
    assert rg.voi_source == "percentile"


def test_monochrome1_is_inverted(dx_dataset, chest_like):
    pixels = chest_like()
    mono2 = read_radiograph(dx_dataset(pixels, WindowCenter=2048, WindowWidth=4096)).pixels
    mono1 = read_radiograph(dx_dataset(pixels, photometric="MONOCHROME1", WindowCenter=2048,
                                       WindowWidth=4096)).pixels
    np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-6)


def test_presentation_lut_inverse_on_monochrome1_inverts_once(dx_dataset, chest_like):
    pixels = chest_like()
    plain = read_radiograph(dx_dataset(pixels, photometric="MONOCHROME1")).pixels
    with_shape = read_radiograph(dx_dataset(pixels, photometric="MONOCHROME1", PresentationLUTShape="INVERSE")).pixels
    np.testing.assert_allclose(with_shape, plain)


@pytest.mark.parametrize(("orientation", "flips"), [
    (["L", "F"], (False, False)),
    (["R", "F"], (True, False)),
    (["L", "H"], (False, True)),
    (["A", "F"], (False, False)),  # lateral: rows run anterior, no left-right convention applies
])
def test_patient_orientation_puts_patient_right_on_image_left(dx_dataset, chest_like, orientation, flips):
    pixels = chest_like()  # bright blob in the upper image-left quadrant
    rg = read_radiograph(dx_dataset(pixels, PatientOrientation=orientation))
    top, bottom = rg.pixels[:48], rg.pixels[48:]
    left, right = rg.pixels[:, :30], rg.pixels[:, 50:]
    assert rg.flips == flips
    assert (right.mean() > left.mean()) == flips[0] and (bottom.mean() > top.mean()) == flips[1]


def test_multi_frame_reads_the_first_frame(dx_dataset, chest_like):
    frames = np.stack([chest_like(), np.zeros((96, 80), np.uint16)])
    rg = read_radiograph(dx_dataset(frames, WindowCenter=2048, WindowWidth=4096))
    assert rg.number_of_frames == 2 and rg.pixels.max() > 0.9


def test_rgb_becomes_gray(chest_like):
    gray = (chest_like(bits=8)).astype(np.uint8)
    rgb = np.stack([gray] * 3, axis=-1)
    ds = Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.Modality, ds.Rows, ds.Columns, ds.SamplesPerPixel = "OT", 96, 80, 3
    ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = rgb.tobytes()
    np.testing.assert_allclose(read_radiograph(ds).pixels, gray / 255.0, atol=1e-5)


def test_file_without_file_meta(tmp_path, dx_dataset, chest_like):
    ds = dx_dataset(chest_like())
    del ds.file_meta
    path = tmp_path / "raw.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    rg = read_radiograph(path)
    assert rg.transfer_syntax == uid.ImplicitVRLittleEndian and rg.pixels.shape == (96, 80)


@pytest.mark.skipif(not HAS_OPENJPEG, reason="pylibjpeg-openjpeg missing")
def test_jpeg2000_decodes_at_reduced_resolution(tmp_path, dx_dataset, chest_like, save):
    pixels = chest_like(256, 200)
    ds = dx_dataset(pixels, WindowCenter=2048, WindowWidth=4096)
    ds.compress(uid.JPEG2000Lossless)
    path = save(ds, tmp_path / "j2k.dcm")
    full = read_radiograph(path, target_size=50)
    assert full.decode_reduction == 2 and full.decoded_shape == (64, 50)
    assert full.pixels.shape == (64, 50) and full.original_shape == (256, 200)
    reference = read_radiograph(path)
    import cv2

    expected = cv2.resize(reference.pixels, (50, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(full.pixels - expected).mean() < 0.02  # wavelet low-pass vs area average
    # no level to skip when the target is as large as the image
    assert read_radiograph(path, target_size=200).decode_reduction == 0
    # a level just under the target (50 px for 52) is close enough: the consumer upsamples by 4 %
    slack = read_radiograph(path, target_size=52)
    assert slack.decode_reduction == 2 and slack.pixels.shape == (64, 50)


@pytest.mark.skipif(not HAS_OPENJPEG, reason="pylibjpeg-openjpeg missing")
def test_jpeg2000_fit_long_keeps_only_the_long_side_at_the_target(tmp_path, dx_dataset, chest_like, save):
    ds = dx_dataset(chest_like(256, 128))
    ds.compress(uid.JPEG2000Lossless)
    path = save(ds, tmp_path / "j2k.dcm")
    short = read_radiograph(path, target_size=50)
    assert short.decode_reduction == 1 and short.pixels.shape == (100, 50)
    # a letterboxing consumer needs only the long side: one level coarser, 4x fewer pixels decoded
    long = read_radiograph(path, target_size=50, fit="long")
    assert long.decode_reduction == 2 and long.decoded_shape == (64, 32) and long.pixels.shape == (50, 25)
    with pytest.raises(ValueError, match="fit"):
        read_radiograph(path, target_size=50, fit="width")


@pytest.mark.skipif(not HAS_OPENJPEG, reason="pylibjpeg-openjpeg missing")
def test_jpeg2000_falls_back_to_full_decode_when_reduced_decoding_fails(tmp_path, dx_dataset, chest_like, save,
                                                                        monkeypatch):
    ds = dx_dataset(chest_like(256, 200))
    ds.compress(uid.JPEG2000Lossless)
    path = save(ds, tmp_path / "j2k.dcm")

    def broken(*args, **kwargs):
        raise openjpeg.OpenJPEGError("broken data stream")

    monkeypatch.setattr(openjpeg, "decode", broken)
    rg = read_radiograph(path, target_size=50)
    assert rg.decode_reduction == 0 and rg.decoded_shape == (256, 200) and rg.pixels.shape == (64, 50)


def test_other_syntaxes_are_resized_to_the_target_short_side(dx_dataset, chest_like):
    rg = read_radiograph(dx_dataset(chest_like(200, 100)), target_size=50)
    assert rg.pixels.shape == (100, 50) and rg.decode_reduction == 0


# --- errors ---------------------------------------------------------------------------------


def test_not_dicom(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("this is not an image")
    with pytest.raises(DicomReadError, match="not a DICOM file") as err:
        read_radiograph(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_radiograph(tmp_path / "absent.dcm")


def test_truncated_generated_file(tmp_path, dx_dataset, chest_like, save):
    path = save(dx_dataset(chest_like()), tmp_path / "t.dcm")
    path.write_bytes(path.read_bytes()[:-2000])
    with pytest.raises(DicomReadError, match="truncated"):
        read_radiograph(path)


@pytest.mark.parametrize(("name", "error", "reason"), [
    ("MR_truncated.dcm", DicomReadError, "truncated pixel data"),
    ("rtplan.dcm", DicomReadError, "no pixel data"),
    ("badVR.dcm", DicomReadError, "invalid or missing NumberOfFrames"),
    # a misplaced marker that libjpeg rejects
    ("JPEG-lossy.dcm", DicomReadError, "could not decode the JPEG Extended"),
    ("examples_palette.dcm", UnsupportedImageError, "photometric interpretation 'PALETTE COLOR'"),
])
def test_broken_or_unsupported_pydicom_files(pydicom_file, name, error, reason):
    with pytest.raises(error, match=reason) as err:
        read_radiograph(pydicom_file(name), check_modality=False)
    assert str(err.value).startswith(str(pydicom_file(name)))


def test_non_projection_modality_is_refused_unless_asked(pydicom_file):
    with pytest.raises(UnsupportedImageError, match="modality 'CT' is not a projection radiograph"):
        read_radiograph(pydicom_file("CT_small.dcm"))
    assert read_radiograph(pydicom_file("CT_small.dcm"), check_modality=False).pixels.shape == (128, 128)


def test_missing_codec_names_the_package(dx_dataset, chest_like, monkeypatch):
    ds = dx_dataset(chest_like())
    ds.file_meta.TransferSyntaxUID = uid.JPEG2000Lossless

    class Unavailable:
        is_available = False

    monkeypatch.setattr(dicom_module, "get_decoder", lambda syntax: Unavailable())
    with pytest.raises(CodecMissingError, match="pip install pylibjpeg pylibjpeg-openjpeg"):
        read_radiograph(ds)


# --- pydicom's bundled files ------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "JPGExtended.dcm",  # JPEG extended, 12-bit
    "JPEGLSNearLossless_16.dcm",
    "JPEG2000.dcm",  # JPEG 2000 lossy
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "image_dfl.dcm",  # deflated
    "SC_rgb_jpeg_gdcm.dcm",  # JPEG lossless, RGB
    "SC_rgb_dcmtk_+eb+cy+np.dcm",  # YBR_FULL_422
    "SC_ybr_full_422_uncompressed.dcm",
    "examples_ybr_color.dcm",  # 30 frames of YBR
    "SC_rgb_rle_2frame.dcm",
    "GDCMJ2K_TextGBR.dcm",  # YBR_RCT
    "J2K_pixelrep_mismatch.dcm",
])
def test_pydicom_test_files(pydicom_file, name):
    rg = read_radiograph(pydicom_file(name), check_modality=False)
    ds = pydicom.dcmread(pydicom_file(name))
    assert rg.pixels.dtype == np.float32 and rg.pixels.shape == (ds.Rows, ds.Columns)
    assert np.isfinite(rg.pixels).all() and 0.0 <= rg.pixels.min() and rg.pixels.max() <= 1.0
    assert rg.pixels.std() > 0.01  # an image, not a constant
    assert rg.number_of_frames == int(ds.get("NumberOfFrames") or 1)


def test_mr_small_lossless_syntaxes_agree(pydicom_file):
    names = ["MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
             "MR_small_bigendian.dcm", "MR_small_implicit.dcm"]
    images = [read_radiograph(pydicom_file(n), check_modality=False).pixels for n in names]
    for name, image in zip(names[1:], images[1:]):
        np.testing.assert_allclose(image, images[0], atol=1e-6, err_msg=name)


# --- the real radiographs in ../shared/data/dicom ----------------------------------------------


def lungs_darker_than_mediastinum(pixels: np.ndarray) -> bool:
    rows, cols = pixels.shape
    band = slice(int(rows * 0.3), int(rows * 0.6))
    centre = pixels[band, int(cols * 0.45):int(cols * 0.55)].mean()
    lungs = (pixels[band, int(cols * 0.2):int(cols * 0.35)].mean() + pixels[band, int(cols * 0.65):int(cols * 0.8)].mean()) / 2
    return centre > lungs + 0.05


@pytest.mark.parametrize("name", ["966_fixed.dcm", "RG1_J2KI.dcm"])
def test_real_chest_radiographs_have_white_bones_and_dark_lungs(shared_dicom, name):
    rg = read_radiograph(shared_dicom / name, target_size=256)
    assert rg.photometric == "MONOCHROME1" and rg.decode_reduction >= 1
    assert 256 * dicom_module.REDUCE_SLACK <= min(rg.pixels.shape) <= 256
    assert lungs_darker_than_mediastinum(rg.pixels)


def test_real_files_in_every_syntax_agree(shared_dicom):
    lossless = read_radiograph(shared_dicom / "RG2_JPLL.dcm", target_size=256).pixels
    jpeg_ls = read_radiograph(shared_dicom / "RG2_JLSL.dcm", target_size=256).pixels
    lossy = read_radiograph(shared_dicom / "RG2_JPLY_fixed.dcm", target_size=256).pixels
    np.testing.assert_allclose(jpeg_ls, lossless, atol=1e-6)
    assert np.abs(lossy - lossless).mean() < 0.01


def test_real_jpeg2000_reduced_matches_full_decode(shared_dicom):
    import cv2

    full = read_radiograph(shared_dicom / "RG3_J2KR.dcm")
    reduced = read_radiograph(shared_dicom / "RG3_J2KR.dcm", target_size=256)
    assert reduced.decode_reduction == 2 and reduced.flips == full.flips == (True, False)
    expected = cv2.resize(full.pixels, reduced.pixels.shape[::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.pixels - expected).mean() < 0.01


def test_paths_are_reported_as_strings(shared_dicom):
    rg = read_radiograph(shared_dicom / "RG2_JPLY_fixed.dcm", target_size=64)
    assert rg.path == str(shared_dicom / "RG2_JPLY_fixed.dcm") and Path(rg.path).is_file()


def test_public_names_are_re_exported_from_the_package():
    import preprocessing

    assert preprocessing.read_radiograph is read_radiograph
    assert preprocessing.Radiograph is dicom_module.Radiograph


def test_malformed_header_value_is_reported_not_raised(dx_dataset, chest_like, monkeypatch):
    monkeypatch.setattr(pydicom.config.settings, "reading_validation_mode", pydicom.config.IGNORE)
    ds = dx_dataset(chest_like())
    ds.PixelPaddingValue = "abc"  # a US element holding text, as found in the wild
    with pytest.raises(DicomReadError, match="could not be processed"):
        read_radiograph(ds)
