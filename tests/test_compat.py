"""Every private name of another library the project uses (compat/) still exists in the installed versions.

Each use is resolved for real (imported, called or instantiated); a failure names the use and why it is needed.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import compat

ROOT = Path(__file__).resolve().parent.parent
USES = [
    use
    for module in pkgutil.iter_modules(compat.__path__)
    for use in importlib.import_module(f"compat.{module.name}").USES
]


@pytest.mark.parametrize("use", USES, ids=[u.name for u in USES])
def test_each_private_name_the_project_uses_is_still_there(use):
    try:
        use.check()
    except Exception as e:  # any failure: the name moved, or its shape changed
        pytest.fail(f"{use.name} (read from {use.read_from}) no longer holds: {type(e).__name__}: {e}\nwhy: {use.why}")


def test_no_private_name_of_these_libraries_is_used_outside_compat():
    """`from ray._private ...`, `ray.train.v2._internal`, `from dvclive.studio import _x`, `obj._wf = ...`: only in compat/."""
    pattern = re.compile(
        r"(flytekit|flytekitplugins|ray|dvc|dvclive|dvc_studio_client|gto)(\.\w+)*\._[a-z]\w*"  # a private module
        r"|from (flytekit|ray|dvc|dvclive)[\w.]* import _[a-z]"  # a private name imported
        r"|\._(wf|task_config|gather_metrics|cast_to_numbers|init_studio)\b"  # the private attributes once used
    )
    offenders = []
    for path in sorted(ROOT.glob("**/*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in {".venv", "compat", "emulator"} or rel.parts[:2] == ("tests", "test_compat.py"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if pattern.search(line.split("#", 1)[0]):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert not offenders, "private API outside compat/:\n" + "\n".join(offenders)
