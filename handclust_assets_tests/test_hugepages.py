"""numpy's huge-page hint is turned off where the kernel compacts memory for it (`lib.hugepages`), and nowhere else;
a user's own NUMPY_MADVISE_HUGEPAGE wins. The speed it buys is measured by `benchmarks/bench_rhythm.py --hugepages`,
not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from numpy._core import multiarray

from handclust_assets.lib.hugepages import ENV, avoid_hugepage_stalls, hugepages_stall


def thp(folder: Path, enabled: str, defrag: str) -> Path:
    """A stand-in for /sys/kernel/mm/transparent_hugepage with these two settings."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "enabled").write_text(enabled + "\n")
    (folder / "defrag").write_text(defrag + "\n")
    return folder


@pytest.mark.parametrize(("enabled", "defrag", "stalls"), [
    ("always [madvise] never", "always defer defer+madvise [madvise] never", True),  # this VM's
    ("[always] madvise never", "[always] defer defer+madvise madvise never", True),
    ("always [madvise] never", "always defer [defer+madvise] madvise never", True),  # compaction for hinted ranges
    ("always [madvise] never", "always [defer] defer+madvise madvise never", False),  # compaction in the background
    ("always madvise [never]", "always defer defer+madvise [madvise] never", False),  # no huge pages at all
    ("always [madvise] never", "[never]", False),
    ("garbled", "garbled", False),
])
def test_the_kernel_settings_say_whether_huge_pages_stall(tmp_path: Path, enabled: str, defrag: str,
                                                          stalls: bool) -> None:
    assert hugepages_stall(thp(tmp_path / "thp", enabled, defrag)) is stalls


def test_unreadable_settings_leave_the_hint_alone(tmp_path: Path) -> None:
    assert hugepages_stall(tmp_path / "missing") is False


@pytest.fixture()
def hint():
    """numpy's hint as it was, restored after the test."""
    was = multiarray._get_madvise_hugepage()
    yield
    multiarray._set_madvise_hugepage(was)


def test_the_hint_is_turned_off_where_it_stalls_and_left_where_it_does_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hint: None) -> None:
    monkeypatch.delenv(ENV, raising=False)
    multiarray._set_madvise_hugepage(True)
    calm = thp(tmp_path / "calm", "always [madvise] never", "always [defer] defer+madvise madvise never")
    assert avoid_hugepage_stalls(calm) is False
    assert ENV not in os.environ and multiarray._get_madvise_hugepage() is True
    stalling = thp(tmp_path / "stalling", "always [madvise] never", "always defer defer+madvise [madvise] never")
    assert avoid_hugepage_stalls(stalling) is True
    assert os.environ[ENV] == "0" and multiarray._get_madvise_hugepage() is False  # here, and for child processes


def test_a_users_own_setting_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hint: None) -> None:
    monkeypatch.setenv(ENV, "1")
    multiarray._set_madvise_hugepage(True)
    stalling = thp(tmp_path / "stalling", "[always] madvise never", "[always] defer defer+madvise madvise never")
    assert avoid_hugepage_stalls(stalling) is False
    assert os.environ[ENV] == "1" and multiarray._get_madvise_hugepage() is True


@pytest.mark.parametrize("numpy_first", [False, True])
def test_importing_handclust_sets_the_hint_by_this_machines_kernel(numpy_first: bool) -> None:
    """In a fresh interpreter (the way a Dagster run worker or the CLI starts), with numpy imported before or after
    the package: where this machine's kernel stalls on the hint, it is off and the setting is handed to the
    processes it starts; elsewhere nothing is set."""
    imports = "import numpy, handclust_assets" if numpy_first else "import handclust_assets, numpy"
    code = (f"{imports}, os, json\nfrom numpy._core import multiarray\n"
            f"print(json.dumps([multiarray._get_madvise_hugepage(), os.environ.get({ENV!r})]))")
    env = {k: v for k, v in os.environ.items() if k != ENV}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    hinted, handed = json.loads(out.stdout.strip().splitlines()[-1])
    if hugepages_stall():
        assert hinted is False and handed == "0"
    else:  # numpy's own default kept
        assert handed is None
