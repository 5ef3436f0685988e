"""PACS integration: a DICOMweb scoring loop (``dicomweb``) and a DIMSE Storage SCP (``listener``).

Both score studies with the Predictor and send a DICOM Structured Report back to the PACS.
Submodules are imported on demand so that ``import multimodal.pacs`` stays light.
"""

from __future__ import annotations

from preprocessing.errors import MmdxError


class PacsError(MmdxError):
    """A PACS could not be reached, refused us, or rejected what we sent; the message names the peer."""
