"""Subgroup AUROC, calibration error and risk-coverage against hand computations on fixed examples."""

from __future__ import annotations

import numpy as np
import pytest

from multimodal.data.manifest import StudyRecord
from multimodal.evaluation.calibration import adaptive_ece, calibration_metrics
from multimodal.evaluation.selective import risk_coverage
from multimodal.evaluation.subgroups import subgroup_metrics, subgroup_value

# Eight studies, one observation. Women (F): labels 1 1 0 0 with scores .9 .4 .6 .1: of the 4
# positive-negative pairs, (.9>.6) (.9>.1) (.4>.1) are ordered and (.4<.6) is not -> AUROC 3/4.
# Men (M): labels 1 0 0 1 with scores .8 .3 .2 .7: every pair ordered -> AUROC 1. Gap 0.25.
# A second observation scores the reverse of the first: AUROC 1/4 for women, 0 for men.
PROBS = np.array([[.9], [.4], [.6], [.1], [.8], [.3], [.2], [.7]]) * [1, -1] + [0, 1]
LABELS = np.array([[1], [1], [0], [0], [1], [0], [0], [1]]).repeat(2, 1)
MASK = np.ones_like(LABELS, dtype=bool)
SEX = ["F", "F", "F", "F", "M", "M", "M", "M"]


def test_subgroup_auroc_gap_and_counts_match_a_hand_computation():
    result = subgroup_metrics(PROBS, LABELS, MASK, ["Effusion", "Mass"], np.array([0.5, 0.5]), {"sex": SEX},
                              n_bootstrap=50)["sex"]
    women, men = result["groups"]["F"], result["groups"]["M"]
    assert women["per_observation"]["Effusion"]["auroc"] == pytest.approx(0.75)
    assert men["per_observation"]["Effusion"]["auroc"] == pytest.approx(1.0)
    assert (women["n"], women["per_observation"]["Effusion"]["positives"]) == (4, 2)
    assert result["gap"]["Effusion"] == {"gap": pytest.approx(0.25), "highest": "M", "lowest": "F"}
    assert men["per_observation"]["Mass"]["auroc"] == pytest.approx(0.0)
    assert women["macro_auroc"] == pytest.approx(0.5) and men["macro_auroc"] == pytest.approx(0.5)
    assert result["gap"]["macro"]["gap"] == pytest.approx(0.0)
    lo, hi = women["per_observation"]["Effusion"]["ci"]
    assert 0.0 <= lo <= 0.75 <= hi <= 1.0
    assert result["missing"] == 0


def test_subgroup_fields_come_from_views_meta_and_age_bands():
    record = StudyRecord(study_id="s", images=["a.png"], views=["AP"], meta={"patient_sex": "F", "patient_age": 63, "site": "b"})
    assert [subgroup_value(record, f) for f in ("view", "sex", "age_band", "site", "split")] == \
        ["AP", "F", "60-79", "b", "train"]
    assert subgroup_value(StudyRecord(study_id="t"), "age_band") is None


def test_ece_and_adaptive_ece_match_a_hand_computation():
    # Probabilities .1 .1 .9 .9 with labels 0 1 1 1: bin .1 has confidence .1, frequency .5 (gap .4);
    # bin .9 has .9 vs 1 (gap .1); each holds half the cases -> ECE = .25. Equal-mass bins: with 2 bins
    # the same halves (.25); with 15 bins each case is its own bin: (.1 + .9 + .1 + .1) / 4 = .3.
    p, y = np.array([[.1], [.1], [.9], [.9]]), np.array([[0], [1], [1], [1]])
    m = calibration_metrics(p, y, np.ones_like(y, dtype=bool), ["A"], n_bins=15)["per_observation"]["A"]
    assert m["ece"] == pytest.approx(0.25, abs=1e-6) and m["ece_adaptive"] == pytest.approx(0.3)
    assert adaptive_ece(p[:, 0], y[:, 0], n_bins=2) == pytest.approx(0.25)
    assert m["brier"] == pytest.approx((.01 + .81 + .01 + .01) / 4)
    assert m["nll"] == pytest.approx(-(np.log(.9) + np.log(.1) + 2 * np.log(.9)) / 4)


def test_deferring_the_least_certain_cases_raises_accuracy():
    # Wrong answers sit closest to the threshold: keeping the most certain half leaves only right ones.
    probs = np.array([[.95], [.05], [.55], [.45], [.9], [.1]])
    labels = np.array([[1], [0], [0], [1], [1], [0]])
    curve = risk_coverage(probs, labels, np.ones_like(labels, dtype=bool), np.array([0.5]), coverages=(1.0, 0.5))
    assert curve["uncertainty"] == "distance to threshold"
    assert curve["accuracy"] == [pytest.approx(4 / 6), 1.0] and curve["kept"] == [6, 3]
