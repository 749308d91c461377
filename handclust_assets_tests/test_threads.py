"""Concurrent clip runs on one machine share its cores (lib.threads, defs.common.share_cores)."""

from __future__ import annotations

import os
import uuid

import dagster as dg
import pytest
import torch

from handclust_assets.defs.common import share_cores
from handclust_assets.lib import threads
from handclust_assets.lib.threads import threads_per_run, use_threads


def test_threads_per_run_splits_the_cores() -> None:
    assert threads_per_run(1, cores=8) == 8
    assert threads_per_run(2, cores=8) == 4
    assert threads_per_run(3, cores=8) == 2
    assert threads_per_run(4, cores=2) == 1  # never zero
    assert threads_per_run(0, cores=4) == 4  # no run counted (an in-process execution): all of them


@pytest.fixture
def restore_threads():
    before, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    yield
    torch.set_num_threads(before)
    if env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = env


def test_use_threads_sets_torch_and_the_environment(restore_threads: None) -> None:
    use_threads(1)
    assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    use_threads(2)
    assert torch.get_num_threads() == 2


def _started_run(instance: dg.DagsterInstance) -> None:
    instance.add_run(dg.DagsterRun(job_name="process_clip", run_id=str(uuid.uuid4()),
                                   status=dg.DagsterRunStatus.STARTED))


def test_a_step_takes_its_share_of_the_runs_in_progress(restore_threads: None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "physical_cores", lambda: 4)
    monkeypatch.delenv("HANDCLUST_EXECUTOR", raising=False)
    with dg.instance_for_test() as instance:
        context = dg.build_asset_context(instance=instance)
        assert share_cores(context) == 4  # nothing else running: every core
        _started_run(instance)
        _started_run(instance)
        assert share_cores(context) == 2 and torch.get_num_threads() == 2
        for _ in range(3):
            _started_run(instance)
        assert share_cores(context) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("HANDCLUST_EXECUTOR", "celery")  # workers elsewhere have their own cores
        assert share_cores(context) == 0


def test_the_model_pool_is_one_per_gpu_and_the_run_limit_on_cpus() -> None:
    import yaml

    from handclust_assets.lib.home import default_model_pool_limit, instance_config

    assert default_model_pool_limit(4, gpu=True) == 1 and default_model_pool_limit(4, gpu=False) == 4
    cfg = yaml.safe_load(instance_config(3, model_pool=2))
    assert cfg["concurrency"]["runs"]["max_concurrent_runs"] == 3
    assert cfg["concurrency"]["pools"]["default_limit"] == 2
    here = yaml.safe_load(instance_config(3))["concurrency"]["pools"]["default_limit"]
    assert here == default_model_pool_limit(3)
