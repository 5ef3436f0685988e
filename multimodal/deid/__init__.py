"""De-identification: DICOM files (``dicom``, PS3.15 Basic Profile via dicognito) and report text (``text``)."""
