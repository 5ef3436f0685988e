"""Project exceptions: each names the file and the cause, in the manner of pydicom's InvalidDicomError."""

from __future__ import annotations

from pathlib import Path


class MmdxError(Exception):
    """Base class for every error this project raises on purpose."""


class ImageReadError(MmdxError):
    """An input image could not be turned into a radiograph.

    ``path`` is the file (or a description of the in-memory source) and ``reason`` a short
    human sentence; ``str(err)`` is ``"<path>: <reason>"``.
    """

    def __init__(self, path: str | Path | None, reason: str):
        self.path = str(path) if path is not None else "<memory>"
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DicomReadError(ImageReadError):
    """Not DICOM, truncated, no pixel data, or pydicom failed to parse it."""


class CodecMissingError(DicomReadError):
    """The transfer syntax needs a decoder that is not installed; the reason names the package."""


class UnsupportedImageError(ImageReadError):
    """Readable, but not something this project scores (photometric, modality, dimensions...)."""


class ConfigError(MmdxError):
    """A configuration value is wrong; the message names the key."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"config key {key!r}: {reason}")


class ManifestError(MmdxError):
    """A manifest line is malformed; the message names the file, line and field."""

    def __init__(self, path: str | Path, line: int, field: str | None, reason: str):
        self.path, self.line, self.field, self.reason = str(path), line, field, reason
        where = f"{path}:{line}" + (f" field {field!r}" if field else "")
        super().__init__(f"{where}: {reason}")
