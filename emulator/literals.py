"""Python values to Flyte literals and back, with flytekit's own TypeEngine (as `pyflyte run` sends them)."""

from __future__ import annotations

import datetime as dt

from flyteidl.core import literals_pb2
from google.protobuf.timestamp_pb2 import Timestamp


def datetime_literal(value: dt.datetime) -> literals_pb2.Literal:
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(dt.UTC).replace(tzinfo=None))
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(datetime=ts)))


def python_literals(values: dict, types: dict) -> dict[str, literals_pb2.Literal]:
    """Python values to Flyte literals with flytekit's TypeEngine, as `pyflyte run` would send them."""
    from flytekit.core.context_manager import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine

    ctx = FlyteContextManager.current_context()
    out = {}
    for name, value in values.items():
        lit = TypeEngine.to_literal(ctx, value, types[name], TypeEngine.to_literal_type(types[name]))
        out[name] = lit.to_flyte_idl()
    return out


def to_python(literals: literals_pb2.LiteralMap, types: dict) -> dict:
    from flytekit.core.context_manager import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine
    from flytekit.models.literals import LiteralMap

    ctx = FlyteContextManager.current_context()
    return TypeEngine.literal_map_to_kwargs(ctx, LiteralMap.from_flyte_idl(literals), python_types=types)
