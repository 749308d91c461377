"""Tar-shard ingest: members are clips, decoded in place (nothing extracted), bad shards fail only their members."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from handclust_assets.lib.errors import ClipError
from handclust_assets.lib.shards import (
    ShardMember,
    fetch_shards,
    list_shard,
    load_member_intrinsics,
    resolve_source,
    scan_shards,
    scan_sources,
    source_fingerprint,
)
from handclust_assets.video.frame_cache import META, PACK, FrameCache, build_frame_cache
from handclust_assets.video.probe import content_hash, probe_video
from handclust_assets.video.writer import moving_pattern, write_video
from handclust_assets_tests.support import serve_fake_hub

CODEC = "libx265" if "libx265" in av.codecs_available else "libx264"
INTRINSICS = {"fx": 70.0, "fy": 70.0, "cx": 80.0, "cy": 48.0, "k1": 0.05, "k2": -0.01, "k3": 0.0, "k4": 0.0}


def _video_bytes(tmp: Path, seed: int, n: int = 30) -> bytes:
    p = write_video(tmp / f"src_{seed}_{n}.mp4", moving_pattern(n, 160, 96, seed=seed), 30.0, codec=CODEC)
    data = p.read_bytes()
    p.unlink()
    return data


def _write_tar(path: Path, members: list[tuple[str, bytes]], mtime: int = 1_700_000_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), mtime
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("clips")
    return {"a": _video_bytes(tmp, 1), "b": _video_bytes(tmp, 2), "c": _video_bytes(tmp, 3, n=24)}


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_good_shard_members_are_clips_decoded_in_place(tmp_path: Path, clips: dict[str, bytes]) -> None:
    watched = tmp_path / "videos"
    shard = _write_tar(watched / "factory_001" / "worker_001.tar", [
        ("intrinsics.json", json.dumps(INTRINSICS).encode()), ("00001.mp4", clips["a"]),
        ("00002.mp4", clips["b"]), ("README.txt", b"not a clip")])
    sources, problems = scan_sources(watched)
    assert problems == {}
    assert list(sources) == ["factory_001__worker_001__00001", "factory_001__worker_001__00002"]
    member = sources["factory_001__worker_001__00001"]
    assert isinstance(member, ShardMember) and member.ref == f"{shard.resolve()}::00001.mp4"

    before = _files(tmp_path)
    info = probe_video(member)
    assert info.codec == ("hevc" if CODEC == "libx265" else "h264")
    assert (info.width, info.height, info.frame_count) == (160, 96, 30) and abs(info.fps - 30) < 1e-6
    assert info.path == member.ref and info.size_bytes == len(clips["a"])
    intr = load_member_intrinsics(member)
    assert intr is not None and intr.source == f"{shard.resolve()}::intrinsics.json"
    cache = tmp_path / "cache" / "c1"
    stats = build_frame_cache(member, cache, sample_fps=10, max_side=160, intrinsics=intr, info=info)
    assert stats.n_frames == 10 and FrameCache(cache).read(0).shape == (96, 160, 3)
    meta = json.loads((cache / META).read_text())
    assert meta["source"] == member.ref and meta["rectified"] is True
    # nothing but the cache was written: no extracted member, no temp copy
    new_files = _files(tmp_path) - before
    assert {cache / PACK, cache / "offsets.npy", cache / META} <= new_files
    assert all(f.parent == cache and f.suffix not in (".mp4", ".tar") for f in new_files)

    # the member hashes and decodes exactly like its extracted copy
    extracted = tmp_path / "extracted" / "00001.mp4"
    extracted.parent.mkdir()
    extracted.write_bytes(clips["a"])
    assert info.content_hash == content_hash(extracted) == content_hash(member)
    build_frame_cache(extracted, tmp_path / "cache" / "c2", sample_fps=10, max_side=160, intrinsics=intr)
    assert (cache / PACK).read_bytes() == (tmp_path / "cache" / "c2" / PACK).read_bytes()
    assert resolve_source(member.ref) == member and resolve_source(str(extracted)) == extracted


def test_changed_shard_reruns_exactly_its_changed_members(tmp_path: Path, clips: dict[str, bytes]) -> None:
    watched = tmp_path / "videos"
    shard = watched / "f" / "w.tar"
    _write_tar(shard, [("intrinsics.json", b"{}"), ("00001.mp4", clips["a"]), ("00002.mp4", clips["b"])])
    old_sources = scan_sources(watched)[0]
    old = {k: source_fingerprint(m) for k, m in old_sources.items()}
    # rewritten shard: 00001 unchanged but moved (a bigger member now precedes it), 00002 replaced, 00003 new
    _write_tar(shard, [("intrinsics.json", b"{}" + b" " * 5000), ("00001.mp4", clips["a"]),
                       ("00002.mp4", clips["c"]), ("00003.mp4", clips["b"])])
    sources = scan_sources(watched)[0]
    new = {k: source_fingerprint(m) for k, m in sources.items()}
    assert sources["f__w__00001"].offset_data > old_sources["f__w__00001"].offset_data  # moved, same bytes
    changed = {k for k in new if old.get(k) != new[k]}
    assert changed == {"f__w__00002", "f__w__00003"}
    assert probe_video(sources["f__w__00002"]).frame_count == 24


def test_truncated_shard_fails_only_the_cut_member(tmp_path: Path, clips: dict[str, bytes]) -> None:
    watched = tmp_path / "videos"
    shard = _write_tar(watched / "f" / "w.tar", [("intrinsics.json", json.dumps(INTRINSICS).encode()),
                                                ("00001.mp4", clips["a"]), ("00002.mp4", clips["b"])])
    m2 = list_shard(shard).files["00002.mp4"]
    data = shard.read_bytes()
    shard.write_bytes(data[: m2.offset_data + m2.size // 2])  # download stopped inside the second clip
    sources, problems = scan_sources(watched)
    assert set(sources) == {"f__w__00001", "f__w__00002"}
    assert "truncated" in problems[str(shard.resolve())]
    assert probe_video(sources["f__w__00001"]).frame_count == 30
    with pytest.raises(ClipError) as e:
        probe_video(sources["f__w__00002"])
    assert "w.tar::00002.mp4" in str(e.value) and "truncated shard" in str(e.value)
    with pytest.raises(ClipError, match="w.tar::00002.mp4: truncated shard"):
        build_frame_cache(sources["f__w__00002"], tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_shard_cut_inside_a_header_and_compressed_shards_are_named(tmp_path: Path, clips: dict[str, bytes]) -> None:
    watched = tmp_path / "videos"
    shard = _write_tar(watched / "s.tar", [("00001.mp4", clips["a"])])
    shard.write_bytes(shard.read_bytes()[:300])
    _write_tar(tmp_path / "plain.tar", [("00001.mp4", clips["a"])])
    with tarfile.open(watched / "z.tar.gz", "w:gz") as tf:
        tf.add(tmp_path / "plain.tar", "00001.mp4")
    scan = scan_shards(watched)
    assert scan.members == {}
    assert "not a readable tar" in scan.problems[str(shard.resolve())]
    assert "compressed shard" in scan.problems[str((watched / "z.tar.gz").resolve())]


def test_non_video_member_fails_alone(tmp_path: Path, clips: dict[str, bytes]) -> None:
    watched = tmp_path / "videos"
    _write_tar(watched / "f" / "w.tar", [("intrinsics.json", json.dumps(INTRINSICS).encode()),
                                        ("00001.mp4", clips["a"]), ("00002.mp4", b"this is not a video\n" * 50)])
    sources, problems = scan_sources(watched)
    assert problems == {} and set(sources) == {"f__w__00001", "f__w__00002"}
    assert probe_video(sources["f__w__00001"]).frame_count == 30
    with pytest.raises(ClipError) as e:
        probe_video(sources["f__w__00002"])
    msg = str(e.value)
    assert "w.tar::00002.mp4" in msg and "not a readable video container" in msg


@pytest.mark.parametrize(("intrinsics", "problem"), [
    (None, "missing intrinsics"),
    (b'{"fx": 70, "fy": 70, "cx": 80,', "not valid JSON"),
    (json.dumps({**INTRINSICS, "fx": -5}).encode(), "focal lengths must be positive"),
    (json.dumps({"fx": 70, "fy": 70, "cx": 80, "cy": 48}).encode(), "no fisheye coefficients"),
    (json.dumps({**INTRINSICS, "width": "wide"}).encode(), "'width' is not a number"),
    (b"{\x80\x81 garbage", "not UTF-8"),
])
def test_bad_or_missing_intrinsics_name_shard_and_member(tmp_path: Path, clips: dict[str, bytes],
                                                         intrinsics: bytes | None, problem: str) -> None:
    members = [("00001.mp4", clips["a"])] + ([("intrinsics.json", intrinsics)] if intrinsics is not None else [])
    _write_tar(tmp_path / "v" / "w.tar", members)
    (member,) = scan_sources(tmp_path / "v")[0].values()
    with pytest.raises(ClipError) as e:
        load_member_intrinsics(member)
    assert str(e.value).startswith(f"{member.ref}: ") and problem in str(e.value)
    if intrinsics is None:
        assert load_member_intrinsics(member, required=False) is None
        (tmp_path / "v" / "intrinsics.json").write_text(json.dumps(INTRINSICS))  # beside the shard: applies
        assert load_member_intrinsics(member).source == str(tmp_path / "v" / "intrinsics.json")
    assert probe_video(member).frame_count == 30  # the video itself is fine


def test_keys_follow_folder_rules_and_never_collide(tmp_path: Path, clips: dict[str, bytes]) -> None:
    watched = tmp_path / "videos"
    _write_tar(watched / "Factory 001" / "worker_001.tar", [("worker_001/00001.mp4", clips["a"]),
                                                          ("worker_001/._00001.mp4", b"mac junk"),
                                                          ("other/CLIP #2.MP4", clips["b"])])
    plain = watched / "factory_001" / "worker_001" / "00001.mp4"  # an unpacked copy with the same key
    plain.parent.mkdir(parents=True)
    plain.write_bytes(clips["a"])
    sources, _ = scan_sources(watched)
    h = hashlib.sha1(b"Factory 001/worker_001.tar::worker_001/00001.mp4").hexdigest()[:8]
    assert sources["factory_001__worker_001__00001"] == plain  # the plain file keeps its key
    assert sources[f"factory_001__worker_001__00001_{h}"].member == "worker_001/00001.mp4"
    assert sources["factory_001__worker_001__other__clip_2"].member == "other/CLIP #2.MP4"
    assert len(sources) == 3
    assert all(k == k.lower() and all(c.isalnum() or c in "_-" for c in k) for k in sources)
    assert scan_sources(watched)[0] == sources  # stable across scans


def test_resolve_source_names_missing_members(tmp_path: Path, clips: dict[str, bytes]) -> None:
    shard = _write_tar(tmp_path / "w.tar", [("00001.mp4", clips["a"])])
    with pytest.raises(ClipError, match="no such member"):
        resolve_source(f"{shard}::00009.mp4")
    with pytest.raises(ClipError, match="shard does not exist"):
        resolve_source(f"{tmp_path / 'gone.tar'}::00001.mp4")


class _Hub(http.server.BaseHTTPRequestHandler):
    """Just enough of the hub's resolve endpoint for hf_hub_download: HEAD (metadata) and GET (bytes)."""

    files: dict[str, bytes] = {}
    token = "hf_test"
    requests: list[str] = []

    def _serve(self, body: bool) -> None:
        type(self).requests.append(f"{self.command} {self.path}")
        prefix = "/datasets/org/ego/resolve/main/"
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self.send_response(403)
            self.send_header("X-Error-Code", "GatedRepo")
            self.send_header("X-Error-Message", "Access to dataset org/ego is restricted.")
            self.end_headers()
            return
        data = self.files.get(self.path.removeprefix(prefix)) if self.path.startswith(prefix) else None
        if data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", "a" * 40)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_HEAD(self) -> None:
        self._serve(False)

    def do_GET(self) -> None:
        self._serve(True)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from serve_fake_hub(monkeypatch, _Hub)


