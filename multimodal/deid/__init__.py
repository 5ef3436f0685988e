"""De-identification: DICOM files (``dicom``, PS3.15 Table E.1-1 in ``profile``) and report text (``text``)."""
