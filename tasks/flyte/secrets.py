"""Every secret this project uses, requested from Flyte and read at run time, defined once.

On a Flyte cluster each is a Kubernetes secret in group `flyte-ray-dvc` (see the README),
injected into the task pod as the environment variable named here. A local run reads the same
variables from the environment. Secret values are never put in a task's spec, its
`runtime_env`, its outputs or its logs: tasks read them when they run and hand them on in
memory (a Ray object, an environment of a child process).
"""

from __future__ import annotations

import os

from flytekit import Secret

GROUP = "flyte-ray-dvc"

GIT_TOKEN = Secret(group=GROUP, key="git-token", env_var="GIT_TOKEN")
AWS_ACCESS_KEY_ID = Secret(group=GROUP, key="aws-access-key-id", env_var="AWS_ACCESS_KEY_ID")
AWS_SECRET_ACCESS_KEY = Secret(group=GROUP, key="aws-secret-access-key", env_var="AWS_SECRET_ACCESS_KEY")
STUDIO_TOKEN = Secret(group=GROUP, key="dvc-studio-token", env_var="DVC_STUDIO_TOKEN")

CLOUD = [AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY]
# What each task asks Flyte for.
BRIDGE_SECRETS = [GIT_TOKEN, *CLOUD, STUDIO_TOKEN]  # Studio: the bridge posts `done` with the pushed commit
TRAIN_SECRETS = [STUDIO_TOKEN, *CLOUD]


def read(secret: Secret) -> str:
    """The secret's value at run time: its environment variable, else Flyte's secret store, else ""."""
    value = os.environ.get(secret.env_var or "", "")
    if value:
        return value
    try:
        import flytekit

        return flytekit.current_context().secrets.get(secret.group, secret.key) or ""
    except Exception:  # not in a task, or not provided: the secret is optional
        return ""


def export(secrets: list[Secret]) -> None:
    """Make secrets that Flyte mounted as files visible to libraries reading the environment (boto3, DVC)."""
    for secret in secrets:
        if secret.env_var and not os.environ.get(secret.env_var):
            value = read(secret)
            if value:
                os.environ[secret.env_var] = value
