"""Scale-out of batch scoring: ranks, their GPUs, and merging the ranks' parts into one output.

Under ``torchrun`` / ``accelerate launch`` (``RANK``/``WORLD_SIZE`` set), each rank scores the
studies whose id hashes to it (:func:`multimodal.inference.sources.shard`) and writes
``<log>.part-<rank>`` with its own errors and skipped files; after a barrier rank 0 merges the
parts into ``<out>`` without duplicates. Without a process group (no ``MASTER_ADDR``), run the
ranks, then :func:`merge_parts`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from multimodal.inference.results import JsonlLog, convert_log, read_jsonl
from multimodal.inference.writer import errors_path, skipped_path

log = logging.getLogger(__name__)


def rank_and_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def log_path(out: Path, output_format: str) -> Path:
    """The durable JSON-lines log: ``out`` itself, or beside a CSV/Parquet ``out`` with suffix .jsonl."""
    return out if output_format == "jsonl" else out.with_suffix(".jsonl")


def part_path(log: Path, rank: int) -> Path:
    return log.with_name(f"{log.name}.part-{rank}")


def rank_device(device):
    """Under torchrun / accelerate launch, a bare ``cuda`` is this process's GPU: ``cuda:LOCAL_RANK``
    (modulo the GPUs it sees), so the ranks of a node do not all score on GPU 0."""
    import torch

    local_rank = os.environ.get("LOCAL_RANK")
    if device.type != "cuda" or device.index is not None or local_rank is None:
        return device
    return torch.device("cuda", int(local_rank) % max(1, torch.cuda.device_count()))


def finish_distributed(out: Path, output_format: str, rank: int, world: int) -> None:
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
    """Merge the ranks' ``<log>.part-<rank>`` results, errors and skipped inputs into ``out``,
    ``<out>.errors.jsonl`` and ``<out>.skipped.jsonl``, each record once.

    Safe to run again (the merged files are rewritten atomically from the parts). Returns counts.
    """
    out = Path(out)
    log = log_path(out, output_format)
    parts = [part_path(log, r) for r in range(world_size)]
    n_results = _merge_jsonl(parts, log, "study_id")
    n_errors = _merge_jsonl([errors_path(p) for p in parts], errors_path(out), "key")
    n_skipped = _merge_jsonl([skipped_path(p) for p in parts], skipped_path(out), "key")
    if output_format != "jsonl":
        convert_log(log, out, output_format)
    return {"results": n_results, "errors": n_errors, "skipped": n_skipped, "out": str(out)}


def _merge_jsonl(sources: list[Path], target: Path, key: str) -> int:
    tmp = target.with_name(target.name + ".merging")
    tmp.unlink(missing_ok=True)
    with JsonlLog(tmp, key=key) as merged:
        for source in sources:
            merged.append(read_jsonl(source))
        count = len(merged.done)
    os.replace(tmp, target)
    return count
