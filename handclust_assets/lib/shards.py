"""Tar shards in the watched folder (Egocentric-10K style): every video member is a clip, read in place.

A corpus ships one tarball per worker (`factory_001/worker_001.tar`) holding H.265 MP4 clips and one
`intrinsics.json` (fisheye calibration). Each video member becomes a clip partition:

- **Key**: the shard's path relative to the watched folder without `.tar`, then the member's path without its
  extension, under the same rules as `video_folder.scan_videos` (lowercase, `[a-z0-9_-]`, `__` between path
  parts): `factory_001/worker_001.tar` + `00001.mp4` -> `factory_001__worker_001__00001`. A member folder named
  like the shard (`worker_001.tar` holding `worker_001/00001.mp4`) is not repeated. A key that would collide
  with a plain video's key or with another member's gets `_<8 hex of sha1(shard rel path::member)>`, so keys
  never depend on scan order and adding a shard never renames an existing clip.
- **Reading**: an uncompressed tar stores each member's bytes contiguously, so a member is a read-only,
  seekable window (`MemberFile`) over the tar file (`offset_data`, `size` from its header): PyAV decodes it
  straight from the shard, nothing is extracted, no second copy is written. Compressed shards (`.tar.gz`,
  `.tgz`, `.tar.bz2`, `.tar.xz`, `.tar.zst`) are NOT read: an MP4 demuxer seeks (the `moov` index is often at
  the end), and every backward seek in a gzip stream restarts decompression from the archive's start, so a
  multi-GB shard would be decompressed many times per clip. They are reported as shard problems with the fix
  (repack as `.tar`, or unpack into the watched folder).
- **Fingerprint** (`ShardMember.fingerprint`): member size, mtime and header checksum, from the tar header
  alone (no data read). Rewriting a shard re-runs exactly the members whose header changed; a member whose
  offset moved because an earlier member grew keeps its fingerprint. The probe's content hash (head, tail and
  size of the member's bytes) catches a content change that kept size and mtime.
- **Intrinsics**: for member `dir/clip.mp4`, the first of: tar member `dir/clip.intrinsics.json`,
  `dir/intrinsics.json`, top-level `intrinsics.json`, then on disk `<shard stem>.intrinsics.json` and
  `intrinsics.json` beside the shard. Shards are fisheye footage, so a member without intrinsics fails (unless
  `required=False`).
- **References**: a member is stored in tables as `<absolute shard path>::<member name>` (`ShardMember.ref`);
  `resolve_source` turns such a string (or a plain path) back into something `probe_video` and
  `build_frame_cache` accept. Errors (`ClipError`) name that reference: shard and member.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from handclust_assets.lib.errors import ClipError
from handclust_assets.lib.video_folder import _base_key, file_fingerprint, folder_entries, scan_videos
from handclust_assets.video.probe import VIDEO_EXTENSIONS
from handclust_assets.video.rectify import FisheyeIntrinsics, parse_intrinsics

SHARD_SUFFIX = ".tar"
COMPRESSED_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst")
REF_SEP = "::"
MAX_SIDECAR_BYTES = 16 << 20
_REF = re.compile(r"^(?P<shard>.+?\.tar)::(?P<member>.+)$")


class MemberFile(io.RawIOBase):
    """A read-only, seekable window `[offset, offset + size)` over a tar file (positional reads, own fd)."""

    def __init__(self, shard: str | Path, offset: int, size: int, name: str) -> None:
        super().__init__()
        self._fd = os.open(os.fspath(shard), os.O_RDONLY)
        self._offset, self._size, self._pos = int(offset), int(size), 0
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # any writable buffer
        n = min(len(buf), self._size - self._pos)
        if n <= 0:
            return 0
        data = os.pread(self._fd, n, self._offset + self._pos)
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + pos < 0:
            raise OSError(f"{self.name}: seek to a negative position")
        self._pos = base + pos
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


@dataclass(frozen=True)
class ShardMember:
    """One regular-file member of an uncompressed tar shard (a VideoSource for probe_video/build_frame_cache)."""

    shard: Path  # absolute path of the .tar
    member: str  # name inside the tar
    offset_data: int
    size: int
    mtime: int
    chksum: int

    @property
    def ref(self) -> str:
        return f"{self.shard}{REF_SEP}{self.member}"

    @property
    def size_bytes(self) -> int:
        return self.size

    @property
    def fingerprint(self) -> str:
        return f"tar:{self.size}:{self.mtime}:{self.chksum}"

    def __str__(self) -> str:
        return self.ref

    def check(self) -> None:
        """ClipError naming shard and member when the shard is gone or ends before this member does."""
        try:
            shard_size = self.shard.stat().st_size
        except OSError as e:
            raise ClipError(self.ref, f"shard cannot be read ({e.strerror or e})") from e
        end = self.offset_data + self.size
        if end > shard_size:
            raise ClipError(self.ref, f"truncated shard: the member needs bytes up to {end} but the tar ends at "
                                      f"{shard_size} (incomplete download or copy?)")

    def open(self) -> MemberFile:
        self.check()
        return MemberFile(self.shard, self.offset_data, self.size, self.ref)

    def read_bytes(self, max_bytes: int = MAX_SIDECAR_BYTES) -> bytes:
        if self.size > max_bytes:
            raise ClipError(self.ref, f"member is {self.size} bytes, more than the {max_bytes} allowed here")
        with self.open() as f:
            return f.read()


@dataclass
class ShardListing:
    shard: Path
    files: dict[str, ShardMember] = field(default_factory=dict)  # every regular member, by name
    problem: str = ""  # set when the tar could not be read to its end (members listed up to there are kept)

    @property
    def videos(self) -> list[ShardMember]:
        return [m for name, m in self.files.items() if _is_video_name(name)]


def _is_video_name(name: str) -> bool:
    pp = PurePosixPath(name)
    hidden = any(part.startswith(".") for part in pp.parts) or pp.name.startswith("._")
    return not hidden and pp.suffix.lower() in VIDEO_EXTENSIONS


def is_compressed_shard(path: str | Path) -> bool:
    return str(path).lower().endswith(COMPRESSED_SUFFIXES)


_LISTINGS: dict[Path, tuple[tuple[int, int, int], ShardListing]] = {}
_MAX_LISTINGS = 4096


def list_shard(shard: str | Path) -> ShardListing:
    """Read the member headers of an uncompressed tar (seeks over member data; reads no video bytes).

    Listings are kept per process while the shard's size, mtime and inode stay the same (the folder sensor
    looks every few seconds; a long-lived code server then reads each unchanged shard's headers once)."""
    shard = Path(shard).resolve()
    try:
        st = shard.stat()
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        return _read_listing(shard)
    hit = _LISTINGS.get(shard)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    out = _read_listing(shard)
    if len(_LISTINGS) >= _MAX_LISTINGS:
        _LISTINGS.clear()
    _LISTINGS[shard] = (stamp, out)
    return out


