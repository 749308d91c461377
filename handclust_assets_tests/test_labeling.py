"""Cluster labels: offline from evidence; over HTTP against a real local OpenAI-compatible server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from handclust_assets.lib.labeling import ClusterEvidence, OpenAICompatibleLabeler, clean_label, offline_label


class _Server:
    def __init__(self, status: int = 200, reply: str = "Laying bricks.") -> None:
        self.requests: list[dict] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                if status == 200:
                    msg = {"choices": [{"message": {"role": "assistant", "content": reply}}]}
                    self.wfile.write(json.dumps(msg).encode())

            def log_message(self, *a: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def ev() -> ClusterEvidence:
    kf = [np.full((48, 64, 3), v, np.uint8) for v in (10, 200)]
    return ClusterEvidence(cluster_id=2, modality="fusion", top_tools=[("mason trowel", 0.7)], motion_period_s=1.5,
                           periodicity=0.5, camera_motion=0.001, residual_motion=0.004, phase="production",
                           n_segments=12, n_clips=3, keyframes=kf)


def test_http_labeler_sends_images_and_caches(ev: ClusterEvidence, tmp_path: Path) -> None:
    srv = _Server()
    lab = OpenAICompatibleLabeler(srv.url, "sk-test", "gemini-test", cache_dir=tmp_path)
    assert lab.label(ev) == ("Laying bricks", "gemini-test")
    req = srv.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    content = req["body"]["messages"][0]["content"]
    assert req["body"]["model"] == "gemini-test" and content[0]["type"] == "text" and "mason trowel" in content[0]["text"]
    imgs = [c for c in content if c["type"] == "image_url"]
    assert len(imgs) == 2 and imgs[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert lab.label(ev) == ("Laying bricks", "cache:gemini-test")
    assert len(srv.requests) == 1
    srv.httpd.shutdown()


def test_http_error_falls_back_to_offline(ev: ClusterEvidence, tmp_path: Path) -> None:
    srv = _Server(status=500)
    label, source = OpenAICompatibleLabeler(srv.url, "k", "m", cache_dir=tmp_path).label(ev)
    assert label == offline_label(ev) and "HTTP 500" in source and srv.url in source
    srv.httpd.shutdown()
    label, source = OpenAICompatibleLabeler("http://127.0.0.1:9", "k", "m", timeout_s=2).label(ev)
    assert source.startswith("offline-fallback") and "unreachable" in source


def test_offline_labels_follow_the_evidence(ev: ClusterEvidence) -> None:
    assert offline_label(ev) == "hand work · mason trowel · rhythm 1.5s"
    walk = ClusterEvidence(cluster_id=0, modality="egomotion", camera_motion=0.02, motion_period_s=1.0, periodicity=0.4)
    assert offline_label(walk) == "walking · rhythm 1.0s"
    assert offline_label(ClusterEvidence(cluster_id=1, modality="x")) == "idle"
    assert clean_label('Label: "Scooping mortar."\nextra') == "Scooping mortar"


def test_offline_labels_are_relative_to_the_corpus() -> None:
    """The same absolute motion means different things on different cameras: labels compare clusters."""
    from handclust_assets.lib.labeling import offline_labels

    lay = [0.0] * 12
    lay[8] = 1.0  # all hand motion in the low-left cell (row-major 3 x 4 grid)
    evs = [
        ClusterEvidence(cluster_id=0, modality="fusion", camera_motion=4e-4, residual_motion=1e-4),
        ClusterEvidence(cluster_id=1, modality="fusion", camera_motion=4e-4, residual_motion=1.1e-3,
                        motion_layout=lay, motion_period_s=2.5, periodicity=0.3),
        ClusterEvidence(cluster_id=2, modality="fusion", camera_motion=0.02, residual_motion=8e-4,
                        motion_period_s=1.0, periodicity=0.3),
        ClusterEvidence(cluster_id=3, modality="fusion", camera_motion=0.02, residual_motion=4e-3,
                        motion_period_s=1.1, periodicity=0.3),
        ClusterEvidence(cluster_id=4, modality="fusion", camera_motion=5e-4, residual_motion=1.2e-4),
    ]
    labels = offline_labels(evs)
    assert labels[1] == "hand work · low left · rhythm 2.5s"  # 11x the stillest cluster's hand motion
    assert labels[2] == "walking · rhythm 1.0s" and labels[3].startswith("walking, hands busy")
    assert labels[0] == "still #0" and labels[4] == "still #4"  # same evidence class: told apart by id
    assert offline_label(evs[1]) == "idle"  # absolute thresholds (no corpus) would call it idle
