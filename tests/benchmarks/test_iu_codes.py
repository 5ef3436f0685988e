"""The IU X-ray code mapping (the labeler's reference on the IU reports) and the labeler's agreement with
the codes on the held-out part (skipped without ../shared)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.iu_codes import code_observations, evaluate_agreement, split_of, study_truth  # noqa: E402

IU_DEV = REPO_ROOT / "../shared/data/iu_xray_reports/reports_dev.jsonl"


def test_iu_code_mapping():
    assert code_observations("Opacity/lung/base/left/mild") == [("Lung Opacity", ["left_lower"])]
    assert code_observations("Pleural Effusion/bilateral") == [("Pleural Effusion", ["right_lower", "left_lower"])]
    assert code_observations("Opacity/ribs/right") == []
    assert code_observations("Cicatrix/pleura/apex/left") == [("Pleural Other", ["left_upper"])]
    assert code_observations("Lung/interstitial/prominent/mild") == [("Lung Opacity", [])]
    assert code_observations("Lung/hypoinflation") == []
    # a round lung opacity is a lesion, whatever heading the coder picked; a round density on a rib is not
    for code in ("Opacity/lung/upper lobe/right/round", "Infiltrate/lung/lingula/round", "Markings/lung/reticular/round"):
        assert {obs for obs, _ in code_observations(code)} == {"Lung Opacity", "Lung Lesion"}
    assert code_observations("Density/ribs/right/round") == []
    assert study_truth(["Aorta/tortuous"]).positives == {"No Finding"}
    assert study_truth(["Catheters, Indwelling/right"]).positives == {"Support Devices", "No Finding"}
    assert study_truth(["No Indexing"]) is None
    assert {split_of(u) for u in range(50)} == {"tune", "heldout"}


def test_agreement_with_iu_codes_on_held_out_reports():
    if not IU_DEV.is_file():
        pytest.skip("../shared/data/iu_xray_reports is absent")
    rows = [json.loads(line) for line in IU_DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    heldout = [r for r in rows if split_of(r["uid"]) == "heldout"]
    result = evaluate_agreement(heldout, convention="iu")
    assert result["reports"] > 800
    assert result["macro_f1"] >= 0.85, result["observations"]
    assert result["zone_jaccard"] >= 0.80
