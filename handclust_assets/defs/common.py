"""Project-wide wiring policy, written once: partitions, automation, freshness, failures, skips, progress.

- Per-clip assets are partitioned by clip, run by the folder sensor (one run per clip, the `process_clip` job);
  they carry no automation condition, so the automation sensor never launches a second run of them.
- Cross-clip assets update on their own when clip results change (`CROSS_CLIP`), never blocked by a clip that
  failed or a modality whose model is unavailable (missing upstream partitions are left out, not waited for),
  and only when no clip run is queued or running (a burst of clips -> one cross-clip run).
- What needs the pooled clustering for every clip (timelines, overlays) is cross-clip too: one run per burst.
- A named problem of one clip (ClipError) fails its partition with the file and problem in the UI; a model that is
  unavailable skips its modality (no output, an observation with the reason) instead of failing the run.
- Every asset's compute is measured (`measured`: wall, CPU and GPU seconds, peak memory) and the numbers are
  numeric metadata of its materialization, which `cost_report` reads back from the instance.
"""

import functools
import inspect
import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any

import dagster as dg

from handclust_assets.defs.partitions import clip_partitions
from handclust_assets.lib.errors import ClipError, ModelUnavailableError, NothingYet

# What a clip's own run builds (groups ingest, modalities, segments; per-clip repetitions).
CLIP_RUN_ASSETS = dg.AssetSelection.groups("ingest", "modalities", "segments") | dg.AssetSelection.assets("repetitions")

# The root of the cross-clip graph (`segment_features`): after any clip result changed, once no upstream clip
# partition is queued or running; missing upstream partitions (bad clips, skipped modalities) do not block.
CROSS_CLIP = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("clip results changed, no clip run in progress")

# The rest of the cross-clip graph follows the root (in the same run): their clip-run inputs alone never start them
# (a clip's `clips` row lands long before its run ends).
FOLLOWS_POOLING = (
    dg.AutomationCondition.any_deps_updated().ignore(CLIP_RUN_ASSETS).since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("follows the cross-clip root")


# A lab that ingests footage daily expects the pooled clustering and its scores at most a day old.
DAILY = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=24), warn_window=timedelta(hours=12))

# Steps that want a GPU (the scene, video and tool models): the Celery queue only GPU workers listen on, and what
# their step pod asks Kubernetes for (k8s executor). Every other step runs on the default queue ("dagster") in a
# CPU pod with the code location's image. Per-deployment changes are configuration: HANDCLUST_GPU_IMAGE (the CUDA
# image for GPU step pods; default: the code location's image), the k8s executor's `per_step_k8s_config` /
# `step_k8s_config` (node labels, taints, sizes; deploy/helm/values.yaml), Celery workers' `-q`.
GPU_QUEUE = "gpu"


