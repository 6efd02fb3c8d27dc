"""Static HTML reports that work offline from ``file://``: scored images, benchmarks, training runs.

Every report is one HTML file built from one template (``PAGE``): inline CSS and JavaScript, no
external URL, no CDN, and a Content-Security-Policy that forbids any fetch but the page's own
images. Plots are inline SVG or PNGs embedded as ``data:`` URIs. The only files a report needs
beside itself are the score report's thumbnails and heat maps, in the sibling folder
``<report name>_files/`` (JPEG, loaded lazily, so a report of 5,000 images opens at once).

* ``write_score_report``: one card per scored image (thumbnail, score, calibrated score when the
  model has one, spread over patches, path), worst first with a toggle, a "below score X" filter,
  a histogram, a larger view with the per-patch heat map on click, and the skipped files.
* ``write_benchmark_report``: the paper-format table, the scatter plot, per-type SRCC bars, CSV links.
* ``write_train_report``: loss and validation curves, progress, the per-type validation table.
"""
from __future__ import annotations

import base64
import csv
import html
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import quote

import numpy as np

from rankiqa.atomic import write_text_atomic

THUMB_SIDE = 240  # long side of a card's thumbnail, pixels
THUMB_QUALITY = 80  # JPEG quality of thumbnails
HEATMAP_QUALITY = 85  # JPEG quality of the heat maps (long side 768, see rankiqa.score.heatmap_overlay)
REPORT_GRID_CELLS = 8  # heat-map grid of up to 8 x 8 patches: about 2x the cost of scoring 30 patches

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
{refresh}<title>{title}</title>
<style>
:root {{ --bad: #c62828; --good: #2e7d32; --ink: #1d232a; --muted: #5f6b76; --line: #d8dee4; --bg: #f6f8fa; }}
* {{ box-sizing: border-box; }}
body {{ margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: #fff; }}
header {{ padding: 16px 24px 8px; border-bottom: 1px solid var(--line); background: var(--bg); }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} h2 {{ font-size: 16px; margin: 24px 0 8px; }}
main {{ padding: 8px 24px 40px; }}
.sub, .note {{ color: var(--muted); margin: 0; }}
.controls {{ display: flex; flex-wrap: wrap; gap: 16px; align-items: center; margin: 12px 0; }}
.controls label {{ display: flex; gap: 6px; align-items: center; }}
.controls input {{ width: 8em; padding: 4px 6px; }}
button {{ padding: 5px 12px; border: 1px solid var(--line); border-radius: 6px; background: #fff; cursor: pointer; }}
button:hover {{ background: var(--bg); }}
.cards {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 12px; }}
.card {{ border: 1px solid var(--line); border-radius: 8px; padding: 8px; cursor: pointer; background: #fff; }}
.card:hover {{ box-shadow: 0 2px 8px rgba(0,0,0,.12); }}
.card[hidden] {{ display: none; }}
.thumb {{ height: 150px; display: flex; align-items: center; justify-content: center; background: var(--bg); border-radius: 4px; overflow: hidden; }}
.thumb img {{ max-width: 100%; max-height: 150px; object-fit: contain; }}
.values {{ display: flex; gap: 8px; align-items: baseline; margin-top: 6px; }}
.score {{ font-size: 18px; font-weight: 600; }} .mos {{ color: var(--good); font-weight: 600; }}
.spread, .rank {{ color: var(--muted); font-size: 12px; }} .rank {{ margin-left: auto; }}
.path {{ font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; color: var(--muted); overflow-wrap: anywhere; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
th, td {{ border: 1px solid var(--line); padding: 4px 10px; text-align: right; }}
th {{ background: var(--bg); }} td:first-child, th:first-child {{ text-align: left; }}
tr.all td {{ font-weight: 600; }}
.skipped td, .skipped th {{ text-align: left; }}
.plot img {{ max-width: 100%; border: 1px solid var(--line); }}
svg text {{ font: 11px system-ui, sans-serif; fill: var(--ink); }}
.viewer {{ position: fixed; inset: 0; background: rgba(0,0,0,.75); display: flex; align-items: center; justify-content: center; z-index: 10; }}
.viewer[hidden] {{ display: none; }}
.viewer-box {{ background: #fff; border-radius: 8px; padding: 12px; max-width: 95vw; max-height: 95vh; overflow: auto; position: relative; }}
.viewer-bar {{ display: flex; gap: 12px; align-items: center; justify-content: space-between; margin-bottom: 8px; }}
.viewer-box img {{ display: block; min-width: min(60vw, 512px); max-width: 88vw; height: auto; max-height: 80vh; object-fit: contain; }}
a {{ color: #0b57d0; }}
</style>
</head>
<body>
<header><h1>{title}</h1><p class="sub">{subtitle}</p></header>
<main>
{body}
</main>
<script type="application/json" id="report-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

SCORE_BODY = """<section>
<h2>Distribution</h2>
{histogram}
<div class="controls">
<button id="sort" type="button" aria-pressed="false">Order: worst first</button>
<label>Show images below {key_label} <input id="below" type="number" step="any" placeholder="any"></label>
<span id="shown" class="note"></span>
</div>
<p class="note">Click a card for the per-patch heat map: each grid cell is tinted by its own score, red = lowest
in that image, green = highest. {protocol}</p>
<div id="cards" class="cards"></div>
</section>
{skipped}
<div id="viewer" class="viewer" hidden role="dialog" aria-modal="true">
<div class="viewer-box"><div class="viewer-bar"><span id="viewer-caption" class="path"></span>
<button id="viewer-close" type="button">Close</button></div>
<img id="viewer-img" alt="heat map">
<p class="note">Per-patch scores on a regular grid of crops (red = lowest in this image, green = highest).</p></div>
</div>"""

SCORE_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var cards = document.getElementById("cards");
  if (!cards) { return; }
  function fmt(v, digits) { return v === null || v === undefined ? "–" : Number(v).toFixed(digits); }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  var key = data.key;
  var items = data.entries.map(function (e, i) {
    var card = el("div", "card");
    card.dataset.value = e[key];
    card.dataset.path = e.path;
    card.tabIndex = 0;
    var box = el("div", "thumb");
    if (e.thumb) {
      var img = el("img");
      img.loading = "lazy"; img.decoding = "async"; img.alt = e.path; img.src = e.thumb;
      if (e.tw && e.th) { img.width = e.tw; img.height = e.th; }
      box.appendChild(img);
    } else { box.appendChild(el("span", "note", "no thumbnail")); }
    card.appendChild(box);
    var values = el("div", "values");
    values.appendChild(el("span", "score", fmt(e.score, 3)));
    if (e.mos !== null && e.mos !== undefined) { values.appendChild(el("span", "mos", "MOS " + fmt(e.mos, 2))); }
    values.appendChild(el("span", "spread", "± " + fmt(e.spread, 3)));
    values.appendChild(el("span", "rank", "#" + (i + 1)));
    card.appendChild(values);
    card.appendChild(el("div", "path", e.path));
    card.addEventListener("click", function () { openViewer(e); });
    card.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { openViewer(e); } });
    return { card: card, value: e[key] };
  });
  var worstFirst = true;
  var sortButton = document.getElementById("sort");
  function render() {
    var order = worstFirst ? items : items.slice().reverse();
    var fragment = document.createDocumentFragment();
    order.forEach(function (item) { fragment.appendChild(item.card); });
    cards.appendChild(fragment);
    sortButton.textContent = "Order: " + (worstFirst ? "worst first" : "best first");
    sortButton.setAttribute("aria-pressed", String(!worstFirst));
  }
  sortButton.addEventListener("click", function () { worstFirst = !worstFirst; render(); });
  var below = document.getElementById("below");
  var shown = document.getElementById("shown");
  var line = document.getElementById("hist-threshold");
  function filter() {
    var limit = parseFloat(below.value);
    var count = 0;
    items.forEach(function (item) {
      var visible = isNaN(limit) || item.value < limit;
      item.card.hidden = !visible;
      if (visible) { count += 1; }
    });
    shown.textContent = "showing " + count + " of " + items.length;
    if (line) {
      var svg = line.ownerSVGElement, lo = +svg.dataset.lo, hi = +svg.dataset.hi;
      var x0 = +svg.dataset.x0, x1 = +svg.dataset.x1;
      if (isNaN(limit) || hi <= lo) { line.setAttribute("visibility", "hidden"); }
      else {
        var x = x0 + (Math.min(Math.max(limit, lo), hi) - lo) / (hi - lo) * (x1 - x0);
        line.setAttribute("x1", x); line.setAttribute("x2", x); line.setAttribute("visibility", "visible");
      }
    }
  }
  below.addEventListener("input", filter);
  var viewer = document.getElementById("viewer");
  var viewerImg = document.getElementById("viewer-img");
  var caption = document.getElementById("viewer-caption");
  function openViewer(e) {
    viewerImg.src = e.heat || e.thumb || "";
    caption.textContent = e.path + "   score " + fmt(e.score, 3) +
      (e.mos !== null && e.mos !== undefined ? "   MOS " + fmt(e.mos, 2) : "") + "   spread " + fmt(e.spread, 3);
    viewer.hidden = false;
  }
  function closeViewer() { viewer.hidden = true; viewerImg.removeAttribute("src"); }
  document.getElementById("viewer-close").addEventListener("click", closeViewer);
  viewer.addEventListener("click", function (ev) { if (ev.target === viewer) { closeViewer(); } });
  document.addEventListener("keydown", function (ev) { if (ev.key === "Escape") { closeViewer(); } });
  render();
  filter();
})();
"""


# --------------------------------------------------------------------------------------------
# pieces shared by the reports


def page(title: str, subtitle: str, body: str, data: Any = None, script: str = "", refresh_s: int | None = None) -> str:
    """The whole HTML document: ``body`` (HTML) inside the template, ``data`` as embedded JSON."""
    payload = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}">\n' if refresh_s else ""
    return PAGE.format(title=html.escape(title), subtitle=subtitle, body=body, data=payload, script=script,
                       refresh=refresh)


def table_html(headers: Sequence[str] | None, rows: Sequence[Sequence[Any]], row_classes: Sequence[str] | None = None,
               table_id: str = "") -> str:
    """An HTML table (no header row when ``headers`` is None); cells are escaped text."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers or ())
    lines = []
    for index, row in enumerate(rows):
        cls = f' class="{row_classes[index]}"' if row_classes and row_classes[index] else ""
        lines.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table{ident}>{thead}<tbody>{''.join(lines)}</tbody></table>"


def png_data_uri(path: str | os.PathLike) -> str | None:
    """``data:image/png;base64,...`` of a PNG file, or None when it does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def links_html(folder: Path, names: Sequence[str]) -> str:
    """Relative links to those of ``names`` that exist in ``folder``."""
    found = [name for name in names if (folder / name).exists()]
    items = "".join(f'<li><a href="{quote(name)}">{html.escape(name)}</a></li>' for name in found)
    return f"<ul>{items}</ul>" if found else '<p class="note">none yet</p>'


def histogram_svg(values: Sequence[float], label: str, width: int = 640, height: int = 170) -> str:
    """Inline SVG histogram of ``values`` with a hidden threshold line (``#hist-threshold``) that
    the score report's filter moves; ``data-lo``/``data-hi`` give the value range of the x axis."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    bins = int(np.clip(np.sqrt(len(values)), 5, 40))
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    left, right, top, bottom = 40, width - 10, 10, height - 30
    peak = max(int(counts.max()), 1)
    step = (right - left) / bins
    bars = []
    for i, count in enumerate(counts):
        h = (bottom - top) * count / peak
        bars.append(f'<rect x="{left + i * step + 0.5:.1f}" y="{bottom - h:.1f}" width="{max(step - 1, 1):.1f}" '
                    f'height="{h:.1f}" fill="#5b8def"><title>{edges[i]:.3f} to {edges[i + 1]:.3f}: {count}</title></rect>')
    anchors = {0: "start", 1: "end"}
    digits = int(np.clip(np.ceil(-np.log10((hi - lo) / 4)) + 1, 2, 8))  # enough to tell the ticks apart
    ticks = "".join(f'<text x="{left + f * (right - left):.1f}" y="{bottom + 14}" text-anchor="{anchors.get(f, "middle")}">'
                    f'{lo + f * (hi - lo):.{digits}f}</text>' for f in (0, 0.25, 0.5, 0.75, 1))
    return (f'<svg id="histogram" class="histogram" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'data-lo="{lo}" data-hi="{hi}" data-x0="{left}" data-x1="{right}" role="img" aria-label="histogram">'
            f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>{"".join(bars)}{ticks}'
            f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{peak}</text>'
            f'<text x="{(left + right) / 2}" y="{height - 2}" text-anchor="middle">{html.escape(label)} '
            f'(higher is better), images per bin</text>'
            f'<line id="hist-threshold" x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#c62828" '
            f'stroke-width="2" visibility="hidden"/></svg>')


def bars_svg(labels: Sequence[str], values: Sequence[float], title: str, width: int = 640) -> str:
    """Inline SVG horizontal bars (e.g. SRCC per distortion type; range [min(0, values), 1])."""
    row, left, right = 18, 190, width - 60
    values = [float(v) for v in values]
    finite = [v for v in values if np.isfinite(v)]
    lo = min([0.0, *finite])
    height = row * len(labels) + 30
    zero = left + (0 - lo) / (1 - lo) * (right - left)
    parts = []
    for i, (label, value) in enumerate(zip(labels, values)):
        y = 6 + i * row
        parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{html.escape(str(label))}</text>')
        if np.isfinite(value):
            x = left + (value - lo) / (1 - lo) * (right - left)
            colour = "#2e7d32" if value >= 0.8 else "#f9a825" if value >= 0.5 else "#c62828"
            parts.append(f'<rect x="{min(x, zero):.1f}" y="{y + 2}" width="{abs(x - zero):.1f}" height="{row - 5}" '
                         f'fill="{colour}"><title>{html.escape(str(label))}: {value:.3f}</title></rect>')
            parts.append(f'<text x="{max(x, zero) + 4:.1f}" y="{y + 12}">{value:.3f}</text>')
        else:
            parts.append(f'<text x="{zero + 4:.1f}" y="{y + 12}">–</text>')
    axis_y = 6 + len(labels) * row
    parts.append(f'<line x1="{zero:.1f}" y1="4" x2="{zero:.1f}" y2="{axis_y}" stroke="#888"/>')
    parts.append(f'<text x="{(left + right) / 2}" y="{axis_y + 18}" text-anchor="middle">{html.escape(title)}</text>')
    return (f'<svg class="bars" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{html.escape(title)}">{"".join(parts)}</svg>')


def _generated() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --------------------------------------------------------------------------------------------
# rankiqa score --report


def score_report_html(entries: Sequence[dict[str, Any]], skipped: Sequence[tuple[str, str]], *,
                      title: str = "rankiqa score", protocol: str = "") -> str:
    """The score report for ``entries`` (dicts: path, score, spread, optional mos, thumb/heat
    relative URLs, tw/th thumbnail size) and ``skipped`` (path, reason) pairs.

    Cards are sorted worst first by the calibrated score when every entry has one, else by the raw
    score (the calibration map is monotone, so the order is the same); ties by path.
    """
    use_mos = bool(entries) and all(e.get("mos") is not None for e in entries)
    key = "mos" if use_mos else "score"
    entries = sorted(entries, key=lambda e: (e[key], e["path"]))
    key_label = "MOS" if use_mos else "score"
    skipped_html = ""
    if skipped:
        skipped_html = (f'<section><h2>Skipped ({len(skipped)})</h2><div class="skipped">'
                        + table_html(["file", "reason"], skipped, table_id="skipped") + "</div></section>")
    histogram = histogram_svg([e[key] for e in entries], key_label) if entries else ""
    body = SCORE_BODY.format(histogram=histogram, key_label=html.escape(key_label), protocol=html.escape(protocol),
                             skipped=skipped_html)
    subtitle = (f"{len(entries)} image(s) scored, {len(skipped)} skipped; higher is better. "
                f"Generated {_generated()}.")
    data = {"kind": "score", "key": key, "entries": list(entries)}
    return page(title, html.escape(subtitle), body, data, SCORE_SCRIPT)


def write_score_report(path: str | os.PathLike, scorer, scored: Sequence, skipped: Sequence = (),
                       log: Callable[[str], None] = print) -> Path:
    """Write the score report to ``path`` and its thumbnails and heat maps to ``<stem>_files/``.

    ``scored``/``skipped``: ``rankiqa.score.ImageScore`` results (a calibrated ``mos`` is shown when
    present). Each image file is read again for its thumbnail and its heat map (grid of up to
    ``REPORT_GRID_CELLS`` patches per side). A file that cannot be read again keeps its card without pictures.
    """
    import cv2
    from tqdm import tqdm

    from rankiqa.errors import UserError
    from rankiqa.imageio import read_for_scoring, write_image
    from rankiqa.score import heatmap_overlay

    path = Path(path)
    assets = path.parent / f"{path.stem}_files"
    url = quote(assets.name)
    entries = []
    for index, result in enumerate(tqdm(scored, desc="report", unit="img", leave=False, disable=len(scored) < 50)):
        entry = {"path": str(result.path), "score": round(float(result.score), 6), "spread": round(float(result.spread), 6),
                 "mos": _optional_float(getattr(result, "mos", None)), "patches": len(result.per_patch)}
        try:
            image = read_for_scoring(result.path)
        except (UserError, OSError, ValueError) as exc:
            log(f"report: no thumbnail for {result.path}: {exc}")
            entries.append(entry)
            continue
        height, width = image.shape[:2]
        scale = min(1.0, THUMB_SIDE / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        thumb = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale < 1 else image
        name = f"{index:06d}.jpg"
        write_image(assets / "thumbs" / name, thumb, quality=THUMB_QUALITY)
        rgb, positions, cells = scorer.grid_scores(image, max_cells=REPORT_GRID_CELLS)
        write_image(assets / "heatmaps" / name, heatmap_overlay(rgb, positions, cells, scorer.patch_size),
                    quality=HEATMAP_QUALITY)
        entry.update(thumb=f"{url}/thumbs/{name}", heat=f"{url}/heatmaps/{name}", tw=size[0], th=size[1])
        entries.append(entry)
    protocol = (f"Scores: mean over {scorer.patches} seeded {scorer.patch_size} px crops ({scorer.aggregate}); "
                f"spread: standard deviation over those crops.")
    text = score_report_html(entries, [(str(r.path), str(r.error)) for r in skipped], protocol=protocol)
    write_text_atomic(path, text)
    log(f"wrote {path} ({len(entries)} card(s); pictures in {assets})")
    return path


def _optional_float(value: Any) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


# --------------------------------------------------------------------------------------------
# rankiqa benchmark --report


BENCHMARK_FILES = ("table.md", "table.csv", "per_split.csv", "predictions.csv", "scatter.png")


def markdown_table_rows(markdown: str) -> tuple[str, list[list[str]], list[str]]:
    """(title, rows with the header first, notes) of a ``rankiqa.benchmark.to_markdown`` table."""
    lines = markdown.strip().splitlines()
    title = lines[0].strip("* ") if lines and lines[0].startswith("**") else ""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in lines if line.startswith("|") and not line.startswith("|---")]
    notes = [line for line in lines[1:] if line.strip() and not line.startswith("|")]
    return title, rows, notes


def write_benchmark_report(out_dir: str | os.PathLike, table, markdown: str) -> Path:
    """Write ``out_dir/report.html`` from a benchmark's summary ``table`` (``rankiqa.benchmark.summarise``)
    and its ``markdown`` (``to_markdown``): the table, per-type SRCC bars, ``scatter.png``, CSV links."""
    out_dir = Path(out_dir)
    title, rows, notes = markdown_table_rows(markdown)
    header, body_rows = rows[0], rows[1:]
    paper = table_html(header, body_rows, ["all" if row[0] == "ALL" else "" for row in body_rows], table_id="paper")
    bars = bars_svg(list(table["subset"]), list(table["SRCC_median"]), "SRCC (median over splits; higher is better)")
    scatter = png_data_uri(out_dir / "scatter.png")
    scatter_html = f'<div class="plot"><img alt="prediction vs MOS" src="{scatter}"></div>' if scatter else \
        '<p class="note">no scatter plot</p>'
    body = (f"<section><h2>Table</h2>{paper}" + "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
            + f"</section><section><h2>SRCC per distortion type</h2>{bars}</section>"
            + f"<section><h2>Prediction vs MOS (all test images pooled)</h2>{scatter_html}</section>"
            + f"<section><h2>Files</h2>{links_html(out_dir, BENCHMARK_FILES)}</section>")
    target = out_dir / "report.html"
    write_text_atomic(target, page(f"rankiqa benchmark: {title}", html.escape(f"Generated {_generated()}."), body,
                                   {"kind": "benchmark"}))
    return target


# --------------------------------------------------------------------------------------------
# rankiqa train: report.html in the run folder


TRAIN_FILES = ("metrics.csv", "val_per_type.csv", "config.json", "curves.png", "best.pt", "last.pt")
TRAIN_REFRESH_S = 60


def write_train_report(run_dir: str | os.PathLike, metrics: Sequence[dict[str, Any]]) -> Path:
    """Write ``run_dir/report.html``: progress, ``curves.png`` (loss and validation), the per-type
    validation table from ``val_per_type.csv``, the resolved config and links to the run's files.
    While the run is unfinished the page reloads itself every ``TRAIN_REFRESH_S`` seconds."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    total = config.get("total_steps")
    step = metrics[-1]["step"] if metrics else 0
    validated = [row for row in metrics if row.get("val_srcc") is not None]
    summary_rows = [("step", f"{step} of {total}" if total else step),
                    ("last training loss", metrics[-1]["loss"] if metrics else "–")]
    if validated:
        best = max(validated, key=lambda row: row["val_srcc"])
        summary_rows += [("last validation SRCC", f"{validated[-1]['val_srcc']:.4f} (step {validated[-1]['step']})"),
                         ("best validation SRCC", f"{best['val_srcc']:.4f} (step {best['step']})")]
    curves = png_data_uri(run_dir / "curves.png")
    curves_html = f'<div class="plot"><img alt="training curves" src="{curves}"></div>' if curves else \
        '<p class="note">no curves yet</p>'
    per_type_path = run_dir / "val_per_type.csv"
    per_type = list(csv.DictReader(per_type_path.open(encoding="utf-8"))) if per_type_path.is_file() else []
    if per_type:
        per_type_html = (table_html(["distortion", "sets", "SRCC", "pair accuracy"],
                                    [(r["distortion"], r["sets"], r["srcc"], r["pair_accuracy"]) for r in per_type],
                                    table_id="per-type")
                         + bars_svg([r["distortion"] for r in per_type], [float(r["srcc"]) for r in per_type],
                                    "validation SRCC per type (latest validation; higher is better)"))
    else:
        per_type_html = '<p class="note">no validation yet</p>'
    config_html = table_html(["option", "value"], [(k, json.dumps(v)) for k, v in config.items()], table_id="config")
    body = (f"<section><h2>Progress</h2>{table_html(None, summary_rows, table_id='summary')}</section>"
            f"<section><h2>Loss and validation</h2>{curves_html}</section>"
            f"<section><h2>Validation per distortion type</h2>{per_type_html}</section>"
            f"<section><h2>Files</h2>{links_html(run_dir, TRAIN_FILES)}</section>"
            f"<section><details><summary>Configuration</summary>{config_html}</details></section>")
    finished = bool(total) and step >= total
    subtitle = f"Run folder {run_dir}. Generated {_generated()}." + \
        ("" if finished else f" The page reloads every {TRAIN_REFRESH_S} s while the run is in progress.")
    target = run_dir / "report.html"
    write_text_atomic(target, page(f"rankiqa train: {config.get('backbone', '')} {config.get('loss', '')}".strip(),
                                   html.escape(subtitle), body, {"kind": "train"},
                                   refresh_s=None if finished else TRAIN_REFRESH_S))
    return target
