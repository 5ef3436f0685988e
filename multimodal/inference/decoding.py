"""The decode pool of batch scoring: studies prepared in worker processes, surviving native crashes.

:class:`StudyDecoder` yields one :class:`DecodeOutcome` per study, in input order. Whatever goes
wrong with one study (a decoder error, a segfaulting codec, a result that cannot be sent back
between processes) becomes that study's outcome; the pool goes on. Workers exit when the process
that started them dies, even by SIGKILL (they watch it through a pidfd), so that nothing is left
behind; the forkserver and multiprocessing's resource tracker then see their pipes close and exit too.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

from multimodal.inference.sources import InputError, SkippedInput, StudyInput
from preprocessing.errors import ImageReadError, MmdxError

# Test-only fault injection: a decode worker whose study has a file matching this glob calls
# os.abort(), as a segfaulting native decoder would. Read when a decoder starts and sent with each
# task (the forkserver outlives environment changes), never part of a public signature.
FAULT_INJECT_ENV = "MMDX_FAULT_INJECT_CRASH"
CRASH_REASON = "the decoder process died while reading this study (native crash: segfault or abort)"


@dataclass
class DecodeOutcome:
    """A study as the decode pool leaves it: ``prepared`` (a PreparedStudy; its ``failed`` and
    ``skipped`` list files it went without), or ``error`` (why the study cannot be scored) with
    ``file_errors`` (its other unreadable files) and ``skipped`` (files not tried)."""

    study: StudyInput
    prepared: object | None = None
    error: InputError | None = None
    file_errors: list[InputError] = field(default_factory=list)
    skipped: list[SkippedInput] = field(default_factory=list)


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
        self.crash_glob = os.environ.get(FAULT_INJECT_ENV)
        self.pending = deque(studies)
        self.window: deque[tuple[StudyInput, cf.Future]] = deque()
        self.pool = self._start_pool() if self.workers else None
        self._fill()

    def __iter__(self) -> Iterator[DecodeOutcome]:
        if self.pool is None:
            while self.pending:
                yield _prepare_safely(self.prepare, self.pending.popleft(), self.crash_glob)
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
            except Exception as err:  # noqa: BLE001 - e.g. a result that cannot be pickled back
                outcome = _failed(study, f"could not be passed between processes: {type(err).__name__}: {err}")
            self._fill()
            yield outcome

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> StudyDecoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _submit(self, study: StudyInput) -> cf.Future:
        return self.pool.submit(_prepare_safely, self.prepare, study, self.crash_glob)

    def _fill(self) -> None:
        while self.pool is not None and self.pending and len(self.window) < self.prefetch:
            study = self.pending.popleft()
            self.window.append((study, self._submit(study)))

    def _isolate(self, suspects: list[StudyInput]) -> Iterator[DecodeOutcome]:
        """After a crash: rerun each suspect alone; the one that crashes again has failed."""
        self._restart_pool()
        for suspect in suspects:
            try:
                yield self._submit(suspect).result()
            except BrokenProcessPool:
                yield _failed(suspect, CRASH_REASON)
                self._restart_pool()
            except Exception as err:  # noqa: BLE001
                yield _failed(suspect, f"could not be passed between processes: {type(err).__name__}: {err}")
        self._fill()

    def _start_pool(self) -> cf.ProcessPoolExecutor:
        # forkserver: workers fork from a clean server process, not from this one (which holds
        # the model and its threads), so a respawn after a crash is quick and safe.
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        context = mp.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(["multimodal.inference.prepare"])
        pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=_init_worker,
                                      initargs=(os.getpid(),))
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


def _init_worker(parent_pid: int) -> None:
    # One thread per worker process: OpenCV's own pool (a thread per core) would fight the model
    # for cores. The worker imports no torch (multimodal.inference.prepare), so that is the only pool.
    import cv2

    cv2.setNumThreads(1)
    threading.Thread(target=_exit_with, args=(parent_pid,), name="mmdx-parent-watch", daemon=True).start()


def _exit_with(parent_pid: int) -> None:
    """End this worker as soon as ``parent_pid`` (the scoring process) is gone, however it died."""
    import select
    import time

    try:
        fd = os.pidfd_open(parent_pid)
    except (AttributeError, OSError):  # no pidfd (not Linux >= 5.3): poll
        fd = None
    if fd is not None:
        select.select([fd], [], [])
    else:
        while _alive(parent_pid):
            time.sleep(1.0)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prepare_safely(prepare: Callable, study: StudyInput, crash_glob: str | None = None) -> DecodeOutcome:
    """Run ``prepare`` on one study; anything that goes wrong becomes its outcome, never an exception."""
    if crash_glob and any(fnmatch(Path(p).name, crash_glob) for p in study.paths):
        os.abort()
    from multimodal.inference.prepare import StudyReadError

    try:
        return DecodeOutcome(study, prepared=prepare(study))
    except StudyReadError as err:
        first, *others = err.failed or [InputError(err.path, err.reason, study.study_id)]
        return DecodeOutcome(study, error=InputError(first.path, first.reason, study.study_id),
                             file_errors=others, skipped=err.skipped)
    except ImageReadError as err:
        return _failed(study, err.reason, err.path)
    except Exception as err:  # noqa: BLE001 - one bad study must not stop an archive-sized run
        return _failed(study, f"{type(err).__name__}: {err}")


def _failed(study: StudyInput, reason: str, path: str | None = None) -> DecodeOutcome:
    """The outcome of a study that failed as a whole: its first file carries the reason, the
    others are listed as failed with it (nothing was learned about them)."""
    first = path or (study.paths[0] if study.paths else "<no files>")
    others = [InputError(p, f"not scored: the study failed ({reason})", study.study_id, scope="file")
              for p in study.paths if p != first]
    return DecodeOutcome(study, error=InputError(first, reason, study.study_id), file_errors=others)
