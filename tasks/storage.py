"""Where Ray puts checkpoints and trial results: storage every node can reach.

Remote runs use the execution's raw-output prefix (an object-store URI); local runs a local
directory. S3-compatible endpoints other than AWS (MinIO, a loopback test server) are read
from the environment at run time, never from the task spec.
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


def ray_storage(prefix: str, *parts: str):
    """(storage_path, storage_filesystem) for Ray's RunConfig under `prefix`.

    A plain path or file:// URI gives a local directory; s3:// gives a pyarrow S3 filesystem
    pointed at the configured endpoint, so Ray workers on other nodes write to the same place.
    """
    parsed = urlparse(prefix)
    if parsed.scheme in ("", "file"):
        path = os.path.join(parsed.path if parsed.scheme else prefix, *parts)
        os.makedirs(path, exist_ok=True)
        return path, None
    if parsed.scheme == "s3":
        from pyarrow import fs

        endpoint = s3_endpoint()
        kwargs = {}
        if endpoint:
            ep = urlparse(endpoint)
            kwargs = {"endpoint_override": ep.netloc, "scheme": ep.scheme or "https"}
        key = os.environ.get("FLYTE_AWS_ACCESS_KEY_ID") or os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("FLYTE_AWS_SECRET_ACCESS_KEY") or os.environ.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:
            kwargs.update(access_key=key, secret_key=secret)
        path = "/".join([parsed.netloc + parsed.path.rstrip("/"), *parts])
        return path, fs.S3FileSystem(**kwargs)
    # Any other scheme (gs://, abfs://...) is passed through; pyarrow resolves it itself.
    return "/".join([prefix.rstrip("/"), *parts]), None


def fsspec_options(uri: str) -> dict:
    """fsspec storage options for `uri`: the S3 endpoint from the environment, nothing secret.

    Credentials stay with the process that uses them (environment, instance role); only the
    endpoint travels, so the options can be handed to another node.
    """
    endpoint = s3_endpoint()
    if urlparse(uri).scheme in ("s3", "s3a") and endpoint:
        return {"client_kwargs": {"endpoint_url": endpoint}}
    return {}
