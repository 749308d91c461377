"""DuckDB over an object-store root without a round trip per file per query.

DuckDB (with its httpfs extension unavailable offline) reads an object store through an fsspec filesystem
registered on the connection. Straight over s3fs every query costs a LIST per table, a HEAD and GETs per file:
the dashboard's ~60 queries over ~35 tables made ~2,300 requests. `MirrorFileSystem` is the filesystem
registered instead, under its own protocol (`hcmirror://bucket/prefix/...`):

- listings come from the store, one LIST per folder per *generation*; `invalidate()` starts a new generation
  (ResultsConnection does before every query, so new partitions and tables are seen);
- a file is read from a local copy under the storage's scratch folder, named by the object's ETag: it is
  downloaded once per version (only the files a query opens), and a re-materialized partition (new ETag) is
  downloaded again. Copies of other versions are removed.

Read-only; the store stays the only source of truth (the copies are a cache that can be deleted at any time).
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fsspec import AbstractFileSystem

from handclust_assets.lib.storage import Storage, _remote_stamp

PROTOCOL = "hcmirror"


class MirrorFileSystem(AbstractFileSystem):
    """Read-only fsspec view of an object-store `Storage` for DuckDB: store listings, locally cached files."""

    protocol = PROTOCOL
    cachable = False  # one instance per connection: its listings are that connection's generation

    def __init__(self, store: Storage, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if store.is_local:
            raise ValueError(f"{store.root} is a folder: DuckDB reads it directly")
        self.store = store
        self.remote = store.fs
        self.base = store.root.split("://", 1)[1]  # bucket/prefix
        self.copies = store.scratch / ".mirror"
        self._listings: dict[str, list[dict[str, Any]]] = {}
        self.downloads = 0

    def uri(self, *parts: str) -> str:
        """The address DuckDB is given for `parts` under the store's root."""
        return "/".join([f"{PROTOCOL}://{self.base}", *[p.strip("/") for p in parts if p]])

    def invalidate(self) -> None:
        """Forget every listing: the next glob/info sees the store as it is now."""
        self._listings.clear()

    # ---- listings ----------------------------------------------------------------------------------------------
    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        if path not in self._listings:
            try:
                entries = self.remote.ls(path, detail=True)
            except FileNotFoundError:
                entries = []
            self._listings[path] = [{**e, "name": e["name"].rstrip("/")} for e in entries]
        entries = self._listings[path]
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        parent = path.rsplit("/", 1)[0]
        try:
            for e in self.ls(parent, detail=True):
                if e["name"] == path:
                    return e
        except FileNotFoundError:
            pass
        raise FileNotFoundError(path)

    def modified(self, path: str) -> datetime:
        info = self.info(path)
        when = info.get("LastModified") or info.get("mtime")
        if isinstance(when, datetime):
            return when
        return datetime.fromtimestamp(float(when or 0), tz=UTC)

    # ---- files -------------------------------------------------------------------------------------------------
    def local_copy(self, path: str) -> Path:
        """The local copy of the object's current version (downloaded when this version is not there yet)."""
        return self.local_copies([path])[0]

    def local_copies(self, paths: list[str]) -> list[Path]:
        """The local copies of several objects' current versions, in order: the versions not there yet are
        downloaded in one concurrent batch (the remote filesystem's `get`), each then moved into place at once and
        the copies of its other versions removed. FileNotFoundError where an object is not listed (any more)."""
        plans = []
        for path in paths:
            path = self._strip_protocol(path)
            info = self.info(path)
            if info.get("type") == "directory":
                raise IsADirectoryError(path)
            rel = path[len(self.base):].lstrip("/")
            stamp = _remote_stamp(info).replace("/", "_").replace(":", "_")
            plans.append((path, self.copies / Path(rel).parent / f"{Path(rel).name}@{stamp}"))
        missing = list({local: path for path, local in plans if not local.exists()}.items())
        if missing:
            temps = []
            for local, _ in missing:
                local.parent.mkdir(parents=True, exist_ok=True)
                temps.append(local.parent / f".{local.name}.{uuid.uuid4().hex[:6]}")
            try:  # (two lists: fsspec pairs them as given, no expansion or sorting)
                self.remote.get([path for _, path in missing], [str(t) for t in temps])
                for (local, _), tmp in zip(missing, temps):
                    os.replace(tmp, local)
                    self.downloads += 1
                    name = local.name.rsplit("@", 1)[0]
                    for old in local.parent.glob(f"{name}@*"):
                        if old != local:
                            old.unlink(missing_ok=True)
            finally:
                for tmp in temps:
                    tmp.unlink(missing_ok=True)
        return [local for _, local in plans]

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "r" not in mode or "+" in mode:
            raise PermissionError(f"{PROTOCOL}:// is read-only ({mode!r} for {path})")
        return open(self.local_copy(path), "rb")  # the caller closes it
