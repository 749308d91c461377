"""Stopping the UI when a script started it: in the background of a non-interactive shell, which hands the process
SIGINT *ignored*. `dagster dev` maps SIGTERM to SIGINT's handler, so before the fix a plain `kill PID` (and
`DagsterSession.stop`'s SIGINT) was ignored and the webserver, daemon and code server ran on. Real processes: the
CLI, `dagster dev` and its children."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from handclust_assets.cli.session import DagsterSession, free_port, wait_for_ui


def _ignore_sigint() -> None:  # what `cmd &` in a non-interactive shell does to the child
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _group_running(proc: subprocess.Popen) -> list[int]:
    """PIDs of the child's process group still running (zombies waiting to be reaped do not count), from /proc."""
    proc.poll()  # reap the child itself once it has exited
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(pgrp) == proc.pid and state != "Z":
                pids.append(int(stat.parent.name))
    return pids


def _stop_group_and_wait(proc: subprocess.Popen, sig: int, timeout_s: float = 30.0) -> None:
    """`sig` to the child's process group, then until every process of it has gone (at most `timeout_s`)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait(timeout_s)
    t0 = time.monotonic()
    while _group_running(proc) and time.monotonic() - t0 < timeout_s:
        time.sleep(0.25)


def test_ui_started_in_a_script_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "ui.log"
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "HANDCLUST_STORAGE",
                                                            "HANDCLUST_VIDEO_DIR")}
    cmd = [sys.executable, "-c", "from handclust_assets.cli import app; app()", "ui", "--port", str(port),
           "--home", str(tmp_path / "home")]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_ignore_sigint)
    try:
        wait_for_ui(f"http://127.0.0.1:{port}", proc, 120, log)
        os.kill(proc.pid, signal.SIGTERM)  # the main process only, as `kill PID` does
        t0 = time.monotonic()
        while _group_running(proc) and time.monotonic() - t0 < 45:
            time.sleep(0.25)
        left = _group_running(proc)
        assert not left, f"{len(left)} process(es) still running {time.monotonic() - t0:.0f} s after SIGTERM"
        assert "Dagster services shut down" in log.read_text()  # a clean shutdown, not a crash
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_a_second_ui_on_the_same_home_is_refused_naming_the_first(tmp_path: Path) -> None:
    """Two `dagster dev` on one home would run every sensor, the run queue and the automation twice. A second
    `handclust ui` (another port) and a demo's session are refused, naming the first's address; once the first
    stops (here killed outright, as a crash would), the home is free again. Real processes."""
    from handclust_assets.cli.session import HomeInUse, claim_home

    home, port, other = tmp_path / "home", free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "HANDCLUST_STORAGE",
                                                            "HANDCLUST_VIDEO_DIR")}
    cli = [sys.executable, "-c", "from handclust_assets.cli import app; app()", "ui", "--home", str(home)]
    log = tmp_path / "ui.log"
    with log.open("wb") as out:
        first = subprocess.Popen([*cli, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    try:
        wait_for_ui(f"http://127.0.0.1:{port}", first, 120, log)
        second = subprocess.run([*cli, "--port", str(other)], env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "already runs" in second.stderr and f"http://127.0.0.1:{port}" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        with pytest.raises(OSError):  # nothing listens on the second port
            urllib.request.urlopen(f"http://127.0.0.1:{other}/server_info", timeout=2)
        with pytest.raises(HomeInUse, match=str(port)):
            DagsterSession(home, port=other).start()
    finally:
        _stop_group_and_wait(first, signal.SIGKILL)
    os.close(claim_home(home / "dagster_home", "http://127.0.0.1:1"))  # the lock went with the process


def test_session_started_with_sigint_ignored_stops_cleanly(tmp_path: Path) -> None:
    """`DagsterSession` (what `handclust demo` and the end-to-end tests run) from a parent that ignores SIGINT, as
    `bash scripts/demo.sh &` does: its stop (SIGINT to the group) must still shut `dagster dev` down cleanly."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        session = DagsterSession(tmp_path / "home").start()
    finally:
        signal.signal(signal.SIGINT, previous)
    t0 = time.monotonic()
    session.stop(timeout_s=30)
    assert time.monotonic() - t0 < 30, "stop fell back to SIGKILL"
    assert not _group_running(session.proc)
    assert "Dagster services shut down" in session.log.read_text()


