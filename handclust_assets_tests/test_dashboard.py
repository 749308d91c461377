"""The lab dashboard, the preview reel, the activity overlays and the results notebook, on real results.

The session's `whole_graph` fixture ran the whole graph on a real Dagster instance (3 tiny synthetic clips, tiny
random V-JEPA 2 and OWLv2, the real MediaPipe models when they are on disk), the dashboard assets included. The page
is served by a real HTTP server and read by headless Chromium (Playwright, the system's /usr/bin/chromium).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import dagster as dg
import polars as pl
import pytest

from handclust_assets.lib.tables import connect
from handclust_assets.report import Results, build_dashboard, render_activity_overlay, render_preview_reel
from handclust_assets.report.build import SECTION_TITLES
from handclust_assets.video.frame_cache import FrameCache
from handclust_assets_tests.support import GRAPH_ANOMALIES, GRAPH_CLIPS

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CLIPS = GRAPH_CLIPS
ANOMALIES = GRAPH_ANOMALIES


def _meta(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    mats = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey(asset)]
    assert mats, f"{asset} was not materialized"
    return {k: v.value for k, v in mats[-1].materialization.metadata.items()}


@pytest.fixture(scope="module")
def results(whole_graph: dict) -> dict:
    return whole_graph


@pytest.fixture(scope="module")
def served(results: dict) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(results["root"] / "dashboard"))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_dashboard_asset_metadata(results: dict) -> None:
    meta = _meta(results["dash"], "lab_dashboard")
    index = Path(meta["path"])
    assert index == results["root"] / "dashboard" / "index.html" and index.exists()
    assert meta["url"] == index.as_uri()
    assert meta["sections"] == len(SECTION_TITLES)
    assert meta["section_errors"] == 0
    assert meta["images"] > 3 * 4 and meta["clusters"] > 0 and meta["fusion_clusters"] > 0 and meta["clips"] == 3
    # the tiny models make video + tools exist; pose/hands exist exactly when the MediaPipe models are on disk
    present = set(meta["modalities_present"].split(", "))
    assert {"scene", "video", "tools", "flow_rhythm", "egomotion", "fusion"} <= present
    if results["mediapipe"] is None:
        assert {"pose", "hands"} <= set(meta["modalities_absent"].split(", "))
    assert "**" in meta["takeaways"]


def test_dashboard_in_headless_chromium(results: dict, served: str, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (scripts/setup.sh installs Debian's chromium when run as root)")
    from playwright.sync_api import sync_playwright

    root = results["root"]
    r = Results(root)
    console, failed, bad_status = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda ex: console.append(f"pageerror: {ex}"))
            page.on("requestfailed", lambda q: failed.append(f"{q.url}: {q.failure}"))
            page.on("response", lambda s: bad_status.append(f"{s.status} {s.url}") if s.status >= 400 else None)
            page.goto(f"{served}/index.html", wait_until="networkidle")
            page.wait_for_function("Array.from(document.images).every(i => i.complete)")
            ids = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
            imgs = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")
            diag = page.eval_on_selector_all("img[id^=diag-], img[id^=detect-]",
                                             "els => els.map(e => [e.id, e.getAttribute('src'), e.naturalWidth])")
            text = page.inner_text("body")
            n_errors = page.locator(".error").count()
            shot = tmp_path / "lab_dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            page.select_option("#clip-jump", f"clip-{CLIPS[1][0]}")  # the page's script runs without errors
            page.click(f"#timeline-{CLIPS[1][0]}")
            assert page.locator("#lightbox.open img").count() == 1
        finally:
            browser.close()
    assert not console, console
    assert not failed, failed
    assert not bad_status, bad_status
    assert n_errors == 0
    expected = set(SECTION_TITLES) | {"toc", "modality-table", "ranking-table", "quality-table", "overview-table", "segment-map",
                                      "preview-reel", "phase-table", "gt-table", "grid-fusion"}
    expected |= {"anomaly-table", "anomaly-summary", "cost-table", "cost-summary"}
    for clip, _ in CLIPS:
        expected |= {f"clip-{clip}", f"timeline-{clip}", f"ssm-{clip}", f"rhythm-{clip}", f"anomaly-{clip}",
                     f"reps-{clip}", f"coverage-{clip}", f"overlay-{clip}", f"tools-{clip}", f"diag-{clip}",
                     f"detect-{clip}", f"cost-{clip}"}
    for m in r.clustered_modalities:
        expected |= {f"rank-{m}"}
    assert expected <= ids, sorted(expected - ids)
    assert len(imgs) > 12 and all(w > 0 for _, w in imgs), [s for s, w in imgs if not w]
    # EgoClean's diagnostics and detection figures of every clip, written by anomaly_diagnostics, load in the page
    assert len(diag) == 2 * len(CLIPS) and all(w > 0 for _, _, w in diag), diag
    for _, src, _ in diag:
        assert (root / "dashboard" / src).stat().st_size > 10_000 and src.startswith("diagnostics/")
    assert "lens covered" in text and "00:09–00:13" in text  # the known span in EgoClean's table
    labels = r.get("cluster_labels")
    fusion = labels.filter(pl.col("modality") == "fusion")
    assert fusion.height
    for row in fusion.iter_rows(named=True):
        assert f"C{row['cluster']} {row['label']}" in text, row
    assert "Take-aways" in text and shot.stat().st_size > 50_000
    if os.environ.get("HANDCLUST_SCREENSHOT_DIR"):
        out = Path(os.environ["HANDCLUST_SCREENSHOT_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, out / "lab_dashboard.png")


def _decoded_frames(path: Path) -> tuple[int, int, int, str]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return n, s.codec_context.width, s.codec_context.height, s.codec_context.name


def test_reel_and_overlays_decode_with_expected_frames(results: dict, tmp_path: Path) -> None:
    root = results["root"]
    meta = _meta(results["cross"], "preview_reel")
    reel = Path(meta["path"])
    n, w, h, codec = _decoded_frames(reel)
    assert codec == "h264" and n == meta["frames"] > 0 and w <= 480
    # the same plan from the plain function: title card per cluster + each example's frames
    v = render_preview_reel(root, out=tmp_path / "reel.mp4")
    assert v.n_frames == meta["frames"] == v.clusters * v.title_frames + sum(x[3] for x in v.examples)
    assert v.title_frames == 10 and all(0 < x[3] <= 15 for x in v.examples) and v.clusters == meta["clusters"]
    assert _decoded_frames(v.path)[0] == v.n_frames
    assert all(len([x for x in v.examples if x[0] == c]) <= 3 for c in {x[0] for x in v.examples})
    om = _meta(results["cross"], "activity_overlays")
    assert om["rendered"] == len(CLIPS) and om["unchanged"] == 0
    for clip, _ in CLIPS:
        n, w, h, codec = _decoded_frames(root / "dashboard" / "videos" / f"overlay_{clip}.mp4")
        assert codec == "h264" and n == len(FrameCache(root / "frames" / clip))
    o = render_activity_overlay(root, CLIPS[0][0], out=tmp_path / "overlay.mp4", window_s=10)
    assert _decoded_frames(o.path)[0] == o.n_frames == len(FrameCache(root / "frames" / CLIPS[0][0]))


def test_dashboard_survives_missing_and_empty_tables(results: dict, tmp_path: Path) -> None:
    con = connect(results["root"])
    some = {t: con.sql(f'select * from "{t}"').pl() for t in ("segments", "cross_clip_clusters", "clips")}
    # nothing at all, a few tables, and empty tables: every section is there and says why, nothing raises
    empty = {t: df.clear() for t, df in some.items()} | {"cluster_labels": pl.DataFrame(schema={
        "modality": pl.Utf8, "cluster": pl.Int64, "label": pl.Utf8})}
    for i, src in enumerate(({}, some, empty)):
        res = build_dashboard(tmp_path / f"root{i}", out_dir=tmp_path / f"dash{i}", source=src)
        assert not res.errors, res.errors
        assert res.sections == list(SECTION_TITLES)
        html = res.index.read_text()
        assert 'data-missing="sec-ranking"' in html and "Take-aways" in html
    absent = res.modalities_absent
    assert {"video", "tools", "pose", "hands"} <= set(absent) and all(absent.values())


def test_notebook_runs_clean_against_the_results(results: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbclient
    import nbformat

    monkeypatch.setenv("HANDCLUST_HOME", str(results["root"]))
    monkeypatch.setenv("HANDCLUST_CLIP", CLIPS[1][0])
    nb = nbformat.read(REPO / "notebooks" / "explore_results.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(results["tmp"])}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the timeline plot
    text = "".join(str(o.get("data", {}).get("text/plain", "")) + o.get("text", "") for o in outputs)
    assert "cross_clip_clusters" in text and "label" in text
    assert "pooled_as" in text and "source_exists" in text and "why" in text  # each video once: that cell ran
    assert "count_estimate" in text  # and its query of the `pooled` schema