def _read_listing(shard: Path) -> ShardListing:
    out = ShardListing(shard=shard)
    if is_compressed_shard(shard):
        out.problem = ("compressed shard: members cannot be read in place (every seek would decompress from the "
                       "start); repack it as an uncompressed .tar or unpack it into the watched folder")
        return out
    try:
        with tarfile.open(shard, mode="r:") as tf:
            while True:
                try:
                    info = tf.next()
                except tarfile.ReadError as e:
                    out.problem = f"tar cannot be read past {len(out.files)} member(s) ({e}): truncated or corrupt"
                    break
                if info is None:
                    break
                if info.isreg():
                    out.files[info.name] = ShardMember(shard, info.name, int(info.offset_data), int(info.size),
                                                       int(info.mtime), int(info.chksum))
    except (tarfile.ReadError, OSError) as e:
        out.problem = f"not a readable tar archive ({e})"
    return out


def _member_rel(shard_rel: Path, member: str) -> Path:
    parts = list(PurePosixPath(member).parts)
    base = shard_rel.with_suffix("") if shard_rel.suffix.lower() == SHARD_SUFFIX else shard_rel
    if len(parts) > 1 and parts[0].lower() == base.name.lower():
        parts = parts[1:]
    return base.joinpath(*parts)


def _member_hash(shard_rel: Path, member: str) -> str:
    return hashlib.sha1(f"{shard_rel.as_posix()}{REF_SEP}{member}".encode()).hexdigest()[:8]


@dataclass
class ShardScan:
    members: dict[str, ShardMember]  # partition key -> member
    problems: dict[str, str]  # shard path -> what is wrong with the shard as a whole


