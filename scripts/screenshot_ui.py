#!/usr/bin/env python
"""Screenshots of the Dagster web UI on this code location, for a given HandClust home.

Starts `dagster-webserver` (or `dagster dev` with --dev, which also runs the daemon: sensors, schedules and
automation may then launch runs and write into the storage) with HANDCLUST_HOME (and DAGSTER_HOME =
<home>/dagster_home) pointing at the given home, waits until it answers, then opens in headless Chromium
(Playwright, the system's /usr/bin/chromium; never `playwright install`):

  - the global asset lineage (groups) and the lineage of each main group, zoomed to fit,
  - an asset's partitions page (default flow_rhythm), with its first partition opened,
  - an asset's overview and events (default cross_clip_entropy: its scores as metadata),
  - the lab_dashboard asset (path, URL and counts as metadata) and the runs list,

and writes one PNG per page into the output folder. Clip partitions missing from the instance are added first
(from the videos folder and the stored tables), so the partitions page has its keys.

    python scripts/screenshot_ui.py --home storage --out /tmp/ui_shots [--only runs] [--jpeg]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def ensure_partitions(home: Path) -> list[str]:
    """Add the clips found in the home (videos folder, stored tables) that the instance lacks."""
    import dagster as dg

    from handclust_assets.defs.partitions import clip_partitions
    from handclust_assets.lib.home import video_dir
    from handclust_assets.lib.tables import existing_partitions
    from handclust_assets.lib.video_folder import scan_videos

    keys = set(scan_videos(video_dir())) | set(existing_partitions(None, "clips"))
    with dg.DagsterInstance.get() as inst:
        have = set(inst.get_dynamic_partitions(clip_partitions.name))
        missing = sorted(keys - have)
        if missing:
            inst.add_dynamic_partitions(clip_partitions.name, missing)
        return missing


# the graph's <svg> and the first enclosing element that clips it (the visible viewport of the graph)
GRAPH_RECTS = """() => {
  const s = [...document.querySelectorAll('svg')].filter(x => +x.getAttribute('width') > 200)[0];
  if (!s) return null;
  let e = s.parentElement;
  while (e && getComputedStyle(e).overflow !== 'hidden') e = e.parentElement;
  const r = s.getBoundingClientRect(), v = (e || document.body).getBoundingClientRect();
  return {s: [r.width, r.height], v: [v.width, v.height]};
}"""


def dismiss_popups(page) -> None:
    """The UI's one-time 'Join the Dagster community' dialog covers the page: skip it."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.first.wait_for(state="visible", timeout=2500)
        skip.first.click()
        page.wait_for_timeout(300)
    except Exception:  # not shown (already dismissed in this browser context)
        pass


def fit_graph(page, timeout_s: float) -> None:
    """Wait for the asset graph, then zoom out until all of it is inside its viewport."""
    page.wait_for_function(f"({GRAPH_RECTS})() !== null", timeout=timeout_s * 1000)
    page.wait_for_timeout(1000)
    out = page.locator("button:has([aria-label=zoom_out])")
    for _ in range(30):
        r = page.evaluate(GRAPH_RECTS)
        if r is None or not out.count() or (r["s"][0] <= 0.97 * r["v"][0] and r["s"][1] <= 0.97 * r["v"][1]):
            break
        out.first.click()
        page.wait_for_timeout(200)


