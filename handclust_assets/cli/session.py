"""Running HandClust the way a user does: `dagster dev` (webserver + daemon + code server) on a Dagster home,
videos landing in the watched folder, sensors and automation doing the rest — and knowing when it is done.

`DagsterSession` is what `handclust demo`, the end-to-end test and the product-path benchmark share.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from handclust_assets.lib.home import instance_config

IN_PROGRESS = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
CLIP_TAG = "handclust/clip"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


UI_LOCK = ".handclust_ui.lock"  # in the Dagster home: held by the `dagster dev` running on it


class HomeInUse(RuntimeError):
    """Another `dagster dev` (a `handclust ui`, a demo, or one started by hand) runs on this Dagster home: a second
    one would run every sensor, the run queue and the automation twice over the same instance."""


def runs_daemon(argv: Sequence[str]) -> bool:
    """Whether a command line runs a Dagster daemon, or `dagster dev` (which starts one): `dagster dev`,
    `dagster-daemon run`, `python -m dagster dev` and `python -m dagster._daemon run` (what `dagster dev` starts),
    any path to the executable."""
    words = [os.path.basename(a) for a in argv]
    return any((a == "dagster" and b == "dev") or (a in ("dagster-daemon", "dagster._daemon") and b == "run")
               for a, b in zip(words, words[1:]))


def home_daemons(dagster_home: Path, proc: Path = Path("/proc")) -> list[tuple[int, str]]:
    """(pid, command line) of every process but this one that runs a Dagster daemon or `dagster dev`
    (`runs_daemon`) with this Dagster home as its DAGSTER_HOME, sorted by pid. Read from `proc` (Linux's /proc; where
    there is none, none are found); another user's processes, which cannot be read, are not seen."""
    target = os.path.realpath(dagster_home)
    found = []
    for d in proc.glob("[0-9]*"):
        if d.name == str(os.getpid()):
            continue
        try:
            argv = [a.decode(errors="replace") for a in (d / "cmdline").read_bytes().split(b"\0") if a]
            if not runs_daemon(argv):
                continue
            env = dict(kv.split(b"=", 1) for kv in (d / "environ").read_bytes().split(b"\0") if b"=" in kv)
        except (OSError, ValueError):  # gone meanwhile, or not ours to read
            continue
        home = env.get(b"DAGSTER_HOME")
        if home and os.path.realpath(os.fsdecode(home)) == target:
            found.append((int(d.name), " ".join(argv)))
    return sorted(found)


def claim_home(dagster_home: Path, url: str) -> int:
    """Lock the Dagster home for the `dagster dev` about to start on it (exclusive, without waiting) and note `url`
    and this process in the lock file. Returns the lock's file descriptor, inheritable: `dagster dev` (exec'd, or
    given it with `pass_fds`) holds the lock for as long as it lives, and a crash releases it. Raises `HomeInUse`
    naming the running one's address where the lock is held, and naming the process where a Dagster daemon runs on
    the home without it (`home_daemons`: started by hand, or left behind by a crash)."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / UI_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            try:
                held = json.loads(path.read_text() or "{}")
            except (OSError, ValueError):
                held = {}
            raise HomeInUse(f"a HandClust UI already runs on this Dagster home ({dagster_home}): "
                            f"{held.get('url', 'address unknown')} (pid {held.get('pid', '?')}). Open that one, or "
                            "stop it first (Ctrl-C, or kill PID), or give another --home: two on one home run every "
                            "sensor and automation twice.") from None
        # a filesystem without locks (some network mounts): nothing to tell by, so the session starts unguarded
        import warnings

        warnings.warn(f"{path}: cannot lock the Dagster home ({e.strerror}); a second session on it would not be "
                      "refused", stacklevel=2)
    # a `dagster dev` or `dagster-daemon run` started by hand takes no lock (nor does a daemon a crash left behind)
    others = home_daemons(dagster_home)
    if others:
        os.close(fd)
        pid, cmd = others[0]
        cmd = cmd if len(cmd) <= 160 else cmd[:157] + "..."
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise HomeInUse(f"a Dagster daemon that HandClust did not start runs on this Dagster home ({dagster_home}): "
                        f"pid {pid}{more} ({cmd}), a `dagster dev` or `dagster-daemon run` started by hand, or one "
                        f"left behind by a crash. Stop it first (Ctrl-C where it runs, or kill {pid}), or give "
                        "another --home: two daemons on one home run every sensor and automation twice.")
    note_home(fd, url, os.getpid())
    os.set_inheritable(fd, True)
    return fd


def note_home(fd: int, url: str, pid: int) -> None:
    """What the lock file says of the session holding it."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"url": url, "pid": pid, "since": time.time()}).encode(), 0)