def find_shards(folder: str | Path, entries: Sequence[Path] | None = None) -> list[Path]:
    """`.tar` (and compressed tar, to report them) files under `folder`, recursively (linked folders too), hidden
    parts skipped. `entries`: the folder's `video_folder.folder_entries`, where the caller has them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [p for p in (folder_entries(folder) if entries is None else entries)
            if (p.suffix.lower() == SHARD_SUFFIX or is_compressed_shard(p)) and p.is_file()]


def scan_shards(folder: str | Path, taken: Iterable[str] = (), entries: Sequence[Path] | None = None) -> ShardScan:
    """Partition keys for every video member of every shard under `folder` (see the module doc for the rules).

    `taken`: keys already used by plain videos; a member never takes one of them."""
    folder = Path(folder)
    taken = set(taken)
    by_key: dict[str, list[tuple[Path, ShardMember]]] = {}
    problems: dict[str, str] = {}
    for shard in find_shards(folder, entries):
        listing = list_shard(shard)
        if listing.problem:
            problems[str(listing.shard)] = listing.problem
        rel = shard.relative_to(folder)
        for m in listing.videos:
            by_key.setdefault(_base_key(_member_rel(rel, m.member)), []).append((rel, m))
    out: dict[str, ShardMember] = {}
    for key, found in by_key.items():
        if len(found) == 1 and key not in taken:
            out[key] = found[0][1]
            continue
        for rel, m in found:
            out[f"{key}_{_member_hash(rel, m.member)}"] = m
    return ShardScan(members=dict(sorted(out.items())), problems=problems)


def scan_sources(folder: str | Path, entries: Sequence[Path] | None = None
                 ) -> tuple[dict[str, Path | ShardMember], dict[str, str]]:
    """Plain videos (`scan_videos`) and shard members under one watched folder, one key space; plus the shard
    problems (shard path -> message) for the sensor to log. `entries`: the folder's `folder_entries`."""
    entries = folder_entries(folder) if entries is None else entries
    files = scan_videos(folder, entries)
    scan = scan_shards(folder, taken=files, entries=entries)
    return dict(sorted({**files, **scan.members}.items())), scan.problems


def source_fingerprint(source: Path | ShardMember) -> str:
    """What the folder sensor compares to decide a clip changed (file: size+mtime; member: its header)."""
    return source.fingerprint if isinstance(source, ShardMember) else file_fingerprint(source)


def resolve_source(ref: str | Path) -> Path | ShardMember:
    """A stored `source_path` back to a readable source: `<shard>.tar::<member>` -> ShardMember, else a Path."""
    m = _REF.match(str(ref))
    if m is None:
        return Path(ref)
    shard, member = Path(m["shard"]), m["member"]
    listing = list_shard(shard)
    if member in listing.files:
        return listing.files[member]
    if not shard.exists():
        raise ClipError(str(ref), "shard does not exist (was it removed or renamed?)")
    why = f" ({listing.problem})" if listing.problem else ""
    raise ClipError(str(ref), f"no such member in the shard{why}")


def _intrinsics_candidates(member: ShardMember) -> list[str]:
    pp = PurePosixPath(member.member)
    names = [str(pp.with_name(pp.stem + ".intrinsics.json")), str(pp.with_name("intrinsics.json")),
             "intrinsics.json"]
    return list(dict.fromkeys(n.removeprefix("./") for n in names))


def find_member_intrinsics(member: ShardMember, listing: ShardListing | None = None) -> ShardMember | Path | None:
    """The intrinsics that apply to a member: a member of its shard, else a file beside the shard, else None."""
    listing = listing or list_shard(member.shard)
    by_plain = {n.removeprefix("./"): m for n, m in listing.files.items()}
    for name in _intrinsics_candidates(member):
        if name in by_plain:
            return by_plain[name]
    for cand in (member.shard.with_name(member.shard.stem + ".intrinsics.json"),
                 member.shard.parent / "intrinsics.json"):
        if cand.is_file():
            return cand
    return None


def load_member_intrinsics(member: ShardMember, required: bool = True) -> FisheyeIntrinsics | None:
    """Parse and validate the member's intrinsics; ClipError names the member (shard + name) and the problem.

    Missing intrinsics: ClipError when `required` (shards are fisheye footage), else None."""
    found = find_member_intrinsics(member)
    if found is None:
        if not required:
            return None
        raise ClipError(member.ref, "missing intrinsics: no intrinsics.json in the shard or beside it "
                                    "(needed to rectify the fisheye footage)")
    try:
        if isinstance(found, ShardMember):
            return parse_intrinsics(found.read_bytes(), source=found.ref)
        return parse_intrinsics(found.read_bytes(), source=found)
    except ClipError as e:
        raise ClipError(member.ref, f"{e.problem} (in {e.path})") from e
    except OSError as e:
        raise ClipError(member.ref, f"bad intrinsics: cannot read {found} ({e})") from e