def test_fetch_shards_from_a_local_hub(tmp_path: Path, clips: dict[str, bytes], hub: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    tar = _write_tar(tmp_path / "src.tar", [("intrinsics.json", json.dumps(INTRINSICS).encode()),
                                            ("00001.mp4", clips["a"])])
    _Hub.files = {"factory_001/worker_001.tar": tar.read_bytes()}
    monkeypatch.setenv("HF_ENDPOINT", hub)  # the endpoint is read at call time
    watched = tmp_path / "videos"
    res = fetch_shards("org/ego", ["factory_001/worker_001.tar", "factory_001/worker_404.tar"], watched,
                       token="hf_test")
    assert res.skipped == "" and res.fetched == [watched / "factory_001" / "worker_001.tar"]
    assert "no file 'factory_001/worker_404.tar'" in res.errors["factory_001/worker_404.tar"]
    assert res.fetched[0].read_bytes() == tar.read_bytes()
    sources, problems = scan_sources(watched)  # the hub's cache folder is hidden: only the shard's member
    assert problems == {} and list(sources) == ["factory_001__worker_001__00001"]
    assert probe_video(sources["factory_001__worker_001__00001"]).frame_count == 30

    denied = fetch_shards("org/ego", ["factory_001/worker_001.tar"], tmp_path / "d", token="wrong")
    assert "access denied to gated org/ego" in denied.errors["factory_001/worker_001.tar"]


def test_fetch_shards_skips_offline_without_requests(tmp_path: Path, hub: str, monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_KEY", raising=False)
    res = fetch_shards("org/ego", ["a.tar"], tmp_path, endpoint=hub)
    assert res.fetched == [] and "no Hugging Face token configured" in res.skipped
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    t = time.perf_counter()
    res = fetch_shards("org/ego", ["a.tar", "b.tar"], tmp_path, token="hf_test", endpoint=dead)
    assert "hub not reachable" in res.skipped and res.fetched == [] and res.errors == {}
    assert time.perf_counter() - t < 5.0
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    res = fetch_shards("org/ego", ["a.tar"], tmp_path, token="hf_test", endpoint=hub)
    assert "offline mode" in res.skipped
    assert _Hub.requests == []  # none of the skipped calls reached the server
    assert not any(p.name.endswith(".tar") for p in tmp_path.rglob("*"))
