"""The Kubernetes Job the k8s executor would submit for one step, rendered without a cluster.

Runs dagster-k8s's own step handler (the `K8sStepHandler` of the executor this code location resolves for
HANDCLUST_EXECUTOR=k8s, on an instance with the `K8sRunLauncher`), with the Kubernetes batch API replaced by a
recorder: what it records is exactly the body Dagster would POST. Used by the tests and to show the GPU pod in
docs/scale-out.md:

    python -m handclust_assets.defs.k8s_spec --values deploy/helm/values.yaml video_embeddings flow
"""

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

NAMESPACE = "handclust"
OFFLINE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: offline, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: offline, user: {token: offline}}]
contexts: [{name: offline, context: {cluster: offline, user: offline, namespace: handclust}}]
current-context: offline
"""


class RecordingBatchApi:
    """Stands in for kubernetes.client.BatchV1Api: keeps the Jobs it is asked to create, contacts nothing."""

    def __init__(self) -> None:
        self.created: list[tuple[str, Any]] = []

    def create_namespaced_job(self, namespace: str, body: Any, **_: Any) -> Any:
        self.created.append((namespace, body))
        return body


CHART_KEYS = {"containerConfig": "container_config", "podSpecConfig": "pod_spec_config",
              "podTemplateSpecMetadata": "pod_template_spec_metadata", "jobSpecConfig": "job_spec_config",
              "jobMetadata": "job_metadata"}


def chart_run_k8s_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """The run launcher's `runK8sConfig` from Dagster Helm chart values, as the chart hands it to the instance."""
    cfg = values.get("runLauncher", {}).get("config", {}).get("k8sRunLauncher", {}).get("runK8sConfig") or {}
    return {CHART_KEYS.get(k, k): v for k, v in cfg.items()}


def chart_deployment(values: Mapping[str, Any], name: str = "handclust") -> dict[str, Any]:
    """The named user-code deployment of the chart values: its image (`repository:tag`), env (a dict), and the
    container context the chart gives the runs it launches (includeConfigInLaunchedRuns: env, secrets, volumes)."""
    (dep,) = [d for d in values["dagster-user-deployments"]["deployments"] if d["name"] == name]
    env = {e["name"]: str(e["value"]) for e in dep.get("env", []) if "value" in e}
    context = {"k8s": {"env_vars": [f"{k}={v}" for k, v in env.items()],
                       "env_secrets": [s["name"] for s in dep.get("envSecrets", [])],
                       "volumes": dep.get("volumes", []), "volume_mounts": dep.get("volumeMounts", [])}}
    return {"image": f"{dep['image']['repository']}:{dep['image']['tag']}", "env": env, "container_context": context}


def _instance(kubeconfig: str, run_k8s_config: Mapping[str, Any] | None) -> Any:
    """A temporary instance whose run launcher is the K8sRunLauncher (as the Helm chart configures it)."""
    return dg.instance_for_test(overrides={"run_launcher": {
        "module": "dagster_k8s", "class": "K8sRunLauncher",
        "config": {"instance_config_map": "dagster-instance", "service_account_name": "dagster",
                   "job_namespace": NAMESPACE, "load_incluster_config": False, "kubeconfig_file": kubeconfig,
                   "postgres_password_secret": "dagster-postgresql-secret", "dagster_home": "/opt/dagster/dagster_home",
                   "run_k8s_config": dict(run_k8s_config or {})},
    }})


def render_step_jobs(step_keys: list[str], *, job_name: str = "process_clip", partition: str = "example_clip",
                     image: str | None = None, run_k8s_config: Mapping[str, Any] | None = None,
                     container_context: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """step key -> the Kubernetes Job manifest (a plain dict) the k8s executor submits for it. `image`: the code
    location's image (default $DAGSTER_CURRENT_IMAGE, as in a Helm user-code deployment); `run_k8s_config`: the
    run launcher's (`chart_run_k8s_config`); `container_context`: the code location's (`chart_deployment`). Needs
    HANDCLUST_EXECUTOR=k8s when the code location is imported."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.execution.api import create_execution_plan
    from dagster._core.execution.context.system import PlanData, PlanOrchestrationContext
    from dagster._core.execution.context_creation_job import create_context_free_log_manager
    from dagster._core.execution.retries import RetryMode
    from dagster._core.executor.init import InitExecutorContext
    from dagster._core.executor.step_delegating.step_handler.base import StepHandlerContext
    from dagster._grpc.types import ExecuteStepArgs
    from dagster_k8s.client import DagsterKubernetesClient
    from kubernetes.client import ApiClient

    image = image or os.environ.get("DAGSTER_CURRENT_IMAGE")
    recon = ReconstructableRepository.for_module("handclust_assets.definitions", "defs", container_image=image,
                                                 container_context=container_context).get_reconstructable_job(job_name)
    job = recon.get_definition()
    if job.executor_def.name != "k8s":
        raise RuntimeError(f"{job_name} runs with the {job.executor_def.name!r} executor: set HANDCLUST_EXECUTOR=k8s")
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = str(Path(tmp) / "kubeconfig")
        Path(kubeconfig).write_text(OFFLINE_KUBECONFIG)
        with _instance(kubeconfig, run_k8s_config) as instance:
            config = {"load_incluster_config": False, "kubeconfig_file": kubeconfig, "retries": {"enabled": {}}}
            executor = job.executor_def.executor_creation_fn(InitExecutorContext(
                job=recon, executor_def=job.executor_def, executor_config=config, instance=instance))
            recorder = RecordingBatchApi()
            handler = executor._step_handler  # the executor's own handler, its API swapped
            handler._api_client = DagsterKubernetesClient.production_client(batch_api_override=recorder)
            run = instance.create_run_for_job(job, tags={"dagster/partition": partition},
                                              job_code_origin=recon.get_python_origin())
            plan = create_execution_plan(recon, run_config={}, tags=run.tags)
            plan_context = PlanOrchestrationContext(
                plan_data=PlanData(job=recon, dagster_run=run, instance=instance, execution_plan=plan,
                                   raise_on_error=True, retry_mode=RetryMode.DISABLED),
                log_manager=create_context_free_log_manager(instance, run), executor=executor, output_capture=None)
            for key in step_keys:
                args = ExecuteStepArgs(recon.get_python_origin(), run.run_id, [key], print_serialized_events=False)
                list(handler.launch_step(StepHandlerContext(instance=instance, plan_context=plan_context,
                                                            steps=plan.steps, execute_step_args=args,
                                                            dagster_run=run)))
    client = ApiClient()
    return {key: client.sanitize_for_serialization(body) for key, (_, body) in zip(step_keys, recorder.created)}


def step_container(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The step's container in a rendered Job manifest."""
    return manifest["spec"]["template"]["spec"]["containers"][0]


def main(argv: list[str]) -> None:
    """`python -m handclust_assets.defs.k8s_spec [--values deploy/helm/values.yaml] STEP...`: the Job manifests
    as JSON; with --values, the image, env and run launcher config of the chart values (env set before the code
    location is imported)."""
    values, dep = None, {}
    if argv[:1] == ["--values"]:
        import yaml

        values, argv = yaml.safe_load(Path(argv[1]).read_text()), argv[2:]
        dep = chart_deployment(values)
        os.environ.update(dep["env"])
        os.environ["DAGSTER_CURRENT_IMAGE"] = dep["image"]
    jobs = render_step_jobs(argv or ["video_embeddings"], container_context=dep.get("container_context"),
                            run_k8s_config=chart_run_k8s_config(values) if values else None)
    json.dump(jobs, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
