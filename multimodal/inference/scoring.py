"""``mmdx score``: resumable, exactly-once, fault-tolerant batch scoring of folders, manifests, lists.

Flow: discover studies (header-only reads) → skip those already in the output or the error log →
decode + preprocess in worker processes (a prefetching window, so decoding overlaps the model) →
batches through :class:`~multimodal.inference.predictor.Predictor` → results appended, flushed and
fsync'd per batch (:class:`~multimodal.inference.results.JsonlLog`).

Guarantees:

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
import logging
import multiprocessing as mp
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from multimodal.inference.results import JsonlLog, convert_log, read_jsonl, safe_file_stem, write_heatmaps
from multimodal.inference.sources import InputError, StudyInput, discover_studies, shard
from multimodal.security import audit
from preprocessing.crypto import Keyring, seal_file
from preprocessing.errors import ConfigError, ImageReadError, MmdxError

log = logging.getLogger(__name__)

OUTPUT_FORMATS = ("jsonl", "csv", "parquet")
# Test-only fault injection: a decode worker whose study has a file matching this glob calls
# os.abort(), as a segfaulting native decoder would. Read in the parent and sent with each task.
FAULT_INJECT_ENV = "MMDX_FAULT_INJECT_CRASH"
CRASH_REASON = "the decoder process died while reading this study (native crash: segfault or abort)"


@dataclass
class _Outcome:
    """A decode worker's answer for one study: the prepared study or an error."""

    study: StudyInput
    prepared: object | None = None
    error: InputError | None = None