def quiet_env() -> dict[str, str]:
    """Third-party native logging silenced at the source (TFLite/MediaPipe glog, absl, TensorFlow)."""
    return {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "3", "ABSL_MIN_LOG_LEVEL": "2",
            "PYTHONWARNINGS": "ignore::DeprecationWarning"}


def default_interrupts() -> None:
    """SIGINT and SIGTERM back to their default actions, for a process about to exec `dagster dev`. A command that
    a non-interactive shell starts in the background (`handclust ui &` in a script) inherits SIGINT *ignored*;
    Python then installs no KeyboardInterrupt handler, and `dagster dev` maps SIGTERM to SIGINT's handler, so it
    would ignore both and never stop its webserver and daemon."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal: it exists
        return True


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
    """Stop a child started with `start_new_session=True`: `sig` to its process group, and back once every process
    of the group has gone (`dagster dev` exits before its code servers have); what is left after `timeout_s` is
    killed."""
    if proc.poll() is not None:
        return
    deadline = time.monotonic() + timeout_s
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass
    while _group_exists(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_exists(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def wait_for_ui(url: str, proc: subprocess.Popen, timeout_s: float, log: Path | None = None) -> None:
    """Until the Dagster webserver at `url` answers `/server_info`; RuntimeError if `proc` (what serves it) exits
    first, TimeoutError after `timeout_s`."""
    see = f"; see {log}" if log is not None else ""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Dagster UI process exited with {proc.returncode}{see}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the Dagster UI did not answer on {url} within {timeout_s:.0f} s{see}")


@dataclass
class Progress:
    """Where a session stands: clip runs by status, other runs, the dashboard."""

    clips_done: int = 0
    clips_failed: list[str] = field(default_factory=list)
    clips_total: int = 0
    runs_in_progress: int = 0  # queued, starting or running
    runs_queued: int = 0
    cross_clip_runs: int = 0
    dashboard_at: float | None = None
    settled: bool = False


class DagsterSession:
    """`dagster dev` on a HandClust home, started and stopped by this object."""

    def __init__(self, home: Path, *, port: int | None = None, max_runs: int | None = None,
                 env: dict[str, str] | None = None, log: Path | None = None) -> None:
        self.home = Path(home).resolve()
        self.dagster_home = self.home / "dagster_home"
        self.port = port or free_port()
        self.max_runs = max_runs
        self.env = {**os.environ, **quiet_env(), "HANDCLUST_HOME": str(self.home),
                    "DAGSTER_HOME": str(self.dagster_home), **(env or {})}
        for k in ("HANDCLUST_STORAGE", "HANDCLUST_VIDEO_DIR"):
            if k not in (env or {}):
                self.env.pop(k, None)
        self.log = log or self.home / "dagster_dev.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def videos(self) -> Path:
        return Path(self.env.get("HANDCLUST_VIDEO_DIR") or self.home / "videos")

    def start(self, timeout_s: float = 180.0) -> DagsterSession:
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        self.videos.mkdir(parents=True, exist_ok=True)
        cfg = self.dagster_home / "dagster.yaml"
        if not cfg.exists() or self.max_runs:
            cfg.write_text(instance_config(self.max_runs))
        self.log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "dagster", "dev", "-m", "handclust_assets.definitions", "-h", "127.0.0.1",
               "-p", str(self.port)]
        lock = claim_home(self.dagster_home, self.url)  # HomeInUse where another runs on it
        try:
            with self.log.open("ab") as out:
                self.proc = subprocess.Popen(cmd, env=self.env, cwd=str(self.home), stdout=out,
                                             stderr=subprocess.STDOUT, start_new_session=True,
                                             preexec_fn=default_interrupts, pass_fds=(lock,))
            note_home(lock, self.url, self.proc.pid)
        finally:
            os.close(lock)  # the child holds it now (or nobody, if it did not start)
        try:
            wait_for_ui(self.url, self.proc, timeout_s, self.log)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGINT to the session's process group (a clean shutdown of `dagster dev`), see `stop_group`."""
        if self.proc is not None:
            stop_group(self.proc, signal.SIGINT, timeout_s)

    def __enter__(self) -> DagsterSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- watching ------------------------------------------------------------------------------------------
    def instance(self):  # a DagsterInstance (imported lazily: dagster is slow to import)
        import dagster as dg

        os.environ["DAGSTER_HOME"] = str(self.dagster_home)
        return dg.DagsterInstance.from_config(str(self.dagster_home))

    def progress(self, expected_clips: int) -> Progress:
        """Clip runs finished/failed, runs in progress, cross-clip runs, when the dashboard was last built."""
        import dagster as dg

        inst = self.instance()
        runs = [r.dagster_run for r in inst.get_run_records(limit=5000)]
        latest: dict[str, object] = {}
        for r in sorted(runs, key=lambda r: r.run_id):
            if r.job_name == "process_clip" and CLIP_TAG in r.tags:
                latest[r.tags[CLIP_TAG]] = r
        p = Progress(clips_total=expected_clips)
        done = [r for r in latest.values() if r.status.value in ("SUCCESS", "FAILURE", "CANCELED")]
        p.clips_done = len(done)
        p.clips_failed = sorted(k for k, r in latest.items() if r.status.value in ("FAILURE", "CANCELED"))
        p.runs_in_progress = sum(1 for r in runs if r.status.value in IN_PROGRESS)
        p.runs_queued = sum(1 for r in runs if r.status.value == "QUEUED")
        p.cross_clip_runs = sum(1 for r in runs if "segment_features" in {k.to_user_string() for k in
                                                                          (r.asset_selection or [])})
        def last(asset: str) -> float | None:
            rec = inst.fetch_materializations(dg.AssetKey(asset), limit=1).records
            return rec[0].timestamp if rec else None

        p.dashboard_at = last("lab_dashboard")
        clustered, overlaid = last("cross_clip_clusters"), last("activity_overlays")
        all_failed = p.clips_done >= expected_clips and len(p.clips_failed) == p.clips_done
        p.settled = p.clips_done >= expected_clips and p.runs_in_progress == 0 and (all_failed or (
            None not in (clustered, overlaid, p.dashboard_at) and overlaid >= clustered
            and p.dashboard_at >= overlaid))
        return p

    def wait_settled(self, expected_clips: int, timeout_s: float = 1800.0, quiet_s: float = 5.0,
                     on_progress: Callable[[Progress], None] | None = None, poll_s: float = 2.0) -> Progress:
        """Until every expected clip run ended, the pooled clustering, then the overlays, then the dashboard were
        rebuilt in that order, and no run has been in progress for `quiet_s`."""
        deadline = time.monotonic() + timeout_s
        quiet_since = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {self.proc.returncode}; see {self.log}")
            p = self.progress(expected_clips)
            if on_progress is not None:
                on_progress(p)
            if p.settled:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= quiet_s:
                    return p
            else:
                quiet_since = None
            time.sleep(poll_s)
        raise TimeoutError(f"not settled after {timeout_s:.0f} s: {self.progress(expected_clips)}; see {self.log}")


