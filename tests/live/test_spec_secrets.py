"""The serialized workflow (what `pyflyte register` sends, what KubeRay reads) carries no secret."""

from __future__ import annotations

from collections import OrderedDict

from flytekit.configuration import Image, ImageConfig, SerializationSettings
from flytekit.tools.translator import get_serializable

from tasks.flyte import secrets
from tasks.ray_glue.local import local_worker_env

CANARIES = {
    "DVC_STUDIO_TOKEN": "canary-studio-7d1e",
    "GIT_TOKEN": "canary-git-52ab",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-9c04",
}


def _serialized(monkeypatch) -> dict[str, bytes]:
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    from tasks.flyte.tasks import train_model, tune_hyperparameters
    from workflows.tune_train import tune_train_wf

    settings = SerializationSettings(image_config=ImageConfig(default_image=Image(name="default", fqn="img", tag="t")))
    entities: OrderedDict = OrderedDict()
    get_serializable(entities, settings, tune_train_wf)
    # The Ray tasks run inside the dynamic *_on_cluster steps, so they are serialized on their own too.
    for task in (tune_hyperparameters, train_model):
        get_serializable(entities, settings, task)
    return {getattr(k, "name", repr(k)): v.to_flyte_idl().SerializeToString() for k, v in entities.items()}


def test_no_secret_in_the_serialized_workflow_even_with_tokens_in_the_environment(monkeypatch):
    specs = _serialized(monkeypatch)
    assert {
        "tasks.flyte.tasks.train_model",
        "tasks.flyte.tasks.train_on_cluster",
        "workflows.tune_train.tune_train_wf",
    } <= set(specs)
    for name, blob in specs.items():
        for canary in CANARIES.values():
            assert canary.encode() not in blob, f"{canary} in {name}"


def test_tasks_request_their_secrets_by_name_only(monkeypatch):
    from tasks.flyte.tasks import commit_experiment, train_model

    _serialized(monkeypatch)
    keys = lambda task: {(s.group, s.key) for s in task.security_context.secrets}  # noqa: E731
    assert (secrets.GROUP, secrets.STUDIO_TOKEN.key) in keys(train_model)
    assert (secrets.GROUP, secrets.GIT_TOKEN.key) in keys(commit_experiment)
    assert (secrets.GROUP, secrets.AWS_SECRET_ACCESS_KEY.key) in keys(commit_experiment)


def test_local_ray_workers_get_no_secret_from_the_driver(monkeypatch):
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    env = local_worker_env()
    assert not set(CANARIES.values()) & set(env.values())
