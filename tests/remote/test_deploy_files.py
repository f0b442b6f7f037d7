"""Static checks of the Dockerfile and flyte-sandbox.yaml against what they claim.

No image can be pulled on this machine, so the Dockerfile is checked as text: its instructions
against constraints.txt, pyproject.toml and the issue's requirements. The sandbox config is
checked against the keys Flyte itself reads (flyteorg/flyte: charts/flyte-binary/values.yaml for
the task-plugin defaults, flyteplugins/go/tasks/plugins/k8s/ray/config.go for the Ray plugin).
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass

import pytest
import yaml
from support import PROJECT_ROOT

from emulator.pods import IMAGE_APP_DIR, image_app_paths
from tasks.training.settings import TrainCluster, TuneCluster

BUILD_TOOLS = ("gcc", "g++", "clang", "build-essential", "make", "cmake", "python3-dev", "libc6-dev")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuation lines joined

    def all(self, instruction: str) -> list[str]:
        return [args for ins, args in self.instructions if ins == instruction]


def stages() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the build stages of the Dockerfile."""
    text = re.sub(r"\\\n", " ", (PROJECT_ROOT / "Dockerfile").read_text())
    global_args: dict[str, str] = {}
    result: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), " ".join(args.split())
        if instruction == "FROM":
            words = args.split()
            result.append(Stage(words[0], words[2] if len(words) > 2 else "", []))
        elif result:
            result[-1].instructions.append((instruction, args))
        elif instruction == "ARG" and "=" in args:
            key, value = args.split("=", 1)
            global_args[key] = value
    return global_args, result


def arg_default(stage: Stage, name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in stage.all("ARG") if a.startswith(f"{name}=")]
    return value


def constraint(package: str) -> str:
    lines = (PROJECT_ROOT / "constraints.txt").read_text().splitlines()
    (pin,) = [line.split("==", 1)[1] for line in lines if line.lower().startswith(f"{package}==")]
    return pin


@pytest.fixture(scope="module")
def dockerfile():
    global_args, found = stages()
    builder, final = found[0], found[-1]
    return global_args, builder, final


def test_one_image_from_one_base(dockerfile):
    global_args, builder, final = dockerfile
    assert builder.base == final.base == "${PYTHON_IMAGE}"
    python = re.search(r"python:(\d+\.\d+)", global_args["PYTHON_IMAGE"]).group(1)
    assert python == f"{sys.version_info.major}.{sys.version_info.minor}", "the image's Python is the local one"
    requires = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f">={python}" in requires or python in requires


def test_torch_is_the_pinned_version_cpu_by_default_cuda_by_build_arg(dockerfile):
    _, builder, _ = dockerfile
    assert arg_default(builder, "TORCH_VERSION") == constraint("torch")
    assert arg_default(builder, "TORCH_VARIANT") == "cpu"  # --build-arg TORCH_VARIANT=cu128 for GPU workers
    assert arg_default(builder, "TORCH_INDEX_URL").rstrip("/").endswith("/whl/${TORCH_VARIANT}")
    (torch_install,) = [r for r in builder.all("RUN") if "torch==" in r and "pip install" in r]
    assert '--index-url "${TORCH_INDEX_URL}"' in torch_install and '"torch==${TORCH_VERSION}"' in torch_install
    (check,) = [r for r in builder.all("RUN") if "torch.version.cuda" in r]
    assert "${TORCH_VARIANT}" in check, "the build proves torch is the variant asked for (CUDA or CPU)"


def test_everything_else_is_installed_under_the_constraints(dockerfile):
    _, builder, _ = dockerfile
    assert any("constraints.txt" in c for c in builder.all("COPY"))
    (install,) = [r for r in builder.all("RUN") if "pip install -c constraints.txt" in r]
    assert "pip check" in install
    assert "torch.__version__" in install and "${TORCH_VERSION}" in install, "the build proves torch kept its pin"


