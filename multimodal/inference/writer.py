"""The output side of batch scoring: three exactly-once logs, per-study extras, and the counts.

Every input file of a run ends in exactly one of three JSON-lines files:

* ``<out>`` (results): one line per scored study; its ``sources`` list the files used and the view
  each became;
* ``<out>.errors.jsonl``: files that could not be used, with the reader's reason. ``scope`` says
  whether the whole study failed (``study``; a resumed run skips it) or one file of a study that
  was scored without it (``file``). SR or heat-map files that could not be written add lines with
  scope ``output`` (key ``<study>#sr`` / ``<study>#heatmaps``);
* ``<out>.skipped.jsonl``: readable inputs deliberately not used, each with the reason (not an
  image, a duplicate, more views than the model takes, a repeated manifest id).

A batch's file lines are written before its result lines, so a run killed between the two is
resumed without losing or repeating a line (:class:`~multimodal.inference.results.JsonlLog`
drops keys it already holds).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from multimodal.inference.decoding import DecodeOutcome
from multimodal.inference.results import JsonlLog, StudyResult, safe_file_stem, write_heatmaps
from multimodal.inference.sources import Discovery, InputError
from multimodal.security import audit
from preprocessing.crypto import Keyring, seal_file


def errors_path(out: str | Path) -> Path:
    """Where the error records of ``out`` go: ``<out>.errors.jsonl``."""
    out = Path(out)
    return out.with_name(out.name + ".errors.jsonl")


def skipped_path(out: str | Path) -> Path:
    """Where the inputs ``out`` deliberately did not use are listed: ``<out>.skipped.jsonl``."""
    out = Path(out)
    return out.with_name(out.name + ".skipped.jsonl")


class ResultWriter:
    """Appends results, errors and skipped inputs durably, writes SRs and heat maps, and counts.

    ``log_path`` holds the results; ``accounts`` is the path the errors and skipped files are
    named after (``<accounts>.errors.jsonl``, ``<accounts>.skipped.jsonl``). :attr:`counts` holds
    what this run wrote: ``scored`` / ``failed`` studies and ``used`` / ``skipped`` / ``failed_files``.
    """

    def __init__(self, log_path: Path, accounts: Path, sr_dir: str | Path | None = None,
                 heatmap_dir: str | Path | None = None):
        self.results = JsonlLog(log_path, key="study_id")
        self.errors = JsonlLog(errors_path(accounts), key="key")
        self.skipped = JsonlLog(skipped_path(accounts), key="key")
        self.sr_dir = Path(sr_dir) if sr_dir is not None else None
        self.heatmap_dir = Path(heatmap_dir) if heatmap_dir is not None else None
        self.counts: Counter[str] = Counter()

    def done(self, study_id: str) -> bool:
        """Whether an earlier run scored this study or recorded it as failed."""
        return study_id in self.results.done or study_id in self.errors.done

    def write_discovery(self, found: Discovery) -> None:
        """The inputs discovery could not use (missing paths, bad manifest lines, non-images...)."""
        self._errors(found.errors)
        self._skipped(s.to_dict() for s in found.skipped)

    def write_batch(self, batch: Sequence[DecodeOutcome], results: Sequence[StudyResult]) -> None:
        """One batch: the file lines of its studies, their extras, then the results, then failed studies.

        ``results`` belong, in order, to the outcomes of ``batch`` that hold a prepared study.
        """
        scored = [o for o in batch if o.prepared is not None]
        file_errors, skipped = [], []
        for outcome in batch:
            prepared = outcome.prepared
            file_errors += outcome.file_errors + (prepared.failed if prepared is not None else [])
            skipped += outcome.skipped + (prepared.skipped if prepared is not None else [])
        for outcome, result in zip(scored, results):
            file_errors += self._extras(outcome.prepared, result)
        self._errors(file_errors)
        self._skipped(s.to_dict() for s in skipped)
        lines = [_result_line(r) for r in results]
        self.counts["scored"] += self.results.append(lines)
        audit.record_results("score", results)
        self.counts["used"] += sum(len(line["sources"]) for line in lines)
        self._errors(o.error for o in batch if o.error is not None)

    def close(self) -> None:
        for log in (self.results, self.errors, self.skipped):
            log.close()

    def _errors(self, errors: Iterable[InputError]) -> None:
        fresh = [e for e in errors if e.key not in self.errors.done]
        self.errors.append(e.to_dict() for e in fresh)
        self.counts["failed"] += sum(e.scope == "study" and e.study_id is not None for e in fresh)
        self.counts["failed_files"] += sum(e.scope != "output" for e in fresh)
        self.counts["output_errors"] += sum(e.scope == "output" for e in fresh)

    def _skipped(self, records: Iterable[dict]) -> None:
        self.counts["skipped_files"] += self.skipped.append(records)

    def _extras(self, prepared, result: StudyResult) -> list[InputError]:
        """Write the SR and heat maps of one study; any failure is an ``output`` error, the result stays."""
        errors = []
        first = prepared.sources[0].path if prepared.sources and prepared.sources[0].path else "<memory>"
        stem = safe_file_stem(result.study_id)
        if self.heatmap_dir is not None:
            try:
                write_heatmaps(result, self.heatmap_dir, images=prepared.display_images(), file_stem=stem)
            except Exception as err:  # noqa: BLE001 - a full disk or odd value must not lose the result
                errors.append(InputError(first, f"heat maps not written: {type(err).__name__}: {err}",
                                         f"{result.study_id}#heatmaps", stage="heatmaps", scope="output"))
        if self.sr_dir is not None and prepared.headers:
            # Imported here: highdicom takes ~0.6 s to import, which a run without SRs need not pay.
            from multimodal.inference.sr import to_structured_report

            try:
                sr = to_structured_report(result, prepared.headers)
                self.sr_dir.mkdir(parents=True, exist_ok=True)
                sr.save_as(self.sr_dir / f"{stem}.dcm", enforce_file_format=True)
                seal_file(self.sr_dir / f"{stem}.dcm", Keyring.from_env())  # encrypted at rest with a key file
            except Exception as err:  # noqa: BLE001 - a source header highdicom rejects must not lose the result
                errors.append(InputError(first, f"structured report not written: {type(err).__name__}: {err}",
                                         f"{result.study_id}#sr", stage="sr", scope="output"))
        return errors


def _result_line(result: StudyResult) -> dict:
    """The results-file line of a study: its failed and skipped files are in the other two files."""
    line = result.to_dict()
    line.pop("failed", None)
    line.pop("skipped", None)
    return line
