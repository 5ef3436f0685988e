"""Classification figures: the reliability bins, and figures that draw what they are given."""

from __future__ import annotations

import numpy as np

from multimodal.evaluation.figures import pr_figure, reliability, reliability_figure, roc_figure, save_figure


def test_reliability_bins_hold_mean_probability_and_observed_frequency():
    probs = np.array([0.05, 0.05, 0.95, 0.95])
    assert reliability(probs, np.array([0.0, 1.0, 1.0, 1.0])) == [(0.05, 0.5, 2), (0.95, 1.0, 2)]


def test_curves_skip_observations_with_one_class_and_uncertain_labels(tmp_path):
    labels = np.array([[1, 0], [0, 0], [1, -1], [0, 0]], dtype=np.float32)
    probs = np.array([[0.9, 0.1], [0.2, 0.3], [0.7, 0.8], [0.4, 0.2]], dtype=np.float32)
    mask = np.ones_like(labels, dtype=bool)
    for build in (roc_figure, pr_figure):
        fig = build(probs, labels, mask, ["A", "B"])
        assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["A (1.000)"]
        assert save_figure(fig, tmp_path / f"{build.__name__}.png").stat().st_size > 0
    fig = reliability_figure(probs, labels, mask)
    xs = fig.axes[0].lines[1].get_xdata()
    certain = labels >= 0  # the uncertain label is left out: 7 pairs in 6 bins
    assert len(xs) == len(reliability(probs[certain], labels[certain])) == 6
