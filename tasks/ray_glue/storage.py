"""Where Ray puts checkpoints and trial results, and how any process reaches object storage.

Remote runs use the execution's raw-output prefix (an object-store URI); local runs a local
directory. S3-compatible endpoints other than AWS (MinIO, a loopback test server) are read
from the environment at run time, never from the task spec.

Credentials never travel: Ray pickles the storage filesystem into its experiment state (which
Tune writes to storage) and ships it to every node, so what is pickled here holds the endpoint
only, and each node reads its own credentials from its own environment when it unpickles it
(the `AWS_*` variables, an instance role, or the `FLYTE_AWS_*` variables Flyte gives its pods).
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from dvc_bridge.storage import fsspec_options, node_s3_credentials, s3_endpoint  # noqa: F401 (re-exported)

# Variables boto reads itself; Ray Tune copies these from the driver into every trial's runtime_env.
AWS_CREDENTIAL_ENV_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def _node_s3_filesystem(endpoint: str):
    """An s3fs filesystem for this node; pickles as its endpoint only (see `ray_storage`)."""
    import s3fs

    class NodeS3FileSystem(s3fs.S3FileSystem):
        def __reduce__(self):
            return _node_s3_filesystem, (endpoint,)

    kwargs = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
    return NodeS3FileSystem(**kwargs, **node_s3_credentials())


def node_pyarrow_s3(endpoint: str):
    """The pyarrow filesystem Ray gets: s3fs behind pyarrow's fsspec handler, pickled without secrets."""
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return PyFileSystem(FSSpecHandler(_node_s3_filesystem(endpoint)))


def ray_storage(prefix: str, *parts: str):
    """(storage_path, storage_filesystem) for Ray's RunConfig under `prefix`.

    A plain path or file:// URI gives a local directory; s3:// gives a filesystem pointed at the
    configured endpoint, so Ray workers on other nodes write to the same place.
    """
    parsed = urlparse(prefix)
    if parsed.scheme in ("", "file"):
        path = os.path.join(parsed.path if parsed.scheme else prefix, *parts)
        os.makedirs(path, exist_ok=True)
        return path, None
    if parsed.scheme == "s3":
        path = "/".join([parsed.netloc + parsed.path.rstrip("/"), *parts])
        return path, node_pyarrow_s3(s3_endpoint())
    # Any other scheme (gs://, abfs://...) is passed through; pyarrow resolves it itself.
    return "/".join([prefix.rstrip("/"), *parts]), None
