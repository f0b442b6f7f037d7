"""The working-directory upload of a Ray task, as on a cluster: the driver (`pyflyte-execute`, in the head pod) runs
flytekit's `ray.init(runtime_env={"working_dir": os.getcwd(), "excludes": [...]})`, and Ray zips that directory
(stored, uncompressed) into its GCS, capped at 512 MiB. A large file there is refused with Ray's own message naming
the fix, never silently uploaded; the emulator reports every package the driver pushed and Ray's size warnings.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import ray_upload_task  # noqa: E402  (tests/remote is on sys.path)

from emulator.blobstore import BlobStore
from emulator.literals import python_literals
from emulator.packaging import Package
from emulator.propeller import TaskFailed
from emulator.run import Execution

TASK = "ray_upload_task.ray_sum"
CAP_MIB = 512  # Ray's GCS message cap for a working_dir (compat.ray.working_dir_cap_bytes)


def test_a_file_over_rays_cap_in_the_working_dir_is_refused_naming_the_fix(
    tmp_path_factory, s3_endpoint, bucket, capsys
):
    from compat.ray import working_dir_cap_bytes

    assert working_dir_cap_bytes() == CAP_MIB * 2**20
    tmp_path = tmp_path_factory.mktemp("wd")  # short: Ray's and multiprocessing's socket paths live under the pods
    big = tmp_path / "big.bin"  # sparse: 600 MiB that take no disk in the pods (Ray still reads and zips them)
    with open(big, "wb") as f:
        f.truncate(600 * 2**20)
    assert os.stat(big).st_blocks == 0
    package = Package.serialize(ray_upload_task.ray_sum, "localhost:30000/flyte-ray-dvc:upload", tmp_path / "package")
    # One attempt with propeller's default budgets: flytekit would write this failure (raised in the Ray task's
    # pre_execute) as a recoverable SYSTEM error, retried 3 more times, each a new RayJob failing the same way;
    # RayTask.pre_execute makes it the non-recoverable user error it is.
    execution = Execution(
        package,
        BlobStore(s3_endpoint, bucket),
        tmp_path / "work",
        app_files={"ray_upload_task.py": Path(ray_upload_task.__file__), "results/big.bin": big},
    )
    started = time.monotonic()
    with pytest.raises(TaskFailed) as info:
        execution.run_task(TASK, python_literals({"n": 3}, {"n": int}))
    seconds = time.monotonic() - started
    (run,) = execution.runs
    (first,) = run.history
    refusal = rf"Package size \(600\.\d\dMiB\) exceeds the maximum size of {CAP_MIB}\.00MiB"
    assert re.search(refusal, first.failure.message) and re.search(refusal, str(info.value))
    assert "add them to '.gitignore' or '.rayignore' files, or use the 'excludes' option" in first.failure.message
    assert not first.failure.system and not first.failure.recoverable  # not retried (see above)
    assert run.ray.uploads == [], "nothing may have been pushed to the cluster"
    assert any("results/big.bin is very large (600.00MiB)" in w for w in run.ray.upload_warnings)
    assert any(re.fullmatch(refusal, w) for w in run.ray.upload_warnings)
    assert "Ray: File" in capsys.readouterr().out  # said on the emulator's output, not only in a log
    # The head ran flytekit's upload in the head pod: the driver's working directory is the head pod's app dir.
    head_app = tmp_path / "work" / "pods" / f"{run.node_id}-0-head" / "app"
    assert f"File {head_app}/results/big.bin is very large" in run.ray.logs
    print(f"refused upload: {seconds:.1f} s")