def score(model_dir: str | Path, inputs: Sequence[str | Path], out: str | Path, batch_size: int = 8,
          workers: int | None = None, threads: int | None = None, device: str | None = None,
          precision: str | None = None, sr_dir: str | Path | None = None, heatmap_dir: str | Path | None = None,
          output_format: str = "jsonl", generate: bool = True, progress: bool = True) -> dict:
    """Score every study found in ``inputs``; return the summary (also printed as one line).

    ``out``: results file (``.jsonl``, ``.csv`` or ``.parquet`` per ``output_format``);
    errors go to ``<out>.errors.jsonl``. ``workers``: decode processes (None: see
    :func:`default_workers`; 0 decodes in this process, without crash isolation). ``threads``: a
    CPU model's batches in flight at once, one torch thread each (None: the torch thread count; see
    :func:`model_lanes`). ``sr_dir``: one DICOM SR per DICOM study; ``heatmap_dir``: ``.npz`` heat maps +
    PNG overlays of positives.
    Summary keys: ``found``, ``scored``, ``failed``, ``skipped`` (done by an earlier run),
    ``seconds``, ``studies_per_s`` (over the whole call), ``steady_studies_per_s`` (from the first
    batch on, i.e. without start-up: discovery, model load, the first batch's decoding), ``out``,
    ``errors``.
    """
    from multimodal.inference.predictor import Predictor, resolve_device
    from multimodal.inference.prepare import make_preparer
    from multimodal.models.configuration import MultimodalConfig

    if output_format not in OUTPUT_FORMATS:
        raise ConfigError("output_format", f"expected one of {OUTPUT_FORMATS}, got {output_format!r}")
    if batch_size < 1:
        raise ConfigError("batch_size", f"must be >= 1, got {batch_size}")
    out = Path(out)
    rank, world = _rank_and_world()
    log_path = _log_path(out, output_format)
    if world > 1:
        log_path = log_path.with_name(f"{log_path.name}.part-{rank}")
    t0 = time.perf_counter()
    dev = rank_device(resolve_device(device))
    workers = default_workers(dev) if workers is None else workers

    found = discover_studies(inputs)
    studies = shard(found.studies, rank, world)
    results = JsonlLog(log_path, key="study_id")
    errors = JsonlLog(errors_path(out if world == 1 else log_path), key="key")
    try:
        failed = errors.append(e.to_dict() for e in found.errors if rank == 0)
        todo = [s for s in studies if s.study_id not in results.done and s.study_id not in errors.done]
        prepare = make_preparer(MultimodalConfig.load(model_dir), keep_headers=sr_dir is not None,
                                fault_inject=os.environ.get(FAULT_INJECT_ENV))
        dev_lanes = model_lanes(dev, threads)
        scored, t_first = 0, None

        def write(batch: list[_Outcome], good: list, future: cf.Future | None) -> None:
            """Wait for a batch's results; append them and its errors to the logs."""
            nonlocal scored, failed
            bad = [o.error for o in batch if o.error is not None]
            batch_results = future.result() if future is not None else []
            for prepared, result in zip(good, batch_results):
                bad.extend(_write_extras(prepared, result, sr_dir, heatmap_dir))
            scored += results.append(r.to_dict() for r in batch_results)
            failed += errors.append(e.to_dict() for e in bad if e.stage != "sr")
            errors.append(e.to_dict() for e in bad if e.stage == "sr")
            bar.update(len(batch))

        # The decoder starts decoding on construction: the model loads meanwhile. Batches are
        # tokenised here (the fast tokenizer is not thread-safe), run in the lanes, and written in
        # order; one more batch than lanes is in flight, so a lane never waits for this thread.
        with StudyDecoder(todo, prepare, workers, prefetch=(dev_lanes + 2) * batch_size) as decoder, \
                _progress(len(todo), progress and rank == 0) as bar, lane_pool(dev, dev_lanes) as lanes:
            predictor = Predictor.from_pretrained(model_dir, device=dev, precision=precision)
            in_flight: deque[tuple[list[_Outcome], list, cf.Future | None]] = deque()
            for batch in _batches(decoder, batch_size):
                t_first = t_first or time.perf_counter()  # model loaded, first batch decoded
                good = [o.prepared for o in batch if o.error is None]
                future = None
                if good:
                    future = lanes.submit(predictor.run_batch, good, generate, predictor.batch_inputs(good))
                in_flight.append((batch, good, future))
                if len(in_flight) > dev_lanes:
                    write(*in_flight.popleft())
            while in_flight:
                write(*in_flight.popleft())
    finally:
        results.close()
        errors.close()
    if world > 1:
        _finish_distributed(out, output_format, rank, world)
    elif output_format != "jsonl":
        convert_log(log_path, out, output_format)
    t_end = time.perf_counter()
    seconds = t_end - t0
    steady = scored / (t_end - t_first) if t_first is not None and scored else None
    summary = {"found": len(studies), "scored": scored, "failed": failed, "skipped": len(studies) - len(todo),
               "seconds": round(seconds, 2), "studies_per_s": round(scored / seconds, 3) if seconds else 0.0,
               "steady_studies_per_s": round(steady, 3) if steady else None,
               "out": str(out if world == 1 else log_path), "errors": str(errors.path)}
    audit.record("score", model=predictor.model_info, detail={k: summary[k] for k in ("found", "scored", "failed")})
    print(f"mmdx score: scored {scored}, failed {failed}, skipped {summary['skipped']} (already done) "
          f"of {len(studies)} studies in {seconds:.1f} s -> {summary['out']} (errors: {errors.path})",
          file=sys.stderr, flush=True)
    return summary


def errors_path(out: str | Path) -> Path:
    """Where the error records of ``out`` go: ``<out>.errors.jsonl``."""
    out = Path(out)
    return out.with_name(out.name + ".errors.jsonl")


def _log_path(out: Path, output_format: str) -> Path:
    """The durable JSON-lines log: ``out`` itself, or beside a CSV/Parquet ``out`` with suffix .jsonl."""
    return out if output_format == "jsonl" else out.with_suffix(".jsonl")


