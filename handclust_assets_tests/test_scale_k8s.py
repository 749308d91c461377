"""The pod specs Dagster would submit on Kubernetes, rendered by dagster-k8s's own step handler (no cluster) for
the deployment in deploy/helm/values.yaml: a model step's pod asks for one GPU, on a GPU node, with the CUDA
image; a CPU step's pod asks for none and runs the code location's (CPU) image; both get the deployment's
environment (results on the bucket) and secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("dagster_k8s", reason="the [scale] extra (dagster-k8s) is not installed")

from handclust_assets.defs.k8s_spec import chart_deployment, step_container
from handclust_assets_tests.support import REPO

VALUES = REPO / "deploy" / "helm" / "values.yaml"
GPU_STEPS = ["scene_embeddings", "video_embeddings", "tool_scores"]
CPU_STEPS = ["flow", "pose", "hands", "segments"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Job manifests for GPU and CPU steps of a clip run, rendered in a fresh process configured like the chart's
    user-code deployment (HANDCLUST_EXECUTOR=k8s and the rest of its env come from the values file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HANDCLUST_", "DAGSTER_"))}
    env["DAGSTER_HOME"] = str(tmp_path_factory.mktemp("k8s_home"))
    proc = subprocess.run([sys.executable, "-m", "handclust_assets.defs.k8s_spec", "--values", str(VALUES),
                           *GPU_STEPS, *CPU_STEPS], env=env, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _gpus(manifest: dict) -> dict:
    res = step_container(manifest).get("resources") or {}
    return {kind: (res.get(kind) or {}).get("nvidia.com/gpu") for kind in ("requests", "limits")}


def test_model_step_pod_has_the_gpu_limit_and_a_cpu_step_pod_has_none(rendered: dict) -> None:
    values = yaml.safe_load(VALUES.read_text())
    deployment = chart_deployment(values)
    assert set(rendered) == {*GPU_STEPS, *CPU_STEPS}
    for step in GPU_STEPS:
        job = rendered[step]
        pod = job["spec"]["template"]["spec"]
        assert job["kind"] == "Job" and job["metadata"]["labels"]["dagster/op"] == step
        assert _gpus(job) == {"requests": "1", "limits": "1"}
        assert step_container(job)["image"] == deployment["env"]["HANDCLUST_GPU_IMAGE"]
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    for step in CPU_STEPS:
        job = rendered[step]
        pod = job["spec"]["template"]["spec"]
        assert "nvidia.com/gpu" not in json.dumps(job)
        assert step_container(job)["image"] == deployment["image"]
        # the run launcher's default step size (runK8sConfig in the values) applies to CPU steps
        assert step_container(job)["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
        assert not pod.get("tolerations") and not pod.get("nodeSelector")


def test_every_step_pod_gets_the_deployment_env_and_secrets(rendered: dict) -> None:
    deployment = chart_deployment(yaml.safe_load(VALUES.read_text()))
    for step, job in rendered.items():
        container = step_container(job)
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["DAGSTER_RUN_STEP_KEY"] == step
        assert env["HANDCLUST_STORAGE"] == deployment["env"]["HANDCLUST_STORAGE"].strip()
        assert env["HANDCLUST_STORAGE"].startswith("s3://")
        assert {"secretRef": {"name": "handclust-s3"}} in container["envFrom"]
        assert container["args"][:3] == ["dagster", "api", "execute_step"]
        assert Path(container["volumeMounts"][0]["mountPath"]).is_absolute()
