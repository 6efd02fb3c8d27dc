"""HTML reports: built from the same numbers as the CSVs, checked in headless Chromium (DOM, console,
network) with a screenshot of each under the test's tmp dir."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import stat

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from iqa_fixtures import build_noise_database
from rankiqa.cli import cli
from rankiqa.report import histogram_svg, markdown_table_rows, score_report_html, write_train_report

CARD_PATHS = "els => els.map(e => e.dataset.path)"
VISIBLE = "els => els.filter(e => !e.hidden).length"


def _chromium() -> str | None:
    if os.environ.get("RANKIQA_CHROMIUM"):
        return os.environ["RANKIQA_CHROMIUM"]
    return next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the 'test' extra")
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium executable found (apt-get install chromium, or set RANKIQA_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


def open_report(browser, path, width: int = 1200):
    """(page, console errors, requested URLs) of a report loaded from disk."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(120_000)  # generous: CI machines can be heavily loaded
    errors, requests = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors, requests


def wait_until(page, function: str, timeout_s: float = 120.0) -> None:
    """Poll ``page.evaluate(function)`` until it is true. Playwright's ``wait_for_function`` polls
    through ``eval``, which the reports' Content-Security-Policy (rightly) forbids."""
    import time

    deadline = time.monotonic() + timeout_s
    while not page.evaluate(function):
        assert time.monotonic() < deadline, f"timed out waiting for {function}"
        time.sleep(0.05)


def assert_offline_and_clean(errors, requests):
    assert errors == []
    assert requests and all(url.startswith(("file://", "data:")) for url in requests), requests


