"""The layers of shared/DESIGN.md hold: imports point down only (import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )


def test_every_layer_contract_is_kept():
    result = lint_imports(ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    kept = re.search(r"Contracts: (\d+) kept, (\d+) broken", result.stdout)
    assert kept and int(kept.group(1)) >= 6 and kept.group(2) == "0", result.stdout


def test_an_import_that_points_up_is_found(tmp_path):
    """The checker sees the real imports: the layers turned upside down are reported broken, naming an import."""
    config = tmp_path / "layers.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["tasks"]\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "upside down"\ntype = "layers"\nlayers = ["tasks.problem", "tasks.flyte"]\n'
    )
    result = lint_imports(config)
    assert result.returncode != 0
    assert "upside down BROKEN" in result.stdout
    assert "tasks.flyte" in result.stdout and "tasks.problem" in result.stdout
