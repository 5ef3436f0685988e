"""Reduced-resolution JPEG 2000 decoding through OpenJPEG's C API (``ctypes``, no compiled code).

JPEG 2000 stores a wavelet pyramid: decoding with ``reduce=r`` reconstructs the image at 1/2**r of
its size from the coarse subbands only, far faster than a full decode followed by a resize (a
2128 x 2000 lossless radiograph: ~600 ms full, ~20 ms at ``reduce=3``). pydicom's codec plugins
(pylibjpeg-openjpeg, imagecodecs) expose no ``reduce``, and Pillow's ``Image.reduce`` glue fails on
some valid codestreams (RG1_J2KI.dcm at ``reduce >= 2``, "broken data stream"), so this module calls
``libopenjp2`` directly: the system library when there is one, else the copy that Pillow's wheels
ship (``pillow.libs``). :func:`available` says whether either was found.

The struct layouts used (``opj_image_t``, ``opj_image_comp_t``) are OpenJPEG 2.x's public ABI.
Decoding runs in the calling thread; a codec error raises :class:`OpenJPEGError` with OpenJPEG's
own message.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from pathlib import Path

import numpy as np

_CODEC_J2K = 0  # OPJ_CODEC_J2K: a raw codestream, as DICOM encapsulates it
_DPARAMETERS_BYTES = 1 << 16  # opj_dparameters_t is ~8.3 kB in 2.x; the library only writes into it
# OpenJPEG's stream buffer. Reads larger than it go straight into the decoder's own buffers and
# data a reduced decode does not need is skipped, not copied: a 64 kB buffer decodes a 4 MB
# lossless codestream at reduce=3 in 12 ms, a buffer holding the whole codestream in 17.
_STREAM_CHUNK_BYTES = 1 << 16


class OpenJPEGError(RuntimeError):
    """OpenJPEG could not decode a codestream (message from the library)."""


class _ImageComp(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in
                ("dx", "dy", "w", "h", "x0", "y0", "prec", "bpp", "sgnd", "resno_decoded", "factor")] + [
        ("data", ctypes.POINTER(ctypes.c_int32)), ("alpha", ctypes.c_uint16)]


class _Image(ctypes.Structure):
    _fields_ = [("x0", ctypes.c_uint32), ("y0", ctypes.c_uint32), ("x1", ctypes.c_uint32),
                ("y1", ctypes.c_uint32), ("numcomps", ctypes.c_uint32), ("color_space", ctypes.c_int),
                ("comps", ctypes.POINTER(_ImageComp)), ("icc_profile_buf", ctypes.c_void_p),
                ("icc_profile_len", ctypes.c_uint32)]


_READ_FN = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
_SKIP_FN = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
_SEEK_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int64, ctypes.c_void_p)
_MSG_FN = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)


def _candidate_paths() -> list[str]:
    """Where libopenjp2 may be: the system's, then the one vendored in Pillow's wheel."""
    found = ctypes.util.find_library("openjp2")
    paths = [found] if found else []
    try:
        import PIL
    except ImportError:
        return paths
    site = Path(PIL.__file__).resolve().parent
    for folder in (site.parent / "pillow.libs", site / ".dylibs"):  # Linux, macOS wheels
        paths += sorted(str(p) for p in folder.glob("libopenjp2*"))
    return paths


@functools.cache
def _library() -> ctypes.CDLL | None:
    for path in _candidate_paths():
        try:
            lib = ctypes.CDLL(path)
            version = lib.opj_version
        except (OSError, AttributeError):
            continue
        version.restype = ctypes.c_char_p
        if not version().startswith(b"2."):
            continue
        _declare(lib)
        return lib
    return None


def _declare(lib: ctypes.CDLL) -> None:
    p = ctypes.c_void_p
    for name, restype, argtypes in (
        ("opj_create_decompress", p, [ctypes.c_int]),
        ("opj_set_default_decoder_parameters", None, [p]),
        ("opj_setup_decoder", ctypes.c_int, [p, p]),
        ("opj_set_error_handler", ctypes.c_int, [p, _MSG_FN, p]),
        ("opj_stream_create", p, [ctypes.c_size_t, ctypes.c_int]),
        ("opj_stream_set_read_function", None, [p, _READ_FN]),
        ("opj_stream_set_skip_function", None, [p, _SKIP_FN]),
        ("opj_stream_set_seek_function", None, [p, _SEEK_FN]),
        ("opj_stream_set_user_data", None, [p, p, p]),
        ("opj_stream_set_user_data_length", None, [p, ctypes.c_uint64]),
        ("opj_read_header", ctypes.c_int, [p, p, ctypes.POINTER(ctypes.POINTER(_Image))]),
        ("opj_set_decoded_resolution_factor", ctypes.c_int, [p, ctypes.c_uint32]),
        ("opj_decode", ctypes.c_int, [p, p, ctypes.POINTER(_Image)]),
        ("opj_end_decompress", ctypes.c_int, [p, p]),
        ("opj_image_destroy", None, [ctypes.POINTER(_Image)]),
        ("opj_stream_destroy", None, [p]),
        ("opj_destroy_codec", None, [p]),
    ):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes


def available() -> bool:
    """True when a libopenjp2 2.x could be loaded."""
    return _library() is not None


class _MemoryStream:
    """OpenJPEG stream callbacks over an in-memory codestream (kept alive while decoding)."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)  # immutable: its buffer can be read in place, without a copy
        self.address = ctypes.cast(ctypes.c_char_p(self.data), ctypes.c_void_p).value
        self.size, self.pos = len(data), 0
        self.read = _READ_FN(self._read)
        self.skip = _SKIP_FN(self._skip)
        self.seek = _SEEK_FN(self._seek)

    def _read(self, out: int, nbytes: int, _user: int) -> int:
        n = min(nbytes, self.size - self.pos)
        if n <= 0:
            return ctypes.c_size_t(-1).value  # OpenJPEG's end-of-stream
        ctypes.memmove(out, self.address + self.pos, n)
        self.pos += n
        return n

    def _skip(self, nbytes: int, _user: int) -> int:
        n = max(-self.pos, min(nbytes, self.size - self.pos))
        self.pos += n
        return n

    def _seek(self, offset: int, _user: int) -> int:
        if not 0 <= offset <= self.size:
            return 0
        self.pos = offset
        return 1