def land(files: list[tuple[Path, Path]]) -> None:
    """Move finished files into the watched folder: sidecars before their video, each by an atomic rename, so the
    folder sensor never sees a video without its ground truth (and never a half-written one)."""
    def order(pair: tuple[Path, Path]) -> int:
        return 1 if pair[1].suffix.lower() in (".mp4", ".mov", ".mkv", ".avi", ".webm") else 0

    for src, dst in sorted(files, key=order):
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)


def run_in_process(home: Path, on_clip: Callable[[str, bool], None] | None = None) -> dict[str, list[str]]:
    """The whole graph in this process, no daemon: every clip's `process_clip` job, then the `cross_clip` job, on
    the instance of `home` (what benchmarks compare the product path against, and what evaluations use).
    Returns {"failed_clips": [...], "failed_cross_clip_steps": [...]}."""
    import dagster as dg

    os.environ["HANDCLUST_HOME"] = str(Path(home).resolve())
    for k in ("HANDCLUST_STORAGE", "HANDCLUST_VIDEO_DIR", "DAGSTER_HOME"):
        os.environ.pop(k, None)
    from handclust_assets.definitions import defs
    from handclust_assets.lib.home import ensure_dagster_home, video_dir
    from handclust_assets.lib.video_folder import scan_videos

    ensure_dagster_home()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    keys = list(scan_videos(video_dir()))
    failed: dict[str, list[str]] = {"failed_clips": [], "failed_cross_clip_steps": []}
    with dg.DagsterInstance.get() as inst:
        inst.add_dynamic_partitions("clips", [k for k in keys if not inst.has_dynamic_partition("clips", k)])
        clip_job = defs.resolve_job_def("process_clip")
        for k in keys:
            r = clip_job.execute_in_process(partition_key=k, instance=inst, raise_on_error=False, run_config=quiet,
                                            tags={CLIP_TAG: k})
            if not r.success:
                failed["failed_clips"].append(k)
            if on_clip is not None:
                on_clip(k, r.success)
        r = defs.resolve_job_def("cross_clip").execute_in_process(instance=inst, raise_on_error=False,
                                                                   run_config=quiet)
        failed["failed_cross_clip_steps"] = [e.step_key for e in r.get_step_failure_events()]
    return failed
