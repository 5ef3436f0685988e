"""Calibration: fit per-observation probability maps, thresholds and the indeterminate band on
validation data (:func:`~multimodal.calibration.calibrate.calibrate`, ``mmdx calibrate``).

The maps themselves (what ``config.calibration`` means) live with the model in
:mod:`multimodal.models.calibration`; the metrics that judge them in
:mod:`multimodal.evaluation.calibration`.
"""