def _rank_and_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def rank_device(device):
    """Under torchrun / accelerate launch, a bare ``cuda`` is this process's GPU: ``cuda:LOCAL_RANK``
    (modulo the GPUs it sees), so the ranks of a node do not all score on GPU 0."""
    import torch

    local_rank = os.environ.get("LOCAL_RANK")
    if device.type != "cuda" or device.index is not None or local_rank is None:
        return device
    return torch.device("cuda", int(local_rank) % max(1, torch.cuda.device_count()))


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


# ------------------------------------------------------------------------------------------------
# Decoding in worker processes, surviving native crashes


class StudyDecoder:
    """Prepares studies in worker processes and yields outcomes in input order.

    Work starts on construction (the pool is started and the first ``prefetch`` studies are
    submitted), so decoding overlaps whatever the caller does next: loading the model, then each
    model batch. A worker that dies breaks the pool: the pool is restarted and the studies that
    were in flight are retried one at a time; the one whose retry also kills its worker is yielded
    as failed. ``workers=0`` prepares in this process (no crash isolation).
    """

    def __init__(self, studies: Sequence[StudyInput], prepare: Callable, workers: int, prefetch: int):
        self.prepare = prepare
        self.workers = workers
        self.prefetch = max(prefetch, self.workers)
        self.pending = deque(studies)
        self.window: deque[tuple[StudyInput, cf.Future]] = deque()
        self.pool = self._start_pool() if self.workers else None
        self._fill()

    def __iter__(self) -> Iterator[_Outcome]:
        if self.pool is None:
            while self.pending:
                yield _prepare_safely(self.prepare, self.pending.popleft())
            return
        while self.window:
            study, future = self.window.popleft()
            try:
                outcome = future.result()
            except BrokenProcessPool:
                suspects = [study] + [s for s, _ in self.window]
                self.window.clear()
                yield from self._isolate(suspects)
                continue
            self._fill()
            yield outcome

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> StudyDecoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fill(self) -> None:
        while self.pool is not None and self.pending and len(self.window) < self.prefetch:
            study = self.pending.popleft()
            self.window.append((study, self.pool.submit(_prepare_safely, self.prepare, study)))

    def _isolate(self, suspects: list[StudyInput]) -> Iterator[_Outcome]:
        """After a crash: rerun each suspect alone; the one that crashes again has failed."""
        self._restart_pool()
        for suspect in suspects:
            try:
                yield self.pool.submit(_prepare_safely, self.prepare, suspect).result()
            except BrokenProcessPool:
                yield _Outcome(suspect, error=InputError(_first_path(suspect), CRASH_REASON, suspect.study_id))
                self._restart_pool()
        self._fill()

    def _start_pool(self) -> cf.ProcessPoolExecutor:
        # forkserver: workers fork from a clean server process, not from this one (which holds
        # the model and its threads), so a respawn after a crash is quick and safe.
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        context = mp.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(["multimodal.inference.prepare"])
        pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=_init_worker)
        # Submitted first, so it runs before any study: if the pool breaks before it answers,
        # the workers cannot start at all (a broken setup, not a bad file).
        self.ping = pool.submit(_ping)
        return pool

    def _restart_pool(self) -> None:
        healthy = self.ping.done() and not self.ping.cancelled() and self.ping.exception() is None
        self.pool.shutdown(wait=False, cancel_futures=True)
        if not healthy:
            raise MmdxError("decode worker processes cannot start (see the error above); "
                            "rerun with workers=0 to decode in this process")
        self.pool = self._start_pool()


def _ping() -> bool:
    return True


def _init_worker() -> None:
    # One thread per worker process: OpenCV's own pool (a thread per core) would fight the model
    # for cores. The worker imports no torch (multimodal.inference.prepare), so that is the only pool.
    import cv2

    cv2.setNumThreads(1)


def _prepare_safely(prepare: Callable, study: StudyInput) -> _Outcome:
    """Run ``prepare`` on one study; a bad input becomes an error record, never an exception."""
    try:
        return _Outcome(study, prepared=prepare(study))
    except ImageReadError as err:
        return _Outcome(study, error=InputError(err.path, err.reason, study.study_id))
    except Exception as err:  # noqa: BLE001 - one bad study must not stop an archive-sized run
        return _Outcome(study, error=InputError(_first_path(study), f"{type(err).__name__}: {err}", study.study_id))