def member_sidecar(member: ShardMember, suffix: str) -> ShardMember | None:
    """A sidecar member next to the clip inside the shard, e.g. suffix '.anomalies.csv' or '.gt.parquet'."""
    pp = PurePosixPath(member.member)
    return list_shard(member.shard).files.get(str(pp.with_name(pp.stem + suffix)))


@dataclass
class FetchResult:
    """What `fetch_shards` did: files now on disk, a skip reason (nothing attempted), per-name errors."""

    fetched: list[Path] = field(default_factory=list)
    skipped: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def _hub_token(token: str | None) -> str | None:
    return token or os.environ.get("HF_TOKEN") or os.environ.get("HF_KEY") or None


def _endpoint_reachable(endpoint: str, timeout_s: float) -> str:
    """'' when one TCP connection to the endpoint's host succeeds, else why not (a single attempt, no retry)."""
    u = urlsplit(endpoint)
    host, port = u.hostname, u.port or (443 if u.scheme == "https" else 80)
    if not host:
        return f"endpoint {endpoint!r} has no host"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return ""
    except OSError as e:
        return f"{host}:{port} unreachable ({e.strerror or type(e).__name__})"


def fetch_shards(repo_id: str, names: Iterable[str], dest: str | Path, token: str | None = None, *,
                 endpoint: str | None = None, repo_type: str = "dataset", revision: str | None = None,
                 timeout_s: float = 10.0) -> FetchResult:
    """Download named shards (e.g. 'factory_001/worker_001.tar') of a gated hub dataset into `dest` (the watched
    folder), keeping their repo paths, with `huggingface_hub.hf_hub_download(local_dir=dest)`: one copy on disk,
    written under `dest/.cache` (hidden, never scanned) and moved into place when complete.

    Skipped, with the reason in `FetchResult.skipped` and no request made, when no token is configured
    (argument, HF_TOKEN or HF_KEY), when huggingface_hub is in offline mode (HF_HUB_OFFLINE), or when one TCP
    connection to the endpoint fails. The endpoint is `endpoint`, else HF_ENDPOINT, else the library's default.
    A connection failure during the downloads stops the remaining names (no retry loop of ours)."""
    names = list(names)
    tok = _hub_token(token)
    if not tok:
        return FetchResult(skipped=f"no Hugging Face token configured (HF_TOKEN): {repo_id} is gated; "
                                   f"{len(names)} shard(s) not fetched")
    try:
        import huggingface_hub as hub
        from huggingface_hub import constants
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            RepositoryNotFoundError,
        )
    except ImportError as e:
        return FetchResult(skipped=f"huggingface_hub is not installed ({e})")
    if constants.is_offline_mode():
        return FetchResult(skipped="huggingface_hub offline mode (HF_HUB_OFFLINE) is set: shards not fetched")
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    why = _endpoint_reachable(endpoint, min(timeout_s, 5.0))
    if why:
        return FetchResult(skipped=f"hub not reachable, shards not fetched (offline?): {why}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = FetchResult()
    for i, name in enumerate(names):
        try:
            path = hub.hf_hub_download(repo_id, name, repo_type=repo_type, revision=revision, token=tok,
                                       local_dir=dest, endpoint=endpoint, etag_timeout=timeout_s)
            out.fetched.append(Path(path))
        except GatedRepoError as e:
            out.errors[name] = f"access denied to gated {repo_id} (accept its terms with this token's account): {e}"
        except RepositoryNotFoundError as e:
            out.errors[name] = f"repository {repo_id} not found or not visible with this token: {e}"
        except EntryNotFoundError as e:
            out.errors[name] = f"no file {name!r} in {repo_id}: {e}"
        except HfHubHTTPError as e:
            out.errors[name] = f"hub error: {e}"
        except (ConnectionError, TimeoutError, OSError) as e:
            out.errors[name] = f"connection lost ({type(e).__name__}: {e})"
            out.skipped = f"connection lost at {name!r}; {len(names) - i - 1} remaining shard(s) not attempted"
            break
    return out
