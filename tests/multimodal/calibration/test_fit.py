"""The fitted maps: what scikit-learn/SciPy fit is what the model applies; the decision band."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from multimodal.calibration.fit import fit_calibration, indeterminate_bands
from multimodal.models.calibration import calibrated_probs, check_calibration, decide
from preprocessing.errors import ConfigError

RNG = np.random.default_rng(0)
LABELS = (RNG.random((400, 2)) < 0.3).astype(float)
LOGITS = 6.0 * (LABELS - 0.3) + RNG.normal(0, 3.0, (400, 2))  # informative but far too spread: over-confident
MASK = np.ones_like(LABELS, dtype=bool)
NAMES = ["A", "B"]


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_fitted_maps_lower_the_nll_and_keep_the_ranking(method):
    fitted = fit_calibration(LOGITS, LABELS, MASK, NAMES, method)
    probs = calibrated_probs(torch.as_tensor(LOGITS), fitted, NAMES).numpy()
    raw = 1 / (1 + np.exp(-LOGITS))

    def nll(p):
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return -np.mean(LABELS * np.log(p) + (1 - LABELS) * np.log(1 - p))

    assert nll(probs) < nll(raw)
    order = np.argsort(LOGITS[:, 0])
    assert np.all(np.diff(probs[order, 0]) >= -1e-9)  # monotone in the logit


def test_applied_maps_equal_scikit_learn_predictions():
    platt = fit_calibration(LOGITS, LABELS, MASK, NAMES, "platt")
    reference = LogisticRegression(C=np.inf).fit(LOGITS[:, :1], LABELS[:, 0]).predict_proba(LOGITS[:, :1])[:, 1]
    np.testing.assert_allclose(calibrated_probs(torch.as_tensor(LOGITS), platt, NAMES)[:, 0].numpy(), reference,
                               atol=1e-6)
    iso = fit_calibration(LOGITS, LABELS, MASK, NAMES, "isotonic")
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(LOGITS[:, 1], LABELS[:, 1])
    np.testing.assert_allclose(calibrated_probs(torch.as_tensor(LOGITS), iso, NAMES)[:, 1].numpy(),
                               reference.predict(LOGITS[:, 1]), atol=1e-6)


def test_temperature_above_one_for_an_over_confident_model():
    fitted = fit_calibration(LOGITS, LABELS, MASK, NAMES)
    assert all(p["temperature"] > 1.5 for p in fitted["params"].values())


def test_band_holds_the_chosen_share_of_errors_and_decides_indeterminate():
    probs = np.array([[.1], [.35], [.45], [.55], [.6], [.9], [.48], [.7]])
    labels = np.array([[1], [1], [1], [0], [0], [0], [0], [1]])
    # threshold .5: misses .1 .35 .45 (positives below), false alarms .55 .6 .9.
    (low, high), = indeterminate_bands(probs, labels, np.ones_like(labels, dtype=bool), ["A"], np.array([.5]),
                                       error_share=2 / 3).values()
    assert low == pytest.approx(0.35) and 0.6 <= high < 0.61
    assert [decide(p, .5, (low, high)) for p in (.3, .35, .5, .6, .9)] == \
        ["absent", "indeterminate", "indeterminate", "indeterminate", "present"]
    assert decide(.5, .5, None) == "present" and decide(.49, .5, None) == "absent"
    band, = indeterminate_bands(probs, labels, np.ones_like(labels, dtype=bool), ["A"], np.array([.5]), 0).values()
    assert band == [.5, .5]


def test_a_bad_calibration_names_the_key():
    with pytest.raises(ConfigError, match="calibration.params.A.temperature"):
        check_calibration({"method": "temperature", "params": {"A": {"temperature": -1}}}, NAMES)
    with pytest.raises(ConfigError, match="calibration.indeterminate.C"):
        check_calibration({"method": "platt", "params": {}, "indeterminate": {"C": [0.2, 0.8]}}, NAMES)
