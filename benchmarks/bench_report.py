"""How `mmdx report` scales with the number of studies: writing the report, and the study table in a
real browser (headless Chromium through Selenium, from disk).

    python benchmarks/bench_report.py                 # 200 and 2000 studies
    python benchmarks/bench_report.py --small         # 50 and 500 studies

Each study has one 256-px PNG view and heat maps for its positive observations (phantom
observations, random probabilities), so writing the report does the per-study work a real one
does. In the browser: the time from navigation to the table drawn (``performance.now()`` at the end
of the table script), and the median time of a filter change (observation + decision + minimum
probability, which re-filters, re-sorts and redraws one page). Without Chromium the browser columns
are left empty.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import format_table, machine_description, write_json  # noqa: E402
from multimodal.inference.results import ObservationResult, SourceImage, StudyResult, safe_file_stem  # noqa: E402
from multimodal.report import write_report  # noqa: E402
from preprocessing.vocab import PHANTOM_OBSERVATIONS  # noqa: E402

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def synthetic_results(folder: Path, studies: int, seed: int = 0) -> tuple[Path, Path]:
    """``results.jsonl`` and a heat-map folder for ``studies`` studies sharing one 256-px PNG view."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    view = folder / "view.png"
    Image.fromarray(rng.integers(0, 255, (256, 256), dtype=np.uint8)).save(view)
    heat_dir = folder / "heatmaps"
    heat_dir.mkdir(exist_ok=True)
    names = list(PHANTOM_OBSERVATIONS)
    with open(folder / "results.jsonl", "w") as f:
        for n in range(studies):
            probs = rng.random(len(names))
            result = StudyResult(
                study_id=f"study-{n:06d}", model={"name": "bench", "version": "0", "config_hash": "0"},
                observations={k: ObservationResult(float(p), 0.5, bool(p >= 0.5)) for k, p in zip(names, probs)},
                sources=[SourceImage(str(view), 256, 256, square_to_pixels=(256.0, 0.0, 256.0, 0.0))])
            np.savez_compressed(heat_dir / f"{safe_file_stem(result.study_id)}.npz",
                                heatmaps=rng.random((len(names), 8, 8)).astype(np.float32), observations=np.array(names))
            f.write(json.dumps(result.to_dict()) + "\n")
    return folder / "results.jsonl", heat_dir


def browser_times(index: Path, repeats: int) -> dict[str, float] | None:
    """Milliseconds to the first drawn table and per filter change, in headless Chromium; None without it."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                f"--user-data-dir={tempfile.mkdtemp(prefix='mmdx-bench-')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get(index.as_uri())
        loaded = driver.execute_script("return performance.now()")
        changes = []
        for r in range(repeats):
            changes.append(driver.execute_script("""
                const t0 = performance.now();
                const set = (id, value) => { const e = document.getElementById(id); e.value = value;
                                             e.dispatchEvent(new Event('change')); };
                set('f-observation', arguments[0]); set('f-decision', 'positive'); set('f-pmin', '0.7');
                set('f-decision', ''); set('f-pmin', '');
                return (performance.now() - t0) / 5;""", list(PHANTOM_OBSERVATIONS)[r % len(PHANTOM_OBSERVATIONS)]))
        return {"first_draw_ms": round(loaded, 1), "filter_change_ms": round(statistics.median(changes), 2)}
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="50 and 500 studies instead of 200 and 2000")
    parser.add_argument("--repeats", type=int, default=10, help="filter changes timed per size (default: 10)")
    parser.add_argument("--out", default=None, help="JSON results file (default: none)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mmdx-bench-report-") as tmp:
        for studies in ((50, 500) if args.small else (200, 2000)):
            results, heat_dir = synthetic_results(Path(tmp) / str(studies), studies)
            start = time.perf_counter()
            index = write_report(results, Path(tmp) / f"report-{studies}", images=heat_dir)
            seconds = time.perf_counter() - start
            data_kib = (index.parent / "data" / "studies.js").stat().st_size / 1024
            rows.append({"studies": studies, "write_s": round(seconds, 2),
                         "write_ms_per_study": round(1000 * seconds / studies, 1),
                         "index_data_kib": round(data_kib, 1), **(browser_times(index, args.repeats) or {})})
    print(format_table(rows, ["studies", "write_s", "write_ms_per_study", "index_data_kib", "first_draw_ms",
                              "filter_change_ms"]))
    write_json({"machine": machine_description(), "results": rows}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
