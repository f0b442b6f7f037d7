"""How any process reaches object storage: the S3 endpoint and this node's credentials, for fsspec.

S3-compatible endpoints other than AWS (MinIO, a loopback test server) are read from the
environment at run time, never from a task spec. Options handed to another node (a Ray worker)
are built without credentials; each node reads its own (the `AWS_*` variables, an instance role,
or the `FLYTE_AWS_*` variables Flyte gives its pods).
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

ENDPOINT_ENV_VARS = ("FLYTE_AWS_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


def s3_endpoint() -> str:
    """The S3 endpoint URL from the environment, or "" for AWS itself."""
    for name in ENDPOINT_ENV_VARS:
        if os.environ.get(name):
            return os.environ[name]
    return ""


def node_s3_credentials() -> dict:
    """s3fs options with this node's keys, read now: the `AWS_*` variables, else Flyte's own `FLYTE_AWS_*`; {}
    leaves boto its usual chain (a role). Read when the filesystem is made, not when boto first signs: a driver
    hides its `AWS_*` from Ray Tune while the search runs (tasks/ray_glue/tune.py), after making its filesystem."""
    for prefix in ("AWS_", "FLYTE_AWS_"):
        key, secret = os.environ.get(f"{prefix}ACCESS_KEY_ID"), os.environ.get(f"{prefix}SECRET_ACCESS_KEY")
        if key and secret:
            token = os.environ.get(f"{prefix}SESSION_TOKEN")
            return {"key": key, "secret": secret, **({"token": token} if token else {})}
    return {}


def fsspec_options(uri: str, *, credentials: bool = True) -> dict:
    """fsspec storage options for `uri` on this node: the endpoint and, if asked, this node's credentials.

    Options handed to another node (a Ray worker) must be built with `credentials=False`.
    """
    if urlparse(uri).scheme not in ("s3", "s3a"):
        return {}
    options: dict = {"client_kwargs": {"endpoint_url": s3_endpoint()}} if s3_endpoint() else {}
    if credentials:
        options.update(node_s3_credentials())
    return options