def _first_path(study: StudyInput) -> str:
    return study.paths[0] if study.paths else "<no files>"


def _batches(outcomes: Iterable[_Outcome], size: int) -> Iterator[list[_Outcome]]:
    batch: list[_Outcome] = []
    good = 0
    for outcome in outcomes:
        batch.append(outcome)
        good += outcome.error is None
        if good == size:
            yield batch
            batch, good = [], 0
    if batch:
        yield batch


# ------------------------------------------------------------------------------------------------
# Per-study extras: structured reports and heat maps


def _write_extras(prepared, result, sr_dir, heatmap_dir) -> list[InputError]:
    """Write the SR and heat maps of one study; a failure is an ``sr`` error, the result stays."""
    errors = []
    if heatmap_dir is not None:
        write_heatmaps(result, heatmap_dir, images=prepared.display_images())
    if sr_dir is not None and prepared.headers:
        # Imported here: highdicom takes ~0.6 s to import, which a run without SRs need not pay.
        from multimodal.inference.sr import to_structured_report

        try:
            sr = to_structured_report(result, prepared.headers)
            path = Path(sr_dir) / f"{safe_file_stem(result.study_id)}.dcm"
            path.parent.mkdir(parents=True, exist_ok=True)
            sr.save_as(path, enforce_file_format=True)
            seal_file(path, Keyring.from_env())
        except Exception as err:  # noqa: BLE001 - a source header highdicom rejects must not lose the result
            errors.append(InputError(_first_path_of(prepared), f"structured report not written: {err}",
                                     study_id=f"{result.study_id}#sr", stage="sr"))
    return errors


def _first_path_of(prepared) -> str:
    return prepared.sources[0].path if prepared.sources and prepared.sources[0].path else "<memory>"


# ------------------------------------------------------------------------------------------------
# Progress and scale-out


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="study", dynamic_ncols=True, smoothing=0.1,
                desc="mmdx score")


def _finish_distributed(out: Path, output_format: str, rank: int, world: int) -> None:
    """Barrier across ranks (when a process group can be formed), then rank 0 merges the parts."""
    if not os.environ.get("MASTER_ADDR"):
        log.warning("rank %d of %d done; no process group: run merge_parts(%r, %d) when all are done",
                    rank, world, str(out), world)
        return
    import datetime

    import torch.distributed as dist

    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(days=1))
    try:
        dist.barrier()
        if rank == 0:
            merge_parts(out, world, output_format)
        dist.barrier()
    finally:
        if owned:
            dist.destroy_process_group()


def merge_parts(out: str | Path, world_size: int, output_format: str = "jsonl") -> dict:
    """Merge ``<log>.part-<rank>`` results and errors into ``out`` and ``<out>.errors.jsonl``, each study once.

    Safe to run again (the merged files are rewritten atomically from the parts). Returns counts.
    """
    out = Path(out)
    log_path = _log_path(out, output_format)
    parts = [log_path.with_name(f"{log_path.name}.part-{r}") for r in range(world_size)]
    n_results = _merge_jsonl(parts, log_path, "study_id")
    n_errors = _merge_jsonl([errors_path(p) for p in parts], errors_path(out), "key")
    if output_format != "jsonl":
        convert_log(log_path, out, output_format)
    return {"results": n_results, "errors": n_errors, "out": str(out)}


def _merge_jsonl(sources: list[Path], target: Path, key: str) -> int:
    tmp = target.with_name(target.name + ".merging")
    tmp.unlink(missing_ok=True)
    with JsonlLog(tmp, key=key) as merged:
        for source in sources:
            merged.append(read_jsonl(source))
        count = len(merged.done)
    os.replace(tmp, target)
    return count
