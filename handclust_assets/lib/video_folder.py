"""The watched video folder: stable partition keys from each video's path, and when a file is ready to take.

Tar shards in the folder count too: every video member of an uncompressed `.tar` is a clip (`lib/shards.py`),
fingerprinted by its tar header, aged by its shard (`look_folder`).

Clips land by copy, sync or unpacking, so a file may be half-written when it is first seen. `plan_folder` (pure)
takes a file only when its size and mtime stayed the same across two looks and it is `settle_s` old, holds the
files of a burst back while other files are still arriving (up to `max_hold_s`), re-runs a file whose content
changed, never while a run of that clip is still going, and reports removed files and problems once.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import heapq
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from handclust_assets.video.probe import VIDEO_EXTENSIONS

_BAD = re.compile(r"[^a-z0-9_\-]+")


def _joined_key(parts: Sequence[str], bad: re.Pattern[str] = _BAD) -> str:
    """Path parts as a key: lowercased, `bad` runs replaced by `_`, sub-folders joined by `__`."""
    return "__".join(bad.sub("_", p.lower()).strip("_-") or "clip" for p in parts)


def _base_key(rel: Path) -> str:
    return _joined_key([*rel.parent.parts, rel.stem])[:80]


_BAD_IN_PATTERN = re.compile(r"[^a-z0-9_\-*?\[\]!]+")  # a key's characters and the glob's own


def clip_pattern(pattern: str) -> str:
    """A glob over video paths in the watched folder ('bench/*', 'QUVA/*.mp4', 'run_0?') as a glob over partition
    keys (`scan_videos`'s `_joined_key`, the glob's characters kept), a video extension dropped
    (a key has none, so 'ego/*.mp4' also picks ego/day2.mkv)."""
    parts = [q for q in pattern.strip().replace("\\", "/").split("/") if q]
    if parts and Path(parts[-1]).suffix.lower() in VIDEO_EXTENSIONS:
        parts[-1] = parts[-1][: -len(Path(parts[-1]).suffix)]
    return _joined_key(parts, _BAD_IN_PATTERN)


def clip_matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    """clip key -> whether it matches one of `patterns` (`clip_pattern` globs); no patterns: nothing matches."""
    globs = [clip_pattern(p) for p in patterns if p.strip()]
    return lambda key: any(fnmatch.fnmatchcase(key, g) for g in globs)


LINKED_MAX_ENTRIES = 200_000  # entries read through links in one look, at most: a link to a whole disk is no dataset


@dataclass
class FolderWalk:
    """One walk of the watched folder: its files (`folder_entries`) and the linked folders it would not follow."""

    files: list[Path]
    problems: dict[str, str]  # link path -> why it was not followed


def folder_walk(folder: str | Path, linked_max_entries: int = LINKED_MAX_ENTRIES) -> FolderWalk:
    """Every file under `folder` (regular files, links to them, and broken links), sorted, as paths under it:
    hidden files and folders are skipped, and a linked folder is walked like any other (a NAS share or a dataset
    linked into the watched folder instead of copied). Each real folder is walked once, so a link back up the tree
    (a loop) adds nothing, and a folder with several paths is walked under the steadiest: its own path where it has
    one, else its oldest link (by the link's own mtime; then by path): a link added later never moves clips to
    new partition keys. Not followed, and reported: a link to a folder that holds the watched folder (`/`, `..`:
    the whole disk, every look), and links once `linked_max_entries` entries were read through links."""
    root = Path(folder)
    if not root.is_dir():
        return FolderWalk([], {})
    top = os.path.realpath(root)
    seen: set[tuple[int, int]] = set()
    out: list[Path] = []
    problems: dict[str, str] = {}
    through_links = 0
    todo: list[tuple[int, int, str]] = [(0, 0, str(root))]  # (through a link?, the link's mtime, path): a heap
    while todo:
        via, age, path = heapq.heappop(todo)
        if via and through_links >= linked_max_entries:
            problems[path] = (f"not followed: over {linked_max_entries:,} entries were read through links in this "
                              "look (link the folders of clips, not a whole disk)")
            continue
        try:
            st = os.stat(path)
            if (st.st_dev, st.st_ino) in seen:  # (a folder already walked under another path is not read again)
                continue
            entries = list(os.scandir(path))
        except OSError:
            continue
        seen.add((st.st_dev, st.st_ino))
        if via:
            through_links += len(entries)
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                is_dir, is_file = e.is_dir(), e.is_file()  # (links followed)
            except OSError:
                is_dir = is_file = False
            if is_dir:
                if e.is_symlink():
                    target = os.path.realpath(e.path)
                    if top == target or top.startswith(target.rstrip(os.sep) + os.sep):
                        if target != top:  # (a link to the watched folder itself is a plain loop: no word)
                            problems[e.path] = (f"links to {target}, which holds the watched folder: not followed "
                                                "(link the folder of clips itself)")
                        continue
                    try:
                        link_age = os.lstat(e.path).st_mtime_ns
                    except OSError:
                        continue
                    heapq.heappush(todo, (1, link_age if not via else age, e.path))
                else:
                    heapq.heappush(todo, (via, age, e.path))
            elif is_file or e.is_symlink():
                out.append(Path(e.path))
    return FolderWalk(sorted(out), problems)


def folder_entries(folder: str | Path) -> list[Path]:
    """The files of `folder_walk` (what every scan of a look reads: `look_folder` walks once)."""
    return folder_walk(folder).files


def scan_videos(folder: str | Path, entries: Sequence[Path] | None = None) -> dict[str, Path]:
    """Map stable partition keys to the video files under `folder` (recursively, linked folders too; hidden files
    skipped). `entries`: the folder's `folder_entries`, where the caller has them.

    Keys: the path relative to the folder without extension, lowercased, non [a-z0-9_-] runs replaced by
    `_`, sub-folders joined by `__`. Two files that would share a key get their extension appended, then
    a short hash of their relative path, so keys never collide and never depend on scan order.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    files = [p for p in (folder_entries(folder) if entries is None else entries)
             if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()]
    by_key: dict[str, list[Path]] = {}
    for p in files:
        by_key.setdefault(_base_key(p.relative_to(folder)), []).append(p)
    out: dict[str, Path] = {}
    for key, paths in by_key.items():
        if len(paths) == 1:
            out[key] = paths[0]
            continue
        for p in paths:
            k = f"{key}_{p.suffix.lower().lstrip('.')}"
            if k in out or sum(q.suffix.lower() == p.suffix.lower() for q in paths) > 1:
                h = hashlib.sha1(str(p.relative_to(folder)).encode()).hexdigest()[:8]
                k = f"{key}_{h}"
            out[k] = p
    return dict(sorted(out.items()))


def file_fingerprint(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


# Files never looked into for a video under another name: still being written (a browser's or a copy tool's
# partial file), or sidecars, labels, pictures, sound and tables that sit beside clips.
NOT_LOOKED_INTO = (".part", ".partial", ".crdownload", ".download", ".tmp", ".temp", ".tar", ".json", ".csv",
                   ".txt", ".md", ".srt", ".vtt", ".xml", ".yaml", ".yml", ".log", ".gpx", ".jpg", ".jpeg", ".png",
                   ".thm", ".wav", ".mp3", ".npz", ".npy", ".parquet", ".duckdb")
# ISO-BMFF brands of pictures and sound, not video: a HEIC / AVIF photo, an M4A song.
NOT_VIDEO_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis", b"M4A ", b"M4B ",
                    b"M4P ", b"jp2 ", b"crx ")


def video_container(head: bytes) -> str | None:
    """The video container the first bytes of a file name (MP4 / QuickTime, Matroska / WebM, AVI, MPEG-TS, MPEG
    program stream), or None: how a video saved under a name the folder does not take (a GoPro .LRV, an
    Insta360 .insv, a DJI .LRF, no extension at all) is told from a sidecar, a photo or a song."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return None if head[8:12] in NOT_VIDEO_BRANDS else "MP4 / QuickTime"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska / WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "MPEG-TS"
    if head[:4] == b"\x00\x00\x01\xba":
        return "MPEG program stream"
    return None


@functools.lru_cache(maxsize=1 << 16)
def _container_of(path: str, size: int, mtime_ns: int) -> str | None:
    """`video_container` of a file's first bytes, remembered by its size and mtime: the sensor looks at the folder
    every few seconds, and a file it has read is read again only once it changed."""
    try:
        with open(path, "rb") as f:
            return video_container(f.read(377))
    except OSError:
        return None


def scan_problems(folder: str | Path, entries: Sequence[Path] | None = None) -> dict[str, str]:
    """Entries that look like videos but cannot be taken (path -> problem): broken symlinks, unreadable files, and
    videos saved under a name the folder does not take (`video_container` of their first bytes), which would
    otherwise be passed over without a word. `entries`: the folder's `folder_entries`, where the caller has them."""
    folder = Path(folder)
    out: dict[str, str] = {}
    if not folder.is_dir():
        return out
    for p in folder_entries(folder) if entries is None else entries:
        suffix = p.suffix.lower()
        if suffix not in VIDEO_EXTENSIONS:
            if suffix not in NOT_LOOKED_INTO and not p.is_symlink():
                try:
                    st = p.stat()
                except OSError:
                    continue
                kind = _container_of(str(p), st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None
                if kind is not None:
                    named = f"its extension {suffix}" if suffix else "it has no extension"
                    out[str(p)] = (f"looks like a video ({kind} container), but {named}, which the folder does not "
                                   f"take; rename it (e.g. to .mp4) to have it run")
            continue
        if p.is_symlink() and not p.exists():
            out[str(p)] = f"broken symlink (points to {os.readlink(p)})"
        elif p.is_file() and not os.access(p, os.R_OK):
            out[str(p)] = "not readable (permissions)"
    return out


@dataclass
class FileState:
    """What the sensor knows of one video at this look: fingerprint (size:mtime_ns) and age in seconds."""

    fingerprint: str
    age_s: float


@dataclass
class FolderPlan:
    new_keys: list[str]  # partitions to add
    to_run: list[str]  # partitions to run now (new or changed, settled)
    waiting: list[str]  # seen but not taken yet (still changing, too young, held for the burst, or busy)
    removed: list[str]  # reported once
    cursor: dict = field(default_factory=dict)


def plan_folder(files: dict[str, FileState], known: set[str], cursor: dict, *, busy: set[str] = frozenset(),
                settle_s: float = 5.0, max_hold_s: float = 120.0, now: float = 0.0) -> FolderPlan:
    """Pure planning step of the folder sensor.

    cursor = {"seen": {key: fingerprint at the previous look}, "done": {key: fingerprint already run},
              "removed": [keys reported as removed], "held_since": seconds when settled files began to wait}.
    A key is *settled* when its fingerprint equals the previous look's (it stopped changing between two looks) or
    when it was last modified at least `settle_s` ago (a file that landed whole, by a rename). Settled keys whose
    fingerprint was not run yet are taken — unless another file is still changing (a burst is landing):
    then they wait, at most `max_hold_s`, so a burst becomes one batch of runs. A key in `busy` (a run of that clip
    is queued or running) waits until the run ends: one file never runs twice at once.
    """
    seen, done = cursor.get("seen", {}), cursor.get("done", {})
    removed_before = set(cursor.get("removed", []))
    settled = {k for k, f in files.items() if seen.get(k) == f.fingerprint or f.age_s >= settle_s}
    want = sorted(k for k in settled if done.get(k) != files[k].fingerprint)
    changing = [k for k in files if k not in settled and done.get(k) != files[k].fingerprint]
    held_since = cursor.get("held_since")
    hold = bool(changing) and bool(want)
    if hold:
        held_since = now if held_since is None else held_since
        hold = now - held_since < max_hold_s
    to_run = [] if hold else [k for k in want if k not in busy]
    if not hold:
        held_since = None
    new_keys = sorted(k for k in to_run if k not in known)
    removed = sorted(k for k in known if k not in files and k not in removed_before)
    nxt = {
        "seen": {k: f.fingerprint for k, f in files.items()},
        "done": {**{k: v for k, v in done.items() if k in files}, **{k: files[k].fingerprint for k in to_run}},
        "removed": sorted((removed_before | set(removed)) - set(files)),
        "held_since": held_since,
    }
    waiting = sorted(k for k in files if done.get(k) != files[k].fingerprint and k not in to_run)
    return FolderPlan(new_keys, to_run, waiting, removed, nxt)


def renamed_to(removed: Sequence[str], done: dict[str, str], files: dict[str, FileState]) -> dict[str, str]:
    """removed key -> the key now holding a file of the same fingerprint (size and mtime to the nanosecond: what a
    rename or a move within the filesystem keeps, and a copy does not), for the removed keys whose run's
    fingerprint (`done`, the previous cursor's) one file, and only one, now has."""
    by_print: dict[str, list[str]] = {}
    for k, f in files.items():
        by_print.setdefault(f.fingerprint, []).append(k)
    out = {}
    for k in removed:
        hits = [n for n in by_print.get(done.get(k, ""), []) if n != k]
        if len(hits) == 1:
            out[k] = hits[0]
    return out


def look(folder: str | Path, now: float) -> dict[str, FileState]:
    """Every clip under `folder` (plain videos and tar-shard members) with its fingerprint and age."""
    return look_folder(folder, now).files


@dataclass
class FolderLook:
    """One look at the watched folder: every clip source, and every entry that cannot be taken."""

    files: dict[str, FileState]  # partition key -> fingerprint and age
    sources: dict[str, str]  # partition key -> file path or `<shard>.tar::<member>` reference
    problems: dict[str, str]  # path -> problem (broken links, unreadable files, unreadable or compressed shards)


def _member_state(member, now: float) -> FileState:  # a lib.shards.ShardMember
    """A shard member's fingerprint (its tar header) and age (the shard's: a shard still being copied is young).
    A member whose bytes are not all in the shard yet gets a `:partial` fingerprint, so it runs again once the
    shard is complete instead of keeping the failure of its first, truncated look."""
    try:
        st = member.shard.stat()
    except OSError:
        return FileState(f"{member.fingerprint}:gone", 0.0)
    partial = ":partial" if member.offset_data + member.size > st.st_size else ""
    return FileState(f"{member.fingerprint}{partial}", max(0.0, now - st.st_mtime))


def look_folder(folder: str | Path, now: float) -> FolderLook:
    """Every clip under `folder` — plain videos and the video members of uncompressed tar shards
    (`lib.shards.scan_sources`) — with fingerprint and age, plus the problems to report (`scan_problems` and the
    shard problems). A file that vanishes while looking is skipped."""
    from handclust_assets.lib.shards import ShardMember, scan_sources

    walk = folder_walk(folder)  # one walk for the videos, the shards and the problems
    entries = walk.files
    sources, shard_problems = scan_sources(folder, entries)
    files: dict[str, FileState] = {}
    refs: dict[str, str] = {}
    for key, src in sources.items():
        if isinstance(src, ShardMember):
            files[key], refs[key] = _member_state(src, now), src.ref
            continue
        try:
            st = src.stat()
        except OSError:
            continue
        files[key] = FileState(f"{st.st_size}:{st.st_mtime_ns}", max(0.0, now - st.st_mtime))
        refs[key] = str(src)
    return FolderLook(files, refs, {**walk.problems, **scan_problems(folder, entries), **shard_problems})
