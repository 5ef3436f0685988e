"""Shared timing and memory helpers for the benchmarks: warm-up, interleaved repeats, medians, peaks.

Every benchmark compares contenders measured in the same process and the same minutes: each
contender is warmed up first, then the contenders take turns (A, B, C, A, B, C, ...) so that a
burst of load from another process on this shared machine hits all of them alike, and the median
of the repeats is reported. Results are plain dicts so that a benchmark can print them as a table
and write them as JSON.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Timing:
    """Seconds of the repeats of one contender (warm-up excluded).

    ``seconds`` is wall-clock time, what a user waits. ``cpu_seconds`` is this process's CPU time
    (all threads): on a machine shared with other jobs it grows far less than wall time when the
    cores are contended, so it tells "slower" from "starved" (a spinning OpenMP thread counts too).
    """

    name: str
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_seconds)

    @property
    def spread(self) -> float:
        """(max - min) / median of the repeats: how noisy the measurement was."""
        return (max(self.seconds) - min(self.seconds)) / self.median


def setup_threads(threads: int) -> None:
    """Pin torch's intra-op threads (the benchmarks' '2 threads' condition) and keep inter-op at 1."""
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # inter-op threads can only be set before first use
        torch.set_num_interop_threads(1)


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work so that wall-clock time covers it; a no-op on CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    cases: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    device: torch.device | str = "cpu",
) -> dict[str, Timing]:
    """Time each callable ``repeats`` times, taking turns between cases, after ``warmup`` calls each.

    Returns seconds per call for each case name, in the order of ``cases``.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    synchronize(device)
    timings = {name: Timing(name) for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            fn()
            synchronize(device)
            timings[name].seconds.append(time.perf_counter() - start)
            timings[name].cpu_seconds.append(time.process_time() - cpu_start)
    return timings


def _read_status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _release_freed_memory() -> None:
    """Return memory freed by torch to the OS so that the next peak starts from what is live."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextlib.contextmanager
def peak_memory(device: torch.device | str = "cpu") -> Iterator[dict[str, float]]:
    """Measure the peak memory added by the enclosed code, in MiB, into the yielded dict's ``peak_mib``.

    CUDA: ``torch.cuda.max_memory_allocated`` above what was allocated on entry. CPU: the resident
    set's high-water mark above the resident set on entry (Linux: the mark is reset through
    ``/proc/self/clear_refs``; freed heap is trimmed first so that it cannot be reused unseen).
    tracemalloc is not used for models: it sees Python and NumPy allocations but not torch's CPU
    allocator. Where the mark cannot be reset, ``ru_maxrss`` is the fallback and ``exact`` is False.
    """
    result: dict[str, float] = {}
    dev = torch.device(device)
    if dev.type == "cuda":
        synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        start = torch.cuda.memory_allocated(dev)
        yield result
        synchronize(dev)
        result["peak_mib"] = (torch.cuda.max_memory_allocated(dev) - start) / 2**20
        result["exact"] = True
        return
    _release_freed_memory()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        start_kib, exact = _read_status_kib("VmRSS"), True
    except OSError:
        import resource

        start_kib, exact = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, False
    yield result
    if exact:
        peak_kib = _read_status_kib("VmHWM")
    else:
        import resource

        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["peak_mib"] = max(0, peak_kib - start_kib) / 1024
    result["exact"] = exact


def tensor_mib(tensors: Sequence[torch.Tensor] | Iterator[torch.Tensor]) -> float:
    """Total size of the given tensors in MiB (e.g. parameters plus optimizer state)."""
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def machine_description(device: torch.device | str = "cpu") -> dict[str, object]:
    """What the numbers were taken on: CPU model and cores, threads, load, torch version, GPU name."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    info: dict[str, object] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def format_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    """A GitHub-markdown table of ``rows`` restricted to ``columns``; floats get 3 significant digits."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_json(payload: Mapping[str, object], out: str | Path | None) -> Path | None:
    """Write ``payload`` as indented JSON to ``out`` (parents created); ``None`` writes nothing."""
    if out is None:
        return None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    return out
