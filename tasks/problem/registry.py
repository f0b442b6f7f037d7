"""Finding a problem by the one string a run names it with.

A built-in name (`digits`, `diabetes`) or an importable `module:attribute` (a module on the
image's PYTHONPATH), resolved again in every process that needs it, so no problem object is
ever pickled across the Ray boundary.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from pathlib import Path

from tasks.problem.interface import Problem, ProblemError

# The directory holding this project's packages (tasks, examples): `examples.*` problems import from there
# without PYTHONPATH, as `pyflyte run` puts it on sys.path only while it imports the workflow file.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

BUILTIN = {
    "digits": "tasks.problems.digits:PROBLEM",
    "diabetes": "tasks.problems.diabetes:PROBLEM",
}
DEFAULT_PROBLEM = "digits"


def load_problem(ref: str = "") -> Problem:
    """The problem a run names: "" (the default), a built-in name, or `module:attribute`."""
    ref = (ref or DEFAULT_PROBLEM).strip()
    target = BUILTIN.get(ref, ref)
    if ":" not in target:
        close = difflib.get_close_matches(ref, sorted(BUILTIN), n=1, cutoff=0.6)
        raise ProblemError(
            f"problem {ref!r} is not a built-in problem ({', '.join(sorted(BUILTIN))}) "
            "nor an importable 'module:attribute' (e.g. my_team.problems:CHURN)."
            + (f" Did you mean `{close[0]}`?" if close else "")
        )
    module_name, _, attr = target.partition(":")
    try:
        module = _import(module_name)
    except ImportError as e:
        raise ProblemError(
            f"problem {ref!r}: cannot import module {module_name!r} ({e}). Put it on PYTHONPATH (in the image: "
            f"COPY it in) or use a built-in problem ({', '.join(sorted(BUILTIN))})."
        ) from e
    except Exception as e:  # the module itself fails: a syntax error, an exception at import, a bad Problem
        raise ProblemError(f"problem {ref!r}: importing {module_name!r} failed: {type(e).__name__}: {e}") from e
    if not hasattr(module, attr):
        raise ProblemError(f"problem {ref!r}: module {module_name!r} has no attribute {attr!r}.")
    problem = getattr(module, attr)
    if not isinstance(problem, Problem):
        raise ProblemError(
            f"problem {ref!r}: {module_name}.{attr} is {type(problem).__name__}, not a tasks.problem.Problem."
        )
    return problem


def _import(module_name: str):
    """The module; a top-level package of this project (examples) is found in the project root when not on sys.path."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        top = module_name.split(".")[0]
        if e.name != top or not (PROJECT_ROOT / top / "__init__.py").is_file() or str(PROJECT_ROOT) in sys.path:
            raise
        sys.path.append(str(PROJECT_ROOT))
        return importlib.import_module(module_name)