def gpu_step_tags(env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The op tags of a GPU step: Celery queue and the `dagster-k8s/config` of its pod (one GPU, a GPU node)."""
    container: dict[str, Any] = {"resources": {"requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                                               "limits": {"memory": "24Gi", "nvidia.com/gpu": "1"}}}
    if env.get("HANDCLUST_GPU_IMAGE"):
        container["image"] = env["HANDCLUST_GPU_IMAGE"]
    return {
        "dagster-celery/queue": GPU_QUEUE,
        "dagster-k8s/config": {
            "container_config": container,
            "pod_spec_config": {"node_selector": {"nvidia.com/gpu.present": "true"},
                                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                 "effect": "NoSchedule"}]},
        },
    }


GPU_STEP_TAGS = gpu_step_tags()


def failure_from(e: Exception) -> dg.Failure:
    """A named clip or model problem as a Dagster failure whose first line is the message."""
    if isinstance(e, ClipError):
        return dg.Failure(description=str(e), metadata={"file": dg.MetadataValue.path(e.path), "problem": e.problem})
    if isinstance(e, ModelUnavailableError):
        return dg.Failure(description=str(e), metadata={"model": e.model, "reason": e.reason})
    return dg.Failure(description=str(e))


def skipped(context: dg.AssetExecutionContext, reason: str, remedies: list[str] | None = None
            ) -> dg.AssetObservation:
    """The event that says, on the asset's page, why this partition has no output (and how to get one)."""
    context.log.warning(f"{context.asset_key.to_user_string()} skipped: {reason}")
    meta = {"skipped": dg.MetadataValue.text(reason)}
    if remedies:
        meta["how_to_fix"] = dg.MetadataValue.md("\n".join(f"- {r}" for r in remedies))
    return dg.AssetObservation(asset_key=context.asset_key,
                               partition=context.partition_key if context.has_partition_key else None,
                               metadata=meta)


COST_KEYS = ("wall_s", "cpu_s", "gpu_s", "peak_rss_mb")


def cost_metadata(sample: Any) -> dict[str, dg.MetadataValue]:
    """A `lib.cost.CostSample` as the numeric metadata every materialization carries (plots over time in the UI)."""
    return {"wall_s": dg.MetadataValue.float(round(sample.wall_s, 4)),
            "cpu_s": dg.MetadataValue.float(round(sample.cpu_s, 4)),
            "gpu_s": dg.MetadataValue.float(round(sample.gpu_s, 4)),
            "peak_rss_mb": dg.MetadataValue.float(round(sample.peak_rss_bytes / 1e6, 1))}


def with_cost(events: list[Any], cost: dict[str, dg.MetadataValue]) -> list[Any]:
    """The events, the first output (Output or MaterializeResult) carrying the cost: a multi-asset's step is
    counted once, on its first output."""
    out, done = [], False
    for ev in events:
        if not done and isinstance(ev, dg.Output):
            ev, done = ev.with_metadata({**(ev.metadata or {}), **cost}), True
        elif not done and isinstance(ev, dg.MaterializeResult):
            ev, done = ev._replace(metadata={**(ev.metadata or {}), **cost}), True
        out.append(ev)
    return out


def measured(fn: Callable[..., Any]) -> Callable[..., Iterator[Any]]:
    """Measure an asset's compute (`lib.cost.CostMeter`: wall, process CPU incl. waited children, CUDA-event GPU
    seconds of the model code's `gpu_section`s, peak RSS) and add it to its first output's metadata (COST_KEYS);
    then give freed memory back (`lib.memory`).
    What the IO manager does before (loading inputs) and after (writing the output) is not inside. The compute
    function may return or yield its outputs; the wrapper is a generator either way."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Iterator[Any]:
        from handclust_assets.lib.cost import CostMeter
        from handclust_assets.lib.memory import release_freed_memory

        with CostMeter() as meter:
            result = fn(*args, **kwargs)
            events = list(result) if inspect.isgenerator(result) else [result]
        release_freed_memory()  # in-process runs keep one process for all of a clip's steps
        yield from with_cost(events, cost_metadata(meter.result))

    return run


def clip_asset(*, group: str, code_version: str, description: str, kinds: set[str] | None = None,
               optional: bool = False, adoptable: bool = True, side_files: tuple[str, ...] = (),
               **asset_kwargs: Any) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """A per-clip asset (partitioned by clip). The decorated function returns a `dg.Output`/`MaterializeResult`.

    ClipError / ModelUnavailableError become named failures. With `optional=True` (model-backed modalities) a
    ModelUnavailableError (or NothingYet: what it needs does not exist yet) instead skips the asset: no output
    (its per-clip downstream is skipped too), an observation with the reason, a green run; `model_update_sensor`
    fills it in when the model appears. The compute is `measured`: its cost is metadata of the materialization.

    With `adoptable` (every step that reads nothing but its upstream steps, the frame cache and the resources it
    takes) the result is copied from a partition holding the same video where that one's was made from the same
    (`defs.adoption`; `side_files`: what it writes beside its table, `lib.adopt.FRAMES` / `ARRAYS`), and every
    output records its `made_from`."""

    def decorate(fn: Callable[..., Any]) -> dg.AssetsDefinition:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Iterator[Any]:
            from handclust_assets.defs import adoption as adopt

            context = args[0] if args else kwargs["context"]
            share_cores(context)
            plan = adopt.planned(context, kwargs, code_version, side_files) if adoptable else None
            try:
                events = adopt.copied(context, plan, side_files, kwargs) if plan is not None else None
                if events is None:
                    events = list(measured(fn)(*args, **kwargs))
            except ModelUnavailableError as e:
                if not optional:
                    raise failure_from(e) from e
                yield skipped(context, f"model unavailable: {e.model}: {e.reason}", e.remedies)
                return
            except NothingYet as e:
                if not optional:
                    raise dg.Failure(description=str(e)) from e
                yield skipped(context, str(e))
                return
            except ClipError as e:
                raise failure_from(e) from e
            yield from (adopt.with_made_from(events, plan.made_from) if plan is not None else events)

        return dg.asset(partitions_def=clip_partitions, group_name=group, code_version=code_version,
                        description=description, kinds=kinds or {"python", "duckdb"}, output_required=not optional,
                        **asset_kwargs)(run)

    return decorate


def share_cores(context: dg.AssetExecutionContext) -> int:
    """Set this step's numeric libraries to cores / runs in progress on this machine (`lib.threads`), where runs
    are launched as local processes (the default run launcher); elsewhere (Celery, Kubernetes) each worker has its
    own cores and nothing is changed. Returns the threads set (0: unchanged)."""
    from handclust_assets.defs.executor import executor_kind
    from handclust_assets.lib.threads import threads_per_run, use_threads

    instance = context.instance
    if type(instance.run_launcher).__name__ != "DefaultRunLauncher" or executor_kind() != "in_process":
        return 0
    try:
        active = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    except Exception:  # the instance is unreachable: keep the libraries' defaults
        return 0
    n = threads_per_run(active)
    use_threads(n)
    return n


def named_failures(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Re-raise ClipError / ModelUnavailableError as dg.Failure (for assets outside `clip_asset`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ClipError, ModelUnavailableError) as e:
            raise failure_from(e) from e

    return wrapper


class Progress:
    """Logs counts and rates of long work about every 10 % (and at most every `every_s` seconds of wall time)."""

    def __init__(self, context: dg.AssetExecutionContext, what: str, total: int, unit: str = "frames",
                 video_s: float | None = None, every_s: float = 30.0) -> None:
        self.context, self.what, self.total, self.unit, self.video_s, self.every_s = (
            context, what, total, unit, video_s, every_s)
        self.t0 = self.last = time.perf_counter()
        self.step = max(1, total // 10)

    def __call__(self, done: int, *_: Any) -> None:
        now = time.perf_counter()
        if done not in (self.total,) and done % self.step and now - self.last < self.every_s:
            return
        self.last = now
        self.context.log.info(self.line(done))

    def line(self, done: int) -> str:
        wall = max(time.perf_counter() - self.t0, 1e-9)
        rt = f", {self.video_s * done / max(self.total, 1) / wall:.1f}x realtime" if self.video_s else ""
        return f"{self.what}: {done}/{self.total} {self.unit}, {done / wall:.1f} {self.unit}/s{rt}"

    def metadata(self) -> dict[str, dg.MetadataValue]:
        wall = max(time.perf_counter() - self.t0, 1e-9)
        out = {f"n_{self.unit}": dg.MetadataValue.int(self.total),
               f"{self.unit}_per_s": dg.MetadataValue.float(round(self.total / wall, 2))}
        if self.video_s:
            out["x_realtime"] = dg.MetadataValue.float(round(self.video_s / wall, 2))
        return out


def numeric_metadata(values: dict[str, Any], prefix: str = "") -> dict[str, dg.MetadataValue]:
    """The finite numbers of a dict as float/int metadata (so their history plots in the UI)."""
    import math

    out: dict[str, dg.MetadataValue] = {}
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            continue
        out[f"{prefix}{k}"] = dg.MetadataValue.int(int(v)) if isinstance(v, int) else dg.MetadataValue.float(float(v))
    return out
