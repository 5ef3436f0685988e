"""Metric correctness against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from multimodal.evaluation.caption import caption_metrics, java_available, tokenize
from multimodal.evaluation.classification import classification_metrics, tune_thresholds
from multimodal.evaluation.region import (heatmap_peak, point_in_boxes, pointing_game, pointing_game_ci,
                                          pointing_trials, tolerance_px, zone_f1)

# One observation: positives score 0.35 and 0.8, negatives 0.1 and 0.4.
PROBS = np.array([[0.1], [0.4], [0.35], [0.8]])
LABELS = np.array([[0], [0], [1], [1]])
MASK = np.ones_like(LABELS, dtype=bool)


def test_auroc_ap_f1_match_hand_computed_values():
    m = classification_metrics(PROBS, LABELS, MASK, ["A"], thresholds=np.array([0.5]), n_bootstrap=0)
    a = m["per_observation"]["A"]
    assert a["auroc"] == pytest.approx(0.75)  # 3 of 4 positive-negative pairs ordered right
    assert a["ap"] == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)  # precision 1 at recall 1/2, 2/3 at recall 1
    assert (a["precision"], a["recall"], a["f1"]) == pytest.approx((1.0, 0.5, 2 / 3))
    assert m["macro"]["auroc"] == pytest.approx(0.75)


def test_uncertain_and_unknown_labels_are_left_out():
    probs = np.vstack([PROBS, [[0.99], [0.01]]])
    labels = np.vstack([LABELS, [[-1], [1]]])
    mask = np.vstack([MASK, [[True], [False]]])
    m = classification_metrics(probs, labels, mask, ["A"], thresholds=np.array([0.5]), n_bootstrap=0)
    assert m["per_observation"]["A"]["auroc"] == pytest.approx(0.75)
    assert m["per_observation"]["A"]["n"] == 4


def test_micro_pools_pairs_and_one_class_observation_has_no_auroc():
    probs = np.hstack([PROBS, [[0.2], [0.3], [0.6], [0.7]]])
    labels = np.hstack([LABELS, [[0], [0], [0], [0]]])
    m = classification_metrics(probs, labels, np.ones_like(labels, bool), ["A", "B"], np.array([0.5, 0.5]),
                               n_bootstrap=0)
    assert m["per_observation"]["B"]["auroc"] is None
    assert m["macro"]["auroc"] == pytest.approx(0.75)
    # Pooled: positives {0.35, 0.8} against negatives {0.1, 0.4, 0.2, 0.3, 0.6, 0.7}: 2 + 6 = ... ordered pairs.
    wins = sum(p > n for p in (0.35, 0.8) for n in (0.1, 0.4, 0.2, 0.3, 0.6, 0.7))
    assert m["micro"]["auroc"] == pytest.approx(wins / 12)


def test_thresholds_maximise_validation_f1():
    assert tune_thresholds(PROBS, LABELS, MASK)[0] == pytest.approx(0.35)  # F1 0.8 beats 0.667 at 0.8
    assert tune_thresholds(PROBS, np.zeros_like(LABELS), MASK)[0] == 0.5  # no positive: the default


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, (200, 2))
    probs = np.clip(labels * 0.3 + rng.random((200, 2)) * 0.7, 0, 1)
    args = (probs, labels, np.ones_like(labels, bool), ["A", "B"], np.array([0.5, 0.5]))
    m1 = classification_metrics(*args, n_bootstrap=200, seed=3)
    m2 = classification_metrics(*args, n_bootstrap=200, seed=3)
    lo, hi = m1["ci"]["macro_auroc"]
    assert m1["ci"] == m2["ci"]
    assert lo < m1["macro"]["auroc"] < hi and hi - lo < 0.2
    assert m1["per_observation"]["A"]["ci"]["auroc"][0] < m1["per_observation"]["A"]["auroc"]


def test_bleu_and_rouge_l_match_hand_computed_values():
    refs, cands = ["the heart is normal in size"], ["the heart is normal"]
    m = caption_metrics(refs, cands, meteor=False, pretokenized=True)
    brevity = math.exp(1 - 6 / 4)  # every n-gram precision is 1; only the brevity penalty bites
    for n in range(1, 5):
        assert m[f"bleu{n}"] == pytest.approx(brevity, rel=1e-6)
    precision, recall, beta = 1.0, 4 / 6, 1.2
    assert m["rouge_l"] == pytest.approx((1 + beta**2) * precision * recall / (recall + beta**2 * precision))


def test_bleu_is_corpus_level_not_a_mean_of_sentences():
    # Sentence 2 has no 4-gram match; a sentence average would give ~(1 + 0) / 2.
    refs = ["a b c d e", "p q r s t"]
    cands = ["a b c d e", "p q x s t"]
    m = caption_metrics(refs, cands, meteor=False, pretokenized=True)
    p = [9 / 10, 6 / 8, 3 / 6, 2 / 4]  # clipped n-gram matches / candidate n-grams over the corpus
    assert m["bleu4"] == pytest.approx(math.prod(p) ** 0.25, rel=1e-6)


def test_cider_d_of_exact_matches_and_of_disjoint_text():
    refs = ["left pleural effusion", "heart size is enlarged"]
    # Exact match: cosine 1 for every n with n-grams, times 10. The 3-word text has no 4-gram, so it
    # scores (1 + 1 + 1 + 0) / 4 * 10 = 7.5; the 4-word one 10; the corpus mean 8.75.
    assert caption_metrics(refs, refs, meteor=False, pretokenized=True)["cider"] == pytest.approx(8.75)
    disjoint = caption_metrics(refs, ["no acute disease", "lungs are clear"], meteor=False, pretokenized=True)
    assert disjoint["cider"] == pytest.approx(0.0)


def test_tokenizer_lowercases_and_drops_punctuation_and_empty_generation_scores_zero():
    assert tokenize(["The heart is enlarged."]) == ["the heart is enlarged"]
    m = caption_metrics(["the heart is enlarged"], [""], meteor=False)
    assert m["bleu1"] == pytest.approx(0.0, abs=1e-6) and m["rouge_l"] == 0.0


@pytest.mark.skipif(not java_available(), reason="METEOR needs java")
def test_meteor_runs_through_java_and_rewards_partial_matches():
    # One JVM start (slow): one exact and one partial match give a corpus score strictly between.
    refs = ["the heart is normal in size", "no pleural effusion"]
    meteor = caption_metrics(refs, ["the heart is normal in size", "pleural effusion"])["meteor"]
    assert 0.3 < meteor < 1.0


def test_pointing_game_peak_is_the_upsampled_maximum_in_input_pixels():
    heat = np.zeros((4, 4))
    heat[1, 2] = 1.0  # the cell spanning x 32-48, y 16-32 of a 64-px input
    x, y = heatmap_peak(heat, 64)
    assert 32 <= x <= 48 and 16 <= y <= 32
    assert point_in_boxes(x, y, [(30, 10, 20, 20)], tolerance=0)
    assert not point_in_boxes(x, y, [(45, 10, 20, 20)], tolerance=tolerance_px((64, 64)))  # ~0.9 px
    assert point_in_boxes(x, y, [(45, 10, 20, 20)], tolerance=6.0)


def test_tolerance_is_15_px_at_1024_and_scales_with_the_image():
    assert tolerance_px((1024, 1024)) == 15.0
    assert tolerance_px((512, 512)) == 7.5


def test_pointing_game_averages_observations_and_pools_boxes():
    pg = pointing_game({"A": [True, True, False, True], "B": [False], "C": []})
    assert pg["per_observation"]["A"]["accuracy"] == 0.75 and "C" not in pg["per_observation"]
    assert pg["mean"] == pytest.approx(0.375) and pg["overall"] == pytest.approx(0.6)


def test_pointing_trials_match_boxes_by_label_and_score_the_upsampled_peak():
    heat = np.zeros((2, 2, 4, 4))
    heat[0, 0, 1, 2] = heat[1, 0, 3, 3] = heat[0, 1, 0, 0] = 1.0
    boxes = [[{"label": "Lung_Lesion", "xywh": [30, 10, 20, 20]}, {"label": "Other", "xywh": [0, 0, 64, 64]}],
             [{"label": "lung lesion", "xywh": [0, 0, 10, 10]}, {"label": "Effusion", "xywh": [0, 0, 16, 16]}]]
    trials = pointing_trials(heat, boxes, ["Lung Lesion", "Effusion"], 64)
    assert [(n, d, hit) for n, d, _, _, hit in trials] == [(0, 0, True), (1, 0, False), (1, 1, True)]


def test_pointing_game_interval_resamples_studies_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    trials = [(n, n % 2, [], (0.0, 0.0), bool(rng.random() < 0.6)) for n in range(80)]
    hits = {"A": [t[4] for t in trials if t[1] == 0], "B": [t[4] for t in trials if t[1] == 1]}
    low, high = pointing_game_ci(trials, ["A", "B"], n_bootstrap=300, seed=0)
    assert low < pointing_game(hits)["mean"] < high and high - low < 0.4
    assert pointing_game_ci(trials, ["A", "B"], n_bootstrap=300, seed=0) == [low, high]
    assert pointing_game_ci([], ["A"]) is None


def test_zone_f1_counts_only_pairs_with_zone_labels():
    probs = np.array([[[0.9, 0.1]], [[0.8, 0.7]], [[0.9, 0.9]]])
    targets = np.array([[[1, 0]], [[1, 0]], [[0, 0]]])
    mask = np.array([[True], [True], [False]])
    z = zone_f1(probs, targets, mask, ["z1", "z2"])
    assert z["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1))  # TP 2, FP 1, FN 0
    assert z["per_zone"] == {"z1": 1.0, "z2": 0.0}
