"""The exactly-once results log: torn tails are cut, written ids are never written again."""

from __future__ import annotations

import json

from multimodal.inference.results import JsonlLog, ObservationResult, Peak, StudyResult, convert_log


def test_log_cuts_a_torn_last_line_and_remembers_written_ids(tmp_path):
    path = tmp_path / "results.jsonl"
    with JsonlLog(path, key="study_id") as log:
        assert log.append([{"study_id": "a"}, {"study_id": "b"}]) == 2
    with open(path, "ab") as f:  # what a SIGKILL in the middle of a write leaves behind
        f.write(b'{"study_id": "c", "obs')

    with JsonlLog(path, key="study_id") as log:
        assert log.torn_bytes > 0
        assert log.done == {"a", "b"}
        assert log.append([{"study_id": "b"}, {"study_id": "c"}]) == 1

    lines = path.read_text().splitlines()
    assert [json.loads(line)["study_id"] for line in lines] == ["a", "b", "c"]


def _result(study_id: str) -> StudyResult:
    return StudyResult(study_id=study_id, findings="No acute findings.", observations={
        "Cardiomegaly": ObservationResult(0.7, 0.5, True, ["cardiac"], Peak(10.5, 20.5)),
        "Pneumothorax": ObservationResult(0.1, 0.4, False)})


def test_result_dict_round_trips_and_converts_to_flat_tables(tmp_path):
    result = _result("s1")
    assert StudyResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    log = tmp_path / "r.jsonl"
    with JsonlLog(log, key="study_id") as writer:
        writer.append([result.to_dict(), _result("s2").to_dict()])

    import pyarrow.parquet as pq

    table = pq.read_table(convert_log(log, tmp_path / "r.parquet", "parquet"))
    assert table.column("study_id").to_pylist() == ["s1", "s2"]
    assert table.column("Cardiomegaly.probability").to_pylist() == [0.7, 0.7]
    assert table.column("Cardiomegaly.zones").to_pylist() == ["cardiac", "cardiac"]
    header = (convert_log(log, tmp_path / "r.csv", "csv")).read_text().splitlines()[0]
    assert '"Pneumothorax.positive"' in header
