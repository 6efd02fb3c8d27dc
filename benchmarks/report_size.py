"""How big a `rankiqa score --report` gets for a large folder, and what the report adds to scoring time.

Run from the repository root:

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/report_size.py --entries 5000 \
        --photos ../shared/data/pristine/train2 --limit 20

1. The HTML: ``rankiqa.report.score_report_html`` for ``--entries`` synthetic cards shaped exactly
   like the ones ``write_score_report`` writes (path, score, spread, thumbnail and heat-map URLs,
   thumbnail size), seeded scores. Prints its size in bytes.
2. The pictures (with ``--photos``): the first ``--limit`` photos of a folder are scored with
   ``--model`` with a report; prints the mean thumbnail and heat-map sizes per photo and their
   total extrapolated to ``--entries`` photos. With ``--repeats`` > 0 (default 2) it then times
   scoring without and with the report (interleaved, after one warm-up round): median s per photo.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from pathlib import Path

import numpy as np

from _timing import time_interleaved
from rankiqa.report import score_report_html
from rankiqa.score import expand_paths, load_model, report_scores


def synthetic_html_size(entries: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    cards = [{"path": f"/home/someone/Pictures/2026/holiday/IMG_{i:05d}.jpg", "score": round(float(s), 6),
              "spread": round(float(abs(d)), 6), "mos": None, "patches": 30,
              "thumb": f"report_files/thumbs/{i:06d}.jpg", "heat": f"report_files/heatmaps/{i:06d}.jpg",
              "tw": 240, "th": 160}
             for i, (s, d) in enumerate(zip(rng.normal(8, 2, entries), rng.normal(0.3, 0.1, entries)))]
    skipped = [(f"/home/someone/Pictures/2026/holiday/broken_{i}.jpg", "not an image (unrecognised format)")
               for i in range(entries // 100)]
    return len(score_report_html(cards, skipped).encode("utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--photos", help="folder of photos for the picture sizes and timings")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--model", default="default")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    html_bytes = synthetic_html_size(args.entries)
    print(f"HTML for {args.entries} cards (+{args.entries // 100} skipped): {html_bytes / 1e6:.2f} MB "
          f"({html_bytes / args.entries:.0f} bytes per card)")
    if not args.photos:
        return
    files = [str(p) for p in expand_paths([args.photos])[0][: args.limit]]
    scorer = load_model(args.model)
    quiet = lambda line: None  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        report_scores(scorer, files, log=quiet, report=Path(tmp) / "report.html")
        thumbs = [p.stat().st_size for p in (Path(tmp) / "report_files" / "thumbs").iterdir()]
        heats = [p.stat().st_size for p in (Path(tmp) / "report_files" / "heatmaps").iterdir()]
        print(f"{len(files)} photos from {args.photos}, model {args.model}:")
        print(f"  thumbnail {np.mean(thumbs) / 1e3:.1f} kB, heat map {np.mean(heats) / 1e3:.1f} kB per photo; "
              f"for {args.entries} photos: {(np.mean(thumbs) + np.mean(heats)) * args.entries / 1e6:.0f} MB of pictures")
        if args.repeats < 1:
            return
        times = time_interleaved({
            "score": lambda: report_scores(scorer, files, log=quiet),
            "score + report": lambda: report_scores(scorer, files, log=quiet, report=Path(tmp) / "again.html"),
        }, repeats=args.repeats)
    for name, values in times.items():
        print(f"  {name:<15} {statistics.median(values) / len(files):.3f} s per photo (median of {len(values)})")

if __name__ == "__main__":
    main()