def test_final_image_has_git_wget_no_build_tools_and_no_pip_installs(dockerfile):
    _, _, final = dockerfile
    runs = " ".join(final.all("RUN"))
    (apt,) = [r for r in final.all("RUN") if "apt-get install" in r]
    packages = apt.split("apt-get install", 1)[1].split("&&")[0].split()
    assert {"git", "wget"} <= set(packages) and "--no-install-recommends" in packages
    assert not set(BUILD_TOOLS) & set(packages), packages
    assert "rm -rf /var/lib/apt/lists" in apt
    assert "pip install" not in runs, "the final stage copies the built venv; it builds nothing"
    assert any(c.startswith("--from=builder /opt/venv") for c in final.all("COPY"))


def test_final_image_runs_as_a_non_root_user(dockerfile):
    _, _, final = dockerfile
    user = final.all("USER")[-1].split(":")[0]
    assert user not in ("root", "0"), user
    assert any(f"useradd --uid {user}" in r for r in final.all("RUN"))


def test_final_image_holds_the_project_packages_where_the_tasks_expect_them(dockerfile):
    _, _, final = dockerfile
    packages = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert sorted(image_app_paths()) == sorted(
        {p.split(".")[0] for p in packages}
    )  # a package dir holds its subpackages
    assert final.all("WORKDIR")[-1] == IMAGE_APP_DIR
    env = " ".join(final.all("ENV"))
    assert f"PYTHONPATH={IMAGE_APP_DIR}" in env and "PATH=/opt/venv/bin:$PATH" in env
    # What the Flyte task pod, the Ray head and the Ray workers call, checked at build time in a login shell.
    (check,) = [r for r in final.all("RUN") if "command -v" in r]
    for tool in ("python", "ray", "pyflyte-execute", "pyflyte-fast-execute", "dvc", "git", "wget"):
        assert f" {tool} " in check or f" {tool};" in check, tool


def test_dockerignore_keeps_the_context_small():
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git"} <= set(ignored)


# --------------------------------------------------------------------------- flyte-sandbox.yaml

# flyte-binary's defaults (charts/flyte-binary/values.yaml, enabled_plugins.tasks.task-plugins).
FLYTE_BINARY_PLUGINS = ["container", "sidecar", "k8s-array", "agent-service"]
FLYTE_BINARY_TYPES = {"container": "container", "sidecar": "sidecar", "container_array": "k8s-array"}
# The Ray plugin's config keys (json tags of Config in flyteplugins/go/tasks/plugins/k8s/ray/config.go).
RAY_PLUGIN_KEYS = {
    "shutdownAfterJobFinishes",
    "ttlSecondsAfterFinished",
    "serviceType",
    "includeDashboard",
    "dashboardHost",
    "nodeIPAddress",
    "remoteClusterConfig",
    "logs",
    "logsSidecar",
    "dashboardURLTemplate",
    "defaults",
    "enableUsageStats",
    "serviceAccount",
}


@pytest.fixture(scope="module")
def sandbox() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "flyte-sandbox.yaml").read_text())


def test_sandbox_enables_the_ray_plugin_and_keeps_the_defaults(sandbox):
    assert set(sandbox) == {"tasks", "plugins"}
    plugins = sandbox["tasks"]["task-plugins"]
    assert set(plugins) == {"enabled-plugins", "default-for-task-types"}
    assert plugins["enabled-plugins"] == [*FLYTE_BINARY_PLUGINS, "ray"]
    assert plugins["default-for-task-types"] == {**FLYTE_BINARY_TYPES, "ray": "ray"}


def test_sandbox_ray_plugin_config_uses_flytes_keys(sandbox):
    ray = sandbox["plugins"]["ray"]
    assert set(ray) <= RAY_PLUGIN_KEYS, set(ray) - RAY_PLUGIN_KEYS
    assert ray["shutdownAfterJobFinishes"] is True
    assert isinstance(ray["ttlSecondsAfterFinished"], int) and ray["ttlSecondsAfterFinished"] > 0
    assert ray["includeDashboard"] is True, "RayJobs are submitted through the head's dashboard"
    assert ray["serviceType"] in ("ClusterIP", "NodePort", "LoadBalancer")
    # The tasks set their own TTL, which wins over the plugin's fallback; both must be set.
    assert TuneCluster().ttl_seconds > 0 and TrainCluster().ttl_seconds > 0
