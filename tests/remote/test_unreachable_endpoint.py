"""`pyflyte run --remote` against an endpoint where no Flyte runs: it fails fast and names the endpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import PROJECT_ROOT, free_port


def test_pyflyte_run_remote_to_an_unreachable_endpoint_fails_naming_it(tmp_path):
    port = free_port()  # nothing listens there
    config = tmp_path / "config.yaml"
    config.write_text(f"admin:\n  endpoint: dns:///127.0.0.1:{port}\n  insecure: true\n")
    pyflyte = Path(sys.executable).parent / "pyflyte"
    proc = subprocess.run(
        [str(pyflyte), "--config", str(config), "run", "--remote", "workflows/tune_train.py", "tune_train_wf"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,  # measured here: about 4 s
    )
    out = " ".join((proc.stdout + proc.stderr).split())  # rich wraps long lines
    assert proc.returncode != 0
    assert f"127.0.0.1:{port}" in out, out[-3000:]
    assert "Flyte cluster is currently unavailable" in out and "Connection refused" in out, out[-3000:]
