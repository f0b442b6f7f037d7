"""Large files to an S3 DVC remote at the wire's speed, before `dvc push`.

DVC uploads through s3fs, whose multipart upload runs on one asyncio thread: about half the rate
of boto3's threaded transfer on the same endpoint (measured, bench/bridge_wire.py). So large
cached files are uploaded first with boto3 to the exact key DVC would use; `dvc push` then finds
them there and uploads only the rest, and stays the one that decides what the remote holds.
Anything unusual (another remote type, credentials in the DVC config, any error) leaves the work
to `dvc push`.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

LARGE_BYTES = 64 * 2**20
# Remote options this fast path does not reproduce; with any of them set, DVC does it all.
_UNHANDLED = (
    "access_key_id",
    "secret_access_key",
    "session_token",
    "profile",
    "credentialpath",
    "configpath",
    "sse",
    "sse_kms_key_id",
    "sse_customer_key",
    "acl",
    "grant_full_control",
    "grant_read",
    "ssl_verify",
)


def preupload_large_files(repo, remote: str) -> int:
    """Upload cached files of at least LARGE_BYTES that the S3 remote lacks; returns how many were uploaded."""
    conf = repo.config["remote"].get(remote, {})
    if not conf.get("url", "").startswith("s3://") or any(k in conf for k in _UNHANDLED):
        return 0
    try:
        return _upload(repo, remote, conf)
    except Exception as e:  # dvc push does the upload instead, with its own retries and errors
        log.warning(
            "fast upload to DVC remote %r skipped (%s: %s); dvc push uploads instead", remote, type(e).__name__, e
        )
        return 0


def _upload(repo, remote: str, conf: dict) -> int:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    odb = repo.cloud.get_remote_odb(remote)
    client = boto3.client(
        "s3",
        endpoint_url=conf.get("endpointurl"),
        region_name=conf.get("region"),
        config=Config(
            connect_timeout=int(conf.get("connect_timeout", 5)), read_timeout=int(conf.get("read_timeout", 60))
        ),
    )
    uploaded = 0
    for out in (
        o for stage in repo.index.stages for o in stage.outs if o.use_cache and o.hash_info and not o.hash_info.isdir
    ):
        oid = out.hash_info.value
        local = repo.cache.local.oid_to_path(oid)
        if not os.path.exists(local) or os.path.getsize(local) < LARGE_BYTES:
            continue
        bucket, _, key = odb.oid_to_path(oid).partition("/")
        if _exists(client, bucket, key):
            continue
        client.upload_file(local, bucket, key, Config=TransferConfig())  # parts uploaded by a thread pool
        uploaded += 1
    return uploaded


def _exists(client, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