@pytest.fixture
def photo_folder(tmp_path):
    """Five images from smooth to noisy, one file that is not an image."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:72, 0:96]
    smooth = np.stack([xx * 2, yy * 3, (xx + yy)], axis=2).astype(np.float64)
    for i in range(5):
        noisy = np.clip(smooth + rng.normal(0, 25 * i, smooth.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"img{i}.png")
    (folder / "broken.png").write_text("not an image")
    return folder


def test_score_report_cards_sort_filter_viewer_and_skipped(browser, tmp_path, photo_folder, tiny_checkpoint):
    report, table = tmp_path / "out" / "report.html", tmp_path / "scores.csv"
    result = CliRunner().invoke(cli, ["score", str(photo_folder), str(tmp_path / "missing.jpg"), "--weights",
                                      str(tiny_checkpoint), "--patches", "3", "--patch-size", "32", "--format", "csv",
                                      "--output", str(table), "--report", str(report)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(table.open()))
    worst_first = [row["path"] for row in sorted(rows, key=lambda row: float(row["score"]))]
    scores = sorted(float(row["score"]) for row in rows)
    assert len(rows) == 5 and (tmp_path / "out" / "report_files" / "heatmaps").is_dir()

    page, errors, requests = open_report(browser, report)
    assert page.eval_on_selector_all("#cards .card", CARD_PATHS) == worst_first
    shown_scores = page.eval_on_selector_all("#cards .card .score", "els => els.map(e => e.textContent)")
    assert shown_scores == [f"{score:.3f}" for score in scores]
    assert page.eval_on_selector_all("#cards img", "els => els.every(e => e.loading === 'lazy')")
    wait_until(page, "() => Array.from(document.querySelectorAll('#cards img')).every(i => i.complete && i.naturalWidth > 0)")
    skipped = page.eval_on_selector_all("#skipped tbody tr", "els => els.map(e => e.textContent)")
    assert len(skipped) == 2 and any("broken.png" in row and "not an image" in row for row in skipped)
    assert any("missing.jpg" in row and "file not found" in row for row in skipped)

    page.click("#sort")
    assert page.eval_on_selector_all("#cards .card", CARD_PATHS) == worst_first[::-1]
    assert page.text_content("#sort") == "Order: best first"
    page.click("#sort")
    assert page.eval_on_selector_all("#cards .card", CARD_PATHS) == worst_first

    threshold = (scores[1] + scores[2]) / 2
    page.fill("#below", f"{threshold:.6f}")
    assert page.eval_on_selector_all("#cards .card", VISIBLE) == 2
    assert page.text_content("#shown") == "showing 2 of 5"
    assert page.get_attribute("#hist-threshold", "visibility") == "visible"
    page.click("#sort")  # the filter survives a re-sort
    assert page.eval_on_selector_all("#cards .card", VISIBLE) == 2
    page.fill("#below", "")
    assert page.eval_on_selector_all("#cards .card", VISIBLE) == 5
    page.screenshot(path=str(tmp_path / "score_report.png"), full_page=True)

    page.click("#cards .card")
    wait_until(page, "() => { const i = document.getElementById('viewer-img');"
                     " return i.complete && i.naturalWidth > 0 && i.src.includes('heatmaps'); }")
    assert page.is_visible("#viewer") and worst_first[-1] in page.text_content("#viewer-caption")
    page.screenshot(path=str(tmp_path / "score_report_viewer.png"))
    page.keyboard.press("Escape")
    assert not page.is_visible("#viewer")
    assert_offline_and_clean(errors, requests)
    assert (tmp_path / "score_report.png").stat().st_size > 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(report.stat().st_mode) == 0o666 & ~umask  # a normal file, not mkstemp's 0600


def test_calibrated_scores_are_shown_sorted_on_and_paths_are_text(browser, tmp_path):
    hostile = "a</script><script>alert(1)</script>.png"
    entries = [{"path": "b.png", "score": 1.0, "spread": 0.1, "mos": 2.5},
               {"path": hostile, "score": 3.0, "spread": 0.2, "mos": 4.25},
               {"path": "c.png", "score": -1.0, "spread": 0.3, "mos": 1.5}]
    text = score_report_html(entries, [("gone.png", "file not found")])
    assert "alert(1)</script>" not in text
    (tmp_path / "r.html").write_text(text, encoding="utf-8")
    page, errors, requests = open_report(browser, tmp_path / "r.html")
    assert page.eval_on_selector_all("#cards .card", CARD_PATHS) == ["c.png", "b.png", hostile]
    assert page.eval_on_selector_all("#cards .mos", "els => els.map(e => e.textContent)") == ["MOS 1.50", "MOS 2.50", "MOS 4.25"]
    assert "below MOS" in page.text_content(".controls")
    page.fill("#below", "3")
    assert page.eval_on_selector_all("#cards .card", VISIBLE) == 2
    assert_offline_and_clean(errors, requests)


def test_five_thousand_cards_render_with_lazy_thumbnails(browser, tmp_path):
    """The size and laziness check for a large folder (sizes printed by benchmarks/report_size.py)."""
    count = 5000
    rng = np.random.default_rng(1)
    thumbs = tmp_path / "big_files" / "thumbs"
    thumbs.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(thumbs / "000000.jpg")
    data = (thumbs / "000000.jpg").read_bytes()
    for index in range(1, count):
        (thumbs / f"{index:06d}.jpg").write_bytes(data)
    values = rng.normal(5, 2, count)
    entries = [{"path": f"/photos/{index:05d}.jpg", "score": float(v), "spread": 0.2, "mos": None,
                "thumb": f"big_files/thumbs/{index:06d}.jpg", "heat": f"big_files/thumbs/{index:06d}.jpg",
                "tw": 32, "th": 24} for index, v in enumerate(values)]
    report = tmp_path / "big.html"
    report.write_text(score_report_html(entries, []), encoding="utf-8")
    assert report.stat().st_size < 2_000_000
    page, errors, requests = open_report(browser, report)
    shown = page.eval_on_selector_all("#cards .card", "els => els.map(e => +e.dataset.value)")
    assert len(shown) == count and shown == sorted(shown)
    thumbnails = [url for url in requests if "/thumbs/" in url]
    assert 0 < len(thumbnails) < count // 10  # lazy: only the cards near the viewport load
    page.fill("#below", "3")
    assert page.eval_on_selector_all("#cards .card", VISIBLE) == int((values < 3).sum())
    page.screenshot(path=str(tmp_path / "big_report.png"))
    assert_offline_and_clean(errors, requests)


def test_benchmark_report_table_plot_bars_and_links(browser, tmp_path):
    csv_path = build_noise_database(tmp_path / "db", n_references=3, levels=3)
    out = tmp_path / "bench"
    result = CliRunner().invoke(cli, ["benchmark", "--database", "csv", "--root", str(csv_path), "--model", "tiny",
                                      "--out", str(out), "--cache", str(tmp_path / "cache"), "--patches", "2",
                                      "--patch-size", "32", "--device", "cpu", "--report"])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output
    table = list(csv.DictReader((out / "table.csv").open()))
    page, errors, requests = open_report(browser, out / "report.html")
    cells = page.eval_on_selector_all("#paper tbody tr", "els => els.map(e => Array.from(e.cells).map(c => c.textContent))")
    assert [row[0] for row in cells] == [row["subset"] for row in table] and cells[0][0] == "ALL"
    assert [row[2] for row in cells] == [f"{float(row['SRCC_median']):.3f}" for row in table]
    assert page.eval_on_selector("section img", "i => i.complete && i.naturalWidth > 0")
    assert page.locator("svg.bars rect").count() == len(table)
    links = page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
    assert {"table.csv", "per_split.csv", "predictions.csv", "table.md"} <= set(links)
    assert all((out / link).is_file() for link in links)
    page.screenshot(path=str(tmp_path / "benchmark_report.png"), full_page=True)
    assert_offline_and_clean(errors, requests)


def test_train_report_curves_and_per_type_table(browser, tmp_path):
    from test_train import NoiseSets, _config

    from rankiqa.train import train

    result = train(_config(tmp_path), NoiseSets(), NoiseSets(n_refs=2, seed=1), progress=False)
    report = result.run_dir / "report.html"
    per_type = list(csv.DictReader((result.run_dir / "val_per_type.csv").open()))
    text = report.read_text(encoding="utf-8")
    assert 'http-equiv="refresh"' not in text  # finished: no self-reload
    page, errors, requests = open_report(browser, report)
    rows = page.eval_on_selector_all("#per-type tbody tr", "els => els.map(e => Array.from(e.cells).map(c => c.textContent))")
    assert rows == [[r["distortion"], r["sets"], r["srcc"], r["pair_accuracy"]] for r in per_type]
    assert [row[0] for row in rows] == ["noise_a", "noise_b"]
    summary = page.text_content("#summary")
    assert "12 of 12" in summary and f"{result.best_srcc:.4f}" in summary
    assert page.eval_on_selector("section img", "i => i.complete && i.naturalWidth > 0")
    page.screenshot(path=str(tmp_path / "train_report.png"), full_page=True)
    assert_offline_and_clean(errors, requests)


def test_unfinished_train_report_reloads_itself(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"backbone": "tiny", "loss": "pairwise", "total_steps": 100}))
    metrics = [{"step": 10, "loss": 0.5, "val_srcc": None}, {"step": 20, "loss": 0.4, "val_srcc": 0.25}]
    text = write_train_report(tmp_path, metrics).read_text(encoding="utf-8")
    assert '<meta http-equiv="refresh" content="60">' in text
    assert "20 of 100" in text and "0.2500 (step 20)" in text and "no validation yet" in text


def test_histogram_counts_match_numpy():
    values = np.random.default_rng(3).normal(0, 1, 200)
    svg = histogram_svg(values, "score")
    counts = [int(c) for c in re.findall(r": (\d+)</title>", svg)]
    expected, _ = np.histogram(values, bins=14, range=(values.min(), values.max()))
    assert counts == expected.tolist() and sum(counts) == 200


def test_markdown_table_is_parsed_cell_by_cell():
    title, rows, notes = markdown_table_rows("**T, m**\n\n| subset | images |\n|---|---|\n| ALL | 9 |\n\nCells: x")
    assert (title, rows, notes) == ("T, m", [["subset", "images"], ["ALL", "9"]], ["Cells: x"])


def test_reports_name_no_network_address():
    text = score_report_html([{"path": "a.png", "score": 1.0, "spread": 0.0}], [])
    assert not re.search(r"(https?:)?//[a-z]", text.replace("file:", ""))
