"""Which executor runs a run's steps: one setting, resolved here and nowhere else.

`HANDCLUST_EXECUTOR` (read when the code location is loaded; every process of a deployment must agree):

- `in_process` (default): a run executes all its steps in one process, so a clip's models load once per run.
  The laptop and the one-GPU-box setting.
- `multiprocess`: one process per step on the run's machine (`HANDCLUST_MAX_CONCURRENT` steps at once, default
  one per core). Each model step loads its model in its own process.
- `celery`: steps are Celery tasks (dagster-celery) on `HANDCLUST_CELERY_BROKER` (default
  redis://localhost:6379/0), results on `HANDCLUST_CELERY_BACKEND` (default: the broker). Model steps carry the
  `gpu` queue tag (`defs.common.GPU_STEP_TAGS`), everything else goes to the default queue `dagster`:
  `dagster-celery worker start -A dagster_celery.app -y celery.yaml -q gpu` on GPU machines, `-q dagster` on CPU
  ones (several queues: one comma-separated `-q gpu,dagster`; a repeated `-q` keeps only the last).
- `k8s`: one Kubernetes Job per step (dagster-k8s `k8s_job_executor`), the image from the code location's
  deployment; model steps ask for `nvidia.com/gpu` through their `dagster-k8s/config` tag. Needs the
  K8sRunLauncher (deploy/helm/values.yaml).

dagster-celery / dagster-k8s are imported only when chosen (`pip install handclust_assets[scale]`).
Every setting other than in_process needs the results on storage all step processes reach: a shared folder on
one machine, an object store (`HANDCLUST_STORAGE=s3://...`) across machines.
"""

import os
from collections.abc import Mapping

import dagster as dg

EXECUTORS = ("in_process", "multiprocess", "celery", "k8s")
DEFAULT_BROKER = "redis://localhost:6379/0"


def executor_kind(env: Mapping[str, str] = os.environ) -> str:
    """The executor named by HANDCLUST_EXECUTOR (default in_process); ValueError for an unknown name."""
    kind = (env.get("HANDCLUST_EXECUTOR") or "in_process").strip().lower().replace("-", "_")
    if kind not in EXECUTORS:
        raise ValueError(f"HANDCLUST_EXECUTOR={kind!r}: expected one of {', '.join(EXECUTORS)}")
    return kind


def celery_settings(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The Celery executor's broker and result backend (also what `dagster-celery worker start -y` needs)."""
    broker = env.get("HANDCLUST_CELERY_BROKER") or DEFAULT_BROKER
    return {"broker": broker, "backend": env.get("HANDCLUST_CELERY_BACKEND") or broker}


def executor_from_env(env: Mapping[str, str] = os.environ) -> dg.ExecutorDefinition:
    """The executor of the code location for this environment (see the module docstring)."""
    kind = executor_kind(env)
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "multiprocess":
        return dg.multiprocess_executor.configured(
            {"max_concurrent": int(env.get("HANDCLUST_MAX_CONCURRENT") or 0)}, name="multiprocess")
    if kind == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_settings(env), name="celery")
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor  # image, namespace and defaults come from the run launcher / run config (Helm values)