def test_a_home_on_a_filesystem_without_locks_starts_unguarded_with_a_warning(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Some network mounts refuse `flock` (ENOLCK): that is not "in use". The session is not refused; a warning says
    it is unguarded. (The refusal itself: `test_a_second_ui_on_the_same_home_is_refused_naming_the_first`.)"""
    import errno
    import fcntl

    from handclust_assets.cli import session

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="cannot lock"):
        fd = session.claim_home(tmp_path / "dagster_home", "http://127.0.0.1:1")
    os.close(fd)
    assert '"url": "http://127.0.0.1:1"' in (tmp_path / "dagster_home" / session.UI_LOCK).read_text()


@pytest.mark.parametrize(("argv", "daemon"), [
    (["/venv/bin/python", "/venv/bin/dagster", "dev", "-m", "pkg.definitions"], True),
    (["python", "-m", "dagster", "dev"], True),
    (["/usr/bin/python3", "-m", "dagster._daemon", "run", "--empty-workspace"], True),  # what `dagster dev` starts
    (["/venv/bin/python", "/venv/bin/dagster-daemon", "run"], True),
    (["uv", "run", "dagster", "dev"], True),
    (["python", "-m", "dagster", "asset", "materialize", "--select", "dev"], False),
    (["python", "-m", "dagster_webserver", "-p", "3000"], False),  # a webserver runs no sensor
    (["python", "-m", "dagster", "api", "grpc", "--lazy-load-user-code"], False),  # a code server neither
    (["vim", "dagster.yaml"], False),
    ([], False),
])
def test_the_ways_to_start_a_dagster_daemon_are_recognised(argv: list[str], daemon: bool) -> None:
    from handclust_assets.cli.session import runs_daemon

    assert runs_daemon(argv) is daemon


def test_daemons_on_a_home_are_read_from_their_environment(tmp_path: Path) -> None:
    """`home_daemons` over a /proc-like folder: the daemon on this home is found, also under another path to the
    same folder (a link); a daemon on another home, a process that runs no daemon, one whose environment cannot be
    read and one without DAGSTER_HOME are not."""
    from handclust_assets.cli.session import home_daemons

    home = tmp_path / "home" / "dagster_home"
    home.mkdir(parents=True)
    (tmp_path / "linked").symlink_to(tmp_path / "home")
    proc = tmp_path / "proc"

    def process(pid: int, argv: list[str], env: dict[str, str] | None) -> None:
        d = proc / str(pid)
        d.mkdir(parents=True)
        (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        if env is None:
            (d / "environ").mkdir()  # unreadable as a file, as another user's process is
        else:
            (d / "environ").write_bytes(b"\0".join(f"{k}={v}".encode() for k, v in env.items()) + b"\0")

    daemon = ["/venv/bin/python", "/venv/bin/dagster-daemon", "run"]
    process(101, daemon, {"PATH": "/usr/bin", "DAGSTER_HOME": str(home)})
    process(102, ["python", "-m", "dagster", "dev"], {"DAGSTER_HOME": str(tmp_path / "linked" / "dagster_home")})
    process(103, daemon, {"DAGSTER_HOME": str(tmp_path / "elsewhere")})
    process(104, ["python", "-m", "http.server"], {"DAGSTER_HOME": str(home)})
    process(105, daemon, None)
    process(106, daemon, {"PATH": "/usr/bin"})
    (proc / "self").mkdir()  # not a process number
    assert home_daemons(home, proc) == [(101, " ".join(daemon)), (102, "python -m dagster dev")]
    assert home_daemons(tmp_path / "nowhere", proc) == []
    assert home_daemons(home, tmp_path / "no_proc") == []  # no /proc (not Linux): nothing found


def test_a_dagster_dev_started_by_hand_on_the_home_is_refused_naming_it(tmp_path: Path) -> None:
    """A `dagster dev` started by hand (from the checkout's workspace, DAGSTER_HOME set to the home's instance)
    takes no HandClust lock, but it runs the folder sensor, the run queue and the automation on that instance. A
    `handclust ui` on the same home is refused naming its pid, and so is a demo's session; a UI on another home is
    not; once it stops, the home is free. Real processes."""
    from handclust_assets.cli.session import HomeInUse, claim_home

    home, port = tmp_path / "home", free_port()
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("HANDCLUST_STORAGE", "HANDCLUST_VIDEO_DIR")}
    env.update(DAGSTER_HOME=str(dagster_home), HANDCLUST_HOME=str(home))
    dagster = Path(sys.executable).parent / "dagster"
    cmd = [str(dagster)] if dagster.exists() else [sys.executable, "-m", "dagster"]
    log = tmp_path / "by_hand.log"
    with log.open("wb") as out:
        by_hand = subprocess.Popen([*cmd, "dev", "-m", "handclust_assets.definitions", "-p", str(port)], env=env,
                                   cwd=str(home), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_ui(f"http://127.0.0.1:{port}", by_hand, 120, log)
        cli = [sys.executable, "-c", "from handclust_assets.cli import app; app()", "ui", "--port", str(free_port())]
        clean = {k: v for k, v in env.items() if k != "DAGSTER_HOME"}
        refused = subprocess.run([*cli, "--home", str(home)], env=clean, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "did not start" in refused.stderr and f"pid {by_hand.pid}" in refused.stderr, refused.stderr
        with pytest.raises(HomeInUse, match="started by hand"):
            DagsterSession(home, port=free_port()).start()
        os.close(claim_home(tmp_path / "other" / "dagster_home", "http://127.0.0.1:1"))  # another home is free
    finally:
        _stop_group_and_wait(by_hand, signal.SIGINT)
    os.close(claim_home(dagster_home, "http://127.0.0.1:1"))  # free again once it stopped