def shoot(url: str, out: Path, location: str, groups: list[str], asset: str, metrics_asset: str,
          timeout_s: float, only: set[str] | None = None, suffix: str = ".png") -> list[Path]:
    from playwright.sync_api import sync_playwright

    graphs = [("lineage_groups", "/asset-groups")] + [
        (f"lineage_{g}", f"/locations/{location}/asset-groups/{g}") for g in groups]
    pages = [
        (f"partitions_{asset}", f"/assets/{asset}?view=partitions", f"text={asset}"),
        (f"asset_{metrics_asset}", f"/assets/{metrics_asset}", f"text={metrics_asset}"),
        (f"plots_{metrics_asset}", f"/assets/{metrics_asset}", "button:has-text('Plots')"),
        (f"events_{metrics_asset}", f"/assets/{metrics_asset}?view=events", f"text={metrics_asset}"),
        ("asset_lab_dashboard", "/assets/lab_dashboard", "text=lab_dashboard"),
        ("runs", "/runs", "text=Runs"),
    ]
    if only:
        graphs = [g for g in graphs if g[0] in only]
        pages = [q for q in pages if q[0] in only]
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1800, "height": 1100})
            for name, path in graphs:
                page.goto(url + path, wait_until="domcontentloaded")
                dismiss_popups(page)
                try:
                    fit_graph(page, timeout_s)
                except Exception as e:  # still take the picture: it shows what went wrong
                    print(f"warning: {name}: the asset graph did not render ({type(e).__name__})", file=sys.stderr)
                page.wait_for_timeout(800)
                dest = out / f"{name}{suffix}"
                page.screenshot(path=str(dest), **({"quality": 80} if suffix == ".jpg" else {}))
                written.append(dest)
                print(dest)
            for name, path, ready in pages:
                page.goto(url + path, wait_until="domcontentloaded")
                dismiss_popups(page)
                try:
                    page.wait_for_selector(ready, timeout=timeout_s * 1000)
                    if name.startswith("partitions_"):  # open the first partition's details
                        page.wait_for_timeout(1500)
                        first = page.get_by_text(re.compile(r"^[a-z0-9_\-]+$")).filter(
                            has_not_text=asset).first
                        first.click(timeout=5000)
                    if name.startswith("plots_"):  # the metadata history as charts
                        page.locator(ready).first.click(timeout=5000)
                except Exception as e:
                    print(f"warning: {name}: {ready!r} not ready ({type(e).__name__})", file=sys.stderr)
                page.wait_for_timeout(2500)  # charts and tables settle
                dest = out / f"{name}{suffix}"
                page.screenshot(path=str(dest), **({"quality": 80} if suffix == ".jpg" else {}))
                written.append(dest)
                print(dest)
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="HandClust home (results, videos, dagster_home)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the screenshots")
    ap.add_argument("--only", default="", help="comma-separated page names (e.g. runs,lineage_groups); default all")
    ap.add_argument("--jpeg", action="store_true", help="JPEG (quality 80) instead of PNG")
    ap.add_argument("--port", type=int, default=0, help="0 = a free port")
    ap.add_argument("--asset", default="flow_rhythm", help="asset whose partitions page to capture")
    ap.add_argument("--metrics-asset", default="cross_clip_entropy", help="asset whose metadata to capture")
    ap.add_argument("--groups", default="modalities,clusters,evaluation,dashboard",
                    help="asset groups whose lineage to capture (comma-separated)")
    ap.add_argument("--location", default="handclust_assets", help="code location name (workspace.yaml)")
    ap.add_argument("--dev", action="store_true", help="run `dagster dev` (webserver + daemon) instead")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the server / each page")
    a = ap.parse_args(argv)
    home, out = a.home.resolve(), a.out.resolve()
    if not (home / "dagster_home" / "dagster.yaml").exists():
        print(f"no Dagster instance in {home / 'dagster_home'} (run `handclust demo --home {home}` first)",
              file=sys.stderr)
        return 2
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found (scripts/setup.sh installs Debian's chromium when run as root)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    os.environ["HANDCLUST_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    os.environ.pop("HANDCLUST_STORAGE", None)
    added = ensure_partitions(home)
    if added:
        print(f"added clip partitions: {', '.join(added)}")
    from handclust_assets.cli.session import DagsterSession, HomeInUse, free_port, stop_group, wait_for_ui

    port = a.port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = out / "webserver.log"
    if a.dev:  # a daemon too: `DagsterSession`, which claims the home as `handclust ui` does
        session = DagsterSession(home, port=port, log=log)
        try:
            session.start(a.timeout)
        except HomeInUse as e:
            print(e, file=sys.stderr)
            return 2
        stop = session.stop
    else:
        cmd = [str(Path(sys.executable).parent / "dagster-webserver"), "-m", "handclust_assets.definitions",
               "-h", "127.0.0.1", "-p", str(port)]
        with log.open("w") as f:
            proc = subprocess.Popen(cmd, cwd=home, env=os.environ.copy(), stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True)

        def stop() -> None:
            stop_group(proc, signal.SIGTERM, 30)
    try:
        if not a.dev:  # (the session waited for its own)
            wait_for_ui(url, proc, a.timeout)
        print(f"Dagster UI at {url} (log: {log})")
        shoot(url, out, a.location, [g for g in a.groups.split(",") if g], a.asset, a.metrics_asset, a.timeout,
              only={x for x in a.only.split(",") if x} or None, suffix=".jpg" if a.jpeg else ".png")
    finally:
        stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
