"""``mmdx score``: resumable, exactly-once, fault-tolerant batch scoring of folders, manifests, lists.

Flow: discover studies (header-only reads, :mod:`~multimodal.inference.sources`) → skip those
already in the output or the error log → choose, decode and preprocess views in worker processes
(:mod:`~multimodal.inference.decoding`; a prefetching window, so decoding overlaps the model) →
batches through :class:`~multimodal.inference.predictor.Predictor` in model lanes → results,
errors and skipped inputs appended, flushed and fsync'd per batch
(:mod:`~multimodal.inference.writer`); under torchrun the ranks' parts are merged
(:mod:`~multimodal.inference.distributed`).

Guarantees:

* **Every input accounted for.** Each input file ends in exactly one of the results (used, with
  the view it became), ``<out>.errors.jsonl`` or ``<out>.skipped.jsonl``, with a reason.
* **Exactly once.** A study id is written at most once to the results and once to the errors;
  a rerun after a crash or SIGKILL cuts a torn last line and skips every study already written
  (in either file). To retry failures, delete ``<out>.errors.jsonl``.
* **Fault tolerance.** Unreadable files become error records (path, study, reason) and the run
  goes on. Decoding runs in separate processes: a native decoder crash (segfault, abort) kills
  only its worker; the pool is restarted, the studies in flight are retried one at a time, and
  the one that crashes again is recorded as failed.
* **CSV / Parquet.** The JSON-lines log stays the durable record (``<out>`` with suffix
  ``.jsonl``); the table is written from it at the end of every run, atomically.
* **Scale-out.** Under ``torchrun`` / ``accelerate launch`` (``RANK``/``WORLD_SIZE`` set), each
  rank scores the studies whose id hashes to it and writes ``<log>.part-<rank>``; after a barrier
  rank 0 merges the parts into ``<out>`` without duplicates. Without a process group (no
  ``MASTER_ADDR``), run the ranks, then :func:`merge_parts`.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from multimodal.inference.decoding import FAULT_INJECT_ENV, DecodeOutcome, StudyDecoder  # noqa: F401 - public names
from multimodal.inference.distributed import (  # noqa: F401 - merge_parts and rank_device are public here too
    finish_distributed,
    log_path,
    merge_parts,
    part_path,
    rank_and_world,
    rank_device,
)
from multimodal.inference.results import convert_log
from multimodal.inference.sources import InputError, discover_studies, shard
from multimodal.inference.writer import ResultWriter, errors_path, skipped_path  # noqa: F401 - public names
from preprocessing.errors import ConfigError

OUTPUT_FORMATS = ("jsonl", "csv", "parquet")


def score(model_dir: str | Path, inputs: Sequence[str | Path], out: str | Path, batch_size: int = 8,
          workers: int | None = None, threads: int | None = None, device: str | None = None,
          precision: str | None = None, sr_dir: str | Path | None = None, heatmap_dir: str | Path | None = None,
          output_format: str = "jsonl", generate: bool = True, progress: bool = True, tta: int = 1,
          mc_dropout: int = 1) -> dict:
    """Score every study found in ``inputs``; return the summary (also printed as one line).

    ``out``: results file (``.jsonl``, ``.csv`` or ``.parquet`` per ``output_format``);
    errors go to ``<out>.errors.jsonl`` and inputs deliberately not used to ``<out>.skipped.jsonl``
    (:mod:`multimodal.inference.writer`). ``workers``: decode processes (None: see
    :func:`default_workers`; 0 decodes in this process, without crash isolation). ``threads``: a
    CPU model's batches in flight at once, one torch thread each (None: the torch thread count; see
    :func:`model_lanes`). ``sr_dir``: one DICOM SR per DICOM study; ``heatmap_dir``: ``.npz`` heat maps +
    PNG overlays of positives (file names: :func:`~multimodal.inference.results.safe_file_stem`).
    Summary keys: ``found``, ``scored``, ``failed``, ``skipped`` (studies done by an earlier run),
    ``files`` (``used`` / ``skipped`` / ``failed`` files written by this run), ``seconds``,
    ``studies_per_s`` (over the whole call), ``steady_studies_per_s`` (from the first batch on,
    i.e. without start-up: discovery, model load, the first batch's decoding), ``out``, ``errors``,
    ``skipped_inputs`` (the skipped file). ``tta``: test-time augmentation passes
    (:mod:`multimodal.models.tta`; 1: none); ``mc_dropout``: MC-dropout passes
    (:mod:`multimodal.models.mc_dropout`; 1: none; its samples depend on ``batch_size``).
    """
    from multimodal.inference.predictor import Predictor, resolve_device
    from multimodal.inference.prepare import make_preparer
    from multimodal.models.configuration import MultimodalConfig

    if output_format not in OUTPUT_FORMATS:
        raise ConfigError("output_format", f"expected one of {OUTPUT_FORMATS}, got {output_format!r}")
    if batch_size < 1:
        raise ConfigError("batch_size", f"must be >= 1, got {batch_size}")
    out = Path(out)
    rank, world = rank_and_world()
    results_log = log_path(out, output_format)
    if world > 1:
        results_log = part_path(results_log, rank)
    t0 = time.perf_counter()
    dev = rank_device(resolve_device(device))
    workers = default_workers(dev) if workers is None else workers

    found = discover_studies(inputs)
    studies = shard(found.studies, rank, world)
    writer = ResultWriter(results_log, out if world == 1 else results_log, sr_dir, heatmap_dir)
    try:
        if rank == 0:
            writer.write_discovery(found)
        todo = [s for s in studies if not writer.done(s.study_id)]
        prepare = make_preparer(MultimodalConfig.load(model_dir), keep_headers=sr_dir is not None)
        lanes = model_lanes(dev, threads)
        # The decoder starts decoding on construction: the model loads meanwhile.
        with StudyDecoder(todo, prepare, workers, prefetch=(lanes + 2) * batch_size) as decoder, \
                _progress(len(todo), progress and rank == 0) as bar, lane_pool(dev, lanes) as pool:
            predictor = Predictor.from_pretrained(model_dir, device=dev, precision=precision, tta=tta,
                                                  mc_dropout=mc_dropout)
            t_first = _run_batches(predictor, _batches(decoder, batch_size), pool, lanes, generate, writer, bar)
    finally:
        writer.close()
    if world > 1:
        finish_distributed(out, output_format, rank, world)
    elif output_format != "jsonl":
        convert_log(results_log, out, output_format)
    return _summary(writer, len(studies), len(studies) - len(todo), t0, t_first, out if world == 1 else results_log)


def _run_batches(predictor, batches: Iterable[list[DecodeOutcome]], pool: cf.ThreadPoolExecutor, lanes: int,
                 generate: bool, writer: ResultWriter, bar) -> float | None:
    """Run decoded batches through the model lanes and write them in input order; return the time
    the first batch was ready (model loaded, first batch decoded), or None when there was none.

    Batches are tokenised here (the fast tokenizer is not thread-safe) and run in the lanes; one
    more batch than lanes is in flight, so a lane never waits for this thread.
    """
    t_first = None
    in_flight: deque[tuple[list[DecodeOutcome], cf.Future | None]] = deque()

    def write_oldest() -> None:
        batch, future = in_flight.popleft()
        try:
            results = future.result() if future is not None else []
        except Exception:  # noqa: BLE001 - find the study the model fails on; the others are scored
            batch, results = _one_by_one(predictor, batch, generate)
        writer.write_batch(batch, results)
        bar.update(len(batch))

    for batch in batches:
        t_first = t_first or time.perf_counter()
        good = [o.prepared for o in batch if o.prepared is not None]
        future = pool.submit(predictor.run_batch, good, generate, predictor.batch_inputs(good)) if good else None
        in_flight.append((batch, future))
        if len(in_flight) > lanes:
            write_oldest()
    while in_flight:
        write_oldest()
    return t_first


def _one_by_one(predictor, batch: list[DecodeOutcome], generate: bool) -> tuple[list[DecodeOutcome], list]:
    """A batch the model raised on, run study by study: a study that fails alone becomes its error."""
    outcomes, results = [], []
    for outcome in batch:
        if outcome.prepared is not None:
            try:
                results.extend(predictor.run_batch([outcome.prepared], generate))
            except Exception as err:  # noqa: BLE001
                first = outcome.prepared.sources[0].path or outcome.study.study_id
                outcome = DecodeOutcome(outcome.study, error=InputError(
                    first, f"the model failed on this study: {type(err).__name__}: {err}", outcome.study.study_id,
                    stage="model"))
        outcomes.append(outcome)
    return outcomes, results


def _summary(writer: ResultWriter, found: int, already_done: int, t0: float, t_first: float | None,
             out: Path) -> dict:
    """The run's summary dict, also printed as one line on stderr."""
    counts = writer.counts
    t_end = time.perf_counter()
    seconds = t_end - t0
    scored = counts["scored"]
    steady = scored / (t_end - t_first) if t_first is not None and scored else None
    files = {"used": counts["used"], "skipped": counts["skipped_files"], "failed": counts["failed_files"]}
    summary = {"found": found, "scored": scored, "failed": counts["failed"], "skipped": already_done,
               "files": files, "output_errors": counts["output_errors"],
               "seconds": round(seconds, 2), "studies_per_s": round(scored / seconds, 3) if seconds else 0.0,
               "steady_studies_per_s": round(steady, 3) if steady else None,
               "out": str(out), "errors": str(writer.errors.path), "skipped_inputs": str(writer.skipped.path)}
    print(f"mmdx score: studies: scored {scored}, failed {counts['failed']}, already done {already_done} of "
          f"{found}; files: used {files['used']}, skipped {files['skipped']}, failed {files['failed']}; "
          f"{seconds:.1f} s -> {out} (errors: {writer.errors.path}, skipped: {writer.skipped.path})",
          file=sys.stderr, flush=True)
    return summary


def _cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers(device) -> int:
    """Decode processes when none are asked for: with a GPU model, every core but one (the main
    process feeds the GPU); with a CPU model, a third of the cores, at least 1. A JPEG 2000 study
    decodes at reduced resolution in about a quarter of its fp32 forward pass (16 vs 60-70
    core-ms, docs/benchmarks.md, "Inference"); other syntaxes decode in full (70-130 ms for a
    2000 px JPEG-LS or lossless JPEG film), hence the margin."""
    cores = _cores()
    return max(1, cores - 1) if device.type != "cpu" else max(1, round(cores / 3))


def model_lanes(device, threads: int | None = None) -> int:
    """Batches a model runs at once while scoring: on a CPU ``threads``, each single-threaded; on a
    GPU one. The default is the process's torch thread count: the cores, or what OMP_NUM_THREADS /
    ``torch.set_num_threads`` say (torchrun sets 1 per process when it starts several)."""
    import torch

    return 1 if device.type != "cpu" else max(1, threads or torch.get_num_threads())


@contextmanager
def lane_pool(device, lanes: int) -> Iterator[cf.ThreadPoolExecutor]:
    """Threads that run the model's batches, ``lanes`` at once (see :func:`model_lanes`).

    On a CPU each lane runs one torch thread and the OS shares the cores between the lanes and the
    decode workers. One model with several OpenMP threads instead stalls at every barrier while a
    worker holds one of its cores (2-3x slower on 2 cores under load), and single-threaded lanes
    also waste no time in barriers when nothing else runs (docs/benchmarks.md, "Inference").
    ``torch.set_num_threads`` also sets the process-wide default, so the caller's count is restored.
    """
    import torch

    before = torch.get_num_threads()
    if device.type == "cpu":
        init, args = torch.set_num_threads, (1,)
    elif device.type == "cuda" and device.index is not None:
        init, args = torch.cuda.set_device, (device,)  # the current device is per thread
    else:
        init, args = None, ()
    pool = cf.ThreadPoolExecutor(lanes, thread_name_prefix="mmdx-model", initializer=init, initargs=args)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if device.type == "cpu":
            torch.set_num_threads(before)


def _batches(outcomes: Iterable[DecodeOutcome], size: int) -> Iterator[list[DecodeOutcome]]:
    batch: list[DecodeOutcome] = []
    good = 0
    for outcome in outcomes:
        batch.append(outcome)
        good += outcome.prepared is not None
        if good == size:
            yield batch
            batch, good = [], 0
    if batch:
        yield batch



def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="study", dynamic_ncols=True, smoothing=0.1,
                desc="mmdx score")
