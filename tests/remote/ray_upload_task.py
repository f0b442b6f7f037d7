"""A tiny Ray task on the project's cluster config (tests/remote/test_ray_working_dir.py runs it as a RayJob)."""

from __future__ import annotations

from flytekit import task

from tasks.flyte.clusters import ray_job_config
from tasks.training.settings import ClusterShape

TINY = ray_job_config(ClusterShape(workers=1, cpus_per_worker=1, memory_per_worker="1Gi", head_memory="1Gi"))


@task(task_config=TINY)
def ray_sum(n: int) -> int:
    import ray

    @ray.remote(num_cpus=1)
    def square(x: int) -> int:
        return x * x

    return sum(ray.get([square.remote(i) for i in range(n)]))