def decode(codestream: bytes, reduce: int = 0) -> tuple[np.ndarray, int]:
    """Decode component 0 of a J2K codestream at 1/2**reduce resolution.

    Returns ``(samples [h, w] int32, precision in bits)``; ``h, w`` are the reduced size
    (``ceil(H / 2**reduce)`` for an image origin at 0). Raises :class:`OpenJPEGError` when the
    library is missing, ``reduce`` exceeds the codestream's levels, or the data is corrupt.
    """
    lib = _library()
    if lib is None:
        raise OpenJPEGError("libopenjp2 (OpenJPEG 2.x) was not found")
    messages: list[str] = []
    on_error = _MSG_FN(lambda msg, _user: messages.append(msg.decode(errors="replace").strip()))
    source = _MemoryStream(codestream)
    codec = stream = None
    image = ctypes.POINTER(_Image)()
    try:
        codec = lib.opj_create_decompress(_CODEC_J2K)
        lib.opj_set_error_handler(codec, on_error, None)
        parameters = ctypes.create_string_buffer(_DPARAMETERS_BYTES)
        lib.opj_set_default_decoder_parameters(parameters)
        stream = lib.opj_stream_create(_STREAM_CHUNK_BYTES, 1)
        lib.opj_stream_set_read_function(stream, source.read)
        lib.opj_stream_set_skip_function(stream, source.skip)
        lib.opj_stream_set_seek_function(stream, source.seek)
        lib.opj_stream_set_user_data_length(stream, len(codestream))
        ok = (lib.opj_setup_decoder(codec, parameters)
              and lib.opj_read_header(stream, codec, ctypes.byref(image))
              and lib.opj_set_decoded_resolution_factor(codec, reduce)
              and lib.opj_decode(codec, stream, image)
              and lib.opj_end_decompress(codec, stream))
        if not ok or not image or image.contents.numcomps < 1:
            raise OpenJPEGError("; ".join(messages) or f"OpenJPEG could not decode at reduce={reduce}")
        comp = image.contents.comps[0]
        if not comp.data:
            raise OpenJPEGError("; ".join(messages) or "OpenJPEG returned no samples")
        samples = np.ctypeslib.as_array(comp.data, shape=(comp.h, comp.w)).copy()
        return samples, int(comp.prec)
    finally:
        if image:
            lib.opj_image_destroy(image)
        if stream:
            lib.opj_stream_destroy(stream)
        if codec:
            lib.opj_destroy_codec(codec)
