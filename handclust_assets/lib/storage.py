"""One storage object for every result: a local folder (default) or an object-store URI through fsspec.

Layout under the root (the same on a disk and in a bucket):

    tables/<asset>/<partition>.parquet   one file per asset partition (`_all.parquet` if unpartitioned)
    handclust.duckdb                     DuckDB catalog: one VIEW per table over its Parquet files (local roots)
    frames/<clip>/                       frame cache (JPEG pack + offsets + meta)
    arrays/<asset>/<clip>.npz            large per-frame arrays (flow fields) that are not worth a table
    models/cluster_model.json            the pooled clustering (fitted spaces + centroids)
    label_cache/                         VLM label answers, keyed by content
    dashboard/                           the lab dashboard (index.html, img/, videos/)

Writes are atomic: on a disk, a temp file (or folder) renamed over the target; on an object store, one PUT per
object (readers see the old object or the new one, never half of one). Code that needs a real folder (the frame
cache reader, the dashboard builder, the video writer) asks for `fetch_dir` / `staging` and gets a local one
(the folder itself on a disk; a mirror under $HANDCLUST_HOME/scratch for a bucket).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from handclust_assets.lib.home import default_storage_root, scratch_dir

CLUSTER_MODEL = ("models", "cluster_model.json")
FETCHED = ".fetched.json"  # in a scratch mirror: the remote identity of each file it holds


def _remote_stamp(info: dict[str, Any]) -> str:
    """What identifies one version of a remote object: its ETag, else its size and modification time."""
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return str(etag).strip('"')
    return f"{info.get('size')}:{info.get('LastModified') or info.get('mtime') or info.get('created')}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() / mkdir() would give: the process umask applied
_DIR_MODE = 0o777 & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace one local file atomically: a temp file beside it (with the umask's permissions), then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes files owner-only; results are read by other users' servers
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Put the folder `src` in place of `dst` (same filesystem): readers see the old folder or the new one."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    old = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}")
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)
    return dst


def _is_uri(root: str) -> bool:
    return "://" in root and not root.startswith("file://")


class Storage:
    """A storage root (`root`: a folder, or `s3://bucket/prefix` for any fsspec filesystem) and its layout."""

    def __init__(self, root: str | os.PathLike | None = None, *, storage_options: dict[str, Any] | None = None,
                 scratch: str | os.PathLike | None = None) -> None:
        raw = str(root) if root not in (None, "") else default_storage_root()
        self.storage_options = dict(storage_options or {})
        if _is_uri(raw):
            import fsspec

            self.protocol = raw.split("://", 1)[0]
            self.root = raw.rstrip("/")
            # listings are never cached: other processes (workers, the pipeline) add tables and files at any time
            self.storage_options.setdefault("use_listings_cache", False)
            self.fs = fsspec.filesystem(self.protocol, **self.storage_options)
        else:
            from fsspec.implementations.local import LocalFileSystem

            self.protocol = "file"
            self.root = str(Path(raw.removeprefix("file://")).expanduser().resolve())
            self.fs = LocalFileSystem()
        tag = hashlib.sha1(self.root.encode()).hexdigest()[:10]
        self.scratch = Path(scratch) if scratch else scratch_dir() / tag

    def __repr__(self) -> str:
        return f"Storage({self.root!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Storage) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    # ---- addresses ---------------------------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return self.protocol == "file"

    def uri(self, *parts: str) -> str:
        """The address of `parts` under the root (a local path string for a folder root)."""
        return "/".join([self.root, *[p.strip("/") for p in parts if p]])

    def path(self, *parts: str) -> Path:
        """A local path under a folder root. Object-store roots have none: use `fetch_dir` / `staging`."""
        if not self.is_local:
            raise ValueError(f"{self.root} is an object-store root: there is no local path for {'/'.join(parts)}")
        return Path(self.root, *parts)

    def local_root(self) -> Path:
        """The root itself for a folder; the scratch mirror for an object store."""
        return Path(self.root) if self.is_local else self.scratch

    def sub(self, *parts: str) -> Storage:
        """The storage rooted at `parts` under this root (same filesystem, options and scratch mirror)."""
        scratch = None if self.is_local else self.scratch.joinpath(*parts)
        return Storage(self.uri(*parts), storage_options=self.storage_options, scratch=scratch)

    # ---- objects -----------------------------------------------------------------------------------------------
    def exists(self, *parts: str) -> bool:
        return os.path.exists(self.uri(*parts)) if self.is_local else self.fs.exists(self.uri(*parts))

    def read_bytes(self, *parts: str) -> bytes:
        if self.is_local:
            return Path(self.uri(*parts)).read_bytes()
        return self.fs.cat_file(self.uri(*parts))

    def write_bytes(self, data: bytes, *parts: str) -> str:
        """Replace one object atomically (temp + rename on a disk, a single PUT on an object store)."""
        target = self.uri(*parts)
        if not self.is_local:
            self.fs.pipe_file(target, data)
            return target
        atomic_write_bytes(target, data)
        return target

    def read_many(self, paths: list[tuple[str, ...]]) -> list[bytes]:
        """Several objects at once (on an object store: concurrent GETs in one call), in the order given."""
        if self.is_local or len(paths) < 2:
            return [self.read_bytes(*p) for p in paths]
        uris = [self.uri(*p) for p in paths]
        got = self.fs.cat(uris, on_error="raise")
        bare = {u.split("://", 1)[-1]: u for u in uris}
        by_uri = {bare.get(k.split("://", 1)[-1], k): v for k, v in got.items()}
        return [by_uri[u] for u in uris]

    def read_json(self, *parts: str) -> Any | None:
        """The parsed JSON object, or None when it does not exist."""
        try:
            return json.loads(self.read_bytes(*parts))
        except FileNotFoundError:
            return None

    def write_json(self, obj: Any, *parts: str) -> str:
        return self.write_bytes(json.dumps(obj).encode(), *parts)

    def listdir(self, *parts: str) -> list[str]:
        """Names directly under `parts` (files and folders; hidden temp files excluded); [] when absent."""
        base = self.uri(*parts)
        try:
            if self.is_local:
                names = os.listdir(base)
            else:
                names = [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(base, detail=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(n for n in names if not n.startswith("."))

    def rm(self, *parts: str, recursive: bool = False) -> bool:
        """Remove a file (or a folder with recursive=True); False when there was nothing."""
        target = self.uri(*parts)
        if not self.exists(*parts):
            return False
        if self.is_local:
            p = Path(target)
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        else:
            self.fs.rm(target, recursive=recursive)
        return True

    # ---- folders -----------------------------------------------------------------------------------------------
    @contextmanager
    def staging(self, *parts: str) -> Iterator[Path]:
        """A local folder to build `parts` in; on success it replaces `parts` as a whole (atomic rename on a disk,
        an upload then removal of stale objects on an object store). On error nothing changes."""
        base = self.local_root() / ".staging"
        base.mkdir(parents=True, exist_ok=True)
        if self.is_local:
            dest = self.path(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
            os.chmod(tmp, _DIR_MODE)  # it becomes the published folder: readable like any other
        else:
            tmp = Path(tempfile.mkdtemp(prefix="stage-", dir=base))
        try:
            yield tmp
            self.publish_dir(tmp, *parts)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def publish_dir(self, local: Path, *parts: str, prune: bool = True) -> str:
        """Make `parts` hold the files of the local folder `local` (exactly those, unless prune=False: an upload
        that leaves other objects under `parts` alone; object stores only)."""
        target = self.uri(*parts)
        if self.is_local:
            dest = Path(target)
            if Path(local).resolve() == dest.resolve():
                return target
            dest.parent.mkdir(parents=True, exist_ok=True)
            staged = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}")
            shutil.copytree(local, staged) if Path(local).parent != dest.parent else os.replace(local, staged)
            replace_dir(staged, dest)
            return target
        files = {str(f.relative_to(local)).replace(os.sep, "/"): f for f in Path(local).rglob("*") if f.is_file()}
        for rel, f in files.items():
            self.fs.put_file(str(f), f"{target}/{rel}")
        if prune and self.fs.exists(target):
            for obj in self.fs.find(target):
                rel = obj[len(target.split("://", 1)[-1]):].lstrip("/")
                if rel not in files:
                    self.fs.rm_file(obj)
        if prune:
            self._seed_mirror(Path(local), files, *parts)
        return target

    def _seed_mirror(self, local: Path, files: dict[str, Path], *parts: str) -> None:
        """After an upload: the scratch mirror of `parts` gets the same files with their remote stamps, so the
        next `fetch_dir` on this machine downloads nothing."""
        dest = self.scratch.joinpath(*parts)
        if Path(local).resolve() == dest.resolve():
            return
        found = self.fs.find(self.uri(*parts), detail=True)
        prefix = self.uri(*parts).split("://", 1)[-1]
        stamps = {obj.split("://", 1)[-1][len(prefix):].lstrip("/"): _remote_stamp(info) for obj, info in found.items()}
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}")
        shutil.copytree(local, tmp)
        (tmp / FETCHED).write_text(json.dumps({rel: stamps[rel] for rel in files if rel in stamps}))
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)

    def fetch_dir(self, *parts: str) -> Path:
        """A local folder with the content of `parts`: the folder itself on a disk; on an object store a mirror
        under scratch that holds exactly the remote files, each refreshed when its remote identity (ETag, else
        size and modification time) changed (FileNotFoundError when absent)."""
        if self.is_local:
            p = self.path(*parts)
            if not p.exists():
                raise FileNotFoundError(f"{p} does not exist")
            return p
        target = self.uri(*parts)
        found = self.fs.find(target, detail=True)
        if not found:
            raise FileNotFoundError(f"{target} does not exist")
        dest = self.scratch.joinpath(*parts)
        dest.mkdir(parents=True, exist_ok=True)
        stamps_file = dest / FETCHED
        try:
            stamps = json.loads(stamps_file.read_text())
        except (FileNotFoundError, ValueError):
            stamps = {}
        prefix = target.split("://", 1)[-1]
        fresh: dict[str, str] = {}
        for obj, info in found.items():
            rel = obj.split("://", 1)[-1][len(prefix):].lstrip("/")
            fresh[rel] = _remote_stamp(info)
            local = dest / rel
            if not local.exists() or stamps.get(rel) != fresh[rel]:
                local.parent.mkdir(parents=True, exist_ok=True)
                tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:6]}")
                self.fs.get_file(obj, str(tmp))
                os.replace(tmp, local)
        for f in [f for f in dest.rglob("*") if f.is_file() and not f.name.startswith(".")]:
            if str(f.relative_to(dest)).replace(os.sep, "/") not in fresh:
                f.unlink()  # gone from the store: a stale file must not outlive its object
        tmp_stamps = stamps_file.with_name(f"{FETCHED}.{uuid.uuid4().hex[:6]}")
        tmp_stamps.write_text(json.dumps(fresh))
        os.replace(tmp_stamps, stamps_file)
        return dest

    # ---- the layout --------------------------------------------------------------------------------------------
    def frames(self, clip: str) -> tuple[str, str]:
        return ("frames", clip)

    def arrays(self, asset: str, clip: str) -> tuple[str, str, str]:
        return ("arrays", asset, f"{clip}.npz")

    def load_cluster_model(self) -> dict | None:
        return self.read_json(*CLUSTER_MODEL)

    def save_cluster_model(self, model: dict) -> str:
        return self.write_json(model, *CLUSTER_MODEL)

    def catalog_path(self) -> Path:
        """The DuckDB catalog file (views only): in the root for a folder, in scratch for an object store."""
        return self.local_root() / "handclust.duckdb"


def as_storage(root: Storage | str | os.PathLike | None = None) -> Storage:
    """Accept a Storage, a folder, a URI or None (the default root)."""
    return root if isinstance(root, Storage) else Storage(root)
