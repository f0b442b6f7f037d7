"""Build the project's Dockerfile on this machine and run Flyte tasks in the image as pods would.

NOT part of `make test` or CI: too slow for it. It builds a Debian base with debootstrap and the whole image (torch,
Ray, flytekit, DVC), about 15 minutes end to end on 2 shared cores, and needs root and a running Docker engine
(`dockerd`). Run it by hand; docs/remote.md "The image, built and run here" records a run:

    sudo .venv/bin/python scripts/image_check.py            # base (if missing), image, the three tasks
    sudo .venv/bin/python scripts/image_check.py --no-build # reuse the image built before

What it does, each step printed:

1. **The base.** No registry can be pulled from here, so `python:3.11-slim-bookworm` is replaced by a local image
   made with debootstrap (Debian bookworm's python3.11, python3-venv, pip, ca-certificates, its apt sources), a
   `python` symlink, this host's local CAs (its HTTPS proxy's) with `/etc/pip.conf` pointing pip at the system
   bundle, `docker import`ed as `local/python:3.11-bookworm`. Skipped when that image exists.
2. **The image.** `docker build` of the unmodified Dockerfile, only build arguments changed: PYTHON_IMAGE (the local
   base) and TORCH_INDEX_URL (download.pytorch.org is unreachable: the local CPU wheel of torch==TORCH_VERSION is
   served as a PEP 503 index on loopback, hence `--network host`). Everything else comes from PyPI under
   constraints.txt, and the Dockerfile's own checks run (pip check, the torch variant, the login-shell PATH).
3. **The tasks, as pods.** `pyflyte package --copy none` (the code is the image's), the task templates read back
   (the emulator's Package, `emulator.packaging`), a moto S3 server on loopback as the blob store, inputs.pb written as
   propeller would, the container args filled from the template, and the pod env Flyte gives (FLYTE_AWS_*, the
   FLYTE_INTERNAL_* execution variables: `Execution._base_env`), nothing else. Then
   * plain tasks `pin_dataset` and `prepare_data`: `docker run --network host IMAGE <the template's args>` (no
     command: the image has no ENTRYPOINT, so the args are the process, as in a Flyte task pod);
   * the Ray task `tune_hyperparameters` (tiny search): the RayJob Flyte's Ray plugin builds for it
     (`rayjob_manifest`) run as KubeRay would: one container per pod (head, each worker replica, the submitter),
     each with its pod template's env and CPU / memory limits, KubeRay's command `/bin/bash -lc -- 'ulimit -n 65536;
     ray start ... --block'` with the start params KubeRay derives (`kuberay_start_params`), then the submitter's
     `ray job submit --address <dashboard> -- <entrypoint>` in a login shell, so `pyflyte-execute` is the job
     driver on the head. One host network is shared by every container, so each Ray port is a free one (the
     emulator's rewrite) and the node IP ($MY_POD_IP) is 127.0.0.1.
   Each task's outputs.pb (or error.pb) is read back and decoded; the Ray job's driver node is checked to be the
   head. Exit status 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path

# Run as a file, Python puts scripts/ on sys.path, not the checkout (its `emulator` and `tasks`).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The emulator's pieces: one definition of what Flyte and KubeRay do.
from emulator.blobstore import BlobStore  # noqa: E402
from emulator.host import BIN, PROJECT_ROOT, free_port  # noqa: E402
from emulator.kuberay import kuberay_flags, kuberay_start_params, submit_command  # noqa: E402
from emulator.literals import python_literals, to_python  # noqa: E402
from emulator.packaging import Package, build_package  # noqa: E402
from emulator.pods import env_of, fill_template, image_env  # noqa: E402
from emulator.propeller import read_failure  # noqa: E402
from emulator.run import Execution  # noqa: E402

BASE_TAG = "local/python:3.11-bookworm"
IMAGE_TAG = "flyte-ray-dvc:check"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
TORCH_WHEEL_DIR = Path("/opt/wheels")
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
BUCKET = "flyte-image-check"
FAILED: list[str] = []


def step(msg: str) -> None:
    print(f"\n== {msg}", flush=True)


def check(ok: bool, what: str) -> bool:
    print(f"  [{'ok' if ok else 'FAILED'}] {what}", flush=True)
    if not ok:
        FAILED.append(what)
    return ok


def sh(cmd: list[str], log: Path | None = None, **kw) -> subprocess.CompletedProcess:
    print("  $ " + shlex.join(cmd), flush=True)
    if log is None:
        return subprocess.run(cmd, check=True, **kw)
    with open(log, "ab") as f:
        return subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, **kw)


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def image_size_mb(tag: str) -> float:
    out = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Size}}", tag], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip()) / 1e6


# --------------------------------------------------------------------------- 1. the base


def make_base(workdir: Path) -> None:
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir="/var/tmp"))
    try:
        t0 = time.monotonic()
        sh(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,python3-pip,ca-certificates",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            log=workdir / "debootstrap.log",
        )
        (rootfs / "usr/local/bin/python").symlink_to("/usr/bin/python3")  # where python:3.11-slim has its python
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):  # the Dockerfile runs apt-get update itself
            for p in (rootfs / cache).glob("*"):
                if p.is_file():
                    p.unlink()
        print(f"  apt sources in the base: {(rootfs / 'etc/apt/sources.list').read_text().strip()}")
        # This machine's HTTPS goes through a proxy with its own CA: give the base this host's local CAs (Debian's
        # way, update-ca-certificates) and point pip at the system bundle, or pip cannot reach PyPI in the build.
        local_cas = sorted(HOST_CA_DIR.glob("*.crt"))
        for ca in local_cas:
            shutil.copy(ca, rootfs / "usr/local/share/ca-certificates" / ca.name)
        if local_cas:
            sh(["chroot", str(rootfs), "update-ca-certificates"], log=workdir / "debootstrap.log")
            print(f"  this host's CAs added to the base: {', '.join(ca.name for ca in local_cas)}")
        (rootfs / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        sh(
            ["docker", "import", "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["python3"]', "-", BASE_TAG],
            stdin=tar.stdout,
            stdout=subprocess.DEVNULL,
        )
        tar.wait()
        print(f"  base {BASE_TAG}: {image_size_mb(BASE_TAG):.0f} MB, made in {time.monotonic() - t0:.0f} s")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


# --------------------------------------------------------------------------- 2. the image


def torch_version() -> str:
    for line in (PROJECT_ROOT / "constraints.txt").read_text().splitlines():
        if line.startswith("torch=="):
            return line.split("==", 1)[1].strip()
    raise RuntimeError("no torch pin in constraints.txt")


@contextlib.contextmanager
def torch_index(workdir: Path):
    """The local torch wheel as a PEP 503 simple index on loopback: http://127.0.0.1:<port>/simple."""
    version = torch_version()
    wheels = sorted(TORCH_WHEEL_DIR.glob(f"torch-{version}+cpu-cp311-*.whl"))
    if not wheels:
        raise RuntimeError(f"no torch {version}+cpu cp311 wheel in {TORCH_WHEEL_DIR}")
    index = workdir / "torch-index" / "simple" / "torch"
    index.mkdir(parents=True, exist_ok=True)
    links = []
    for whl in wheels:
        with contextlib.suppress(FileExistsError):
            (index / whl.name).symlink_to(whl)
        links.append(f'<a href="{whl.name.replace("+", "%2B")}">{whl.name}</a>')
    (index / "index.html").write_text("<!DOCTYPE html><html><body>" + "".join(links) + "</body></html>\n")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", str(workdir / "torch-index"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)
    try:
        yield f"http://127.0.0.1:{port}/simple", wheels[0].name
    finally:
        server.terminate()
        server.wait(10)


def build_image(workdir: Path) -> None:
    with torch_index(workdir) as (url, wheel):
        print(f"  torch index {url}: {wheel}")
        t0 = time.monotonic()
        log = workdir / "docker-build.log"
        try:
            sh(
                [
                    "docker",
                    "build",
                    "--network",
                    "host",
                    "--build-arg",
                    f"PYTHON_IMAGE={BASE_TAG}",
                    "--build-arg",
                    f"TORCH_INDEX_URL={url}",
                    "-t",
                    IMAGE_TAG,
                    str(PROJECT_ROOT),
                ],
                log=log,
                env={**os.environ, "DOCKER_BUILDKIT": "0"},
            )  # this machine's docker has no buildx: the classic builder
        except subprocess.CalledProcessError:
            print(log.read_text()[-4000:])
            raise
        seconds = time.monotonic() - t0
    text = log.read_text()
    torch_line = next((ln for ln in text.splitlines() if ln.startswith("torch ")), "")
    check(
        "Successfully built" in text and bool(torch_line), f"image built in {seconds:.0f} s ({torch_line}; log {log})"
    )
    print(f"  image {IMAGE_TAG}: {image_size_mb(IMAGE_TAG):.0f} MB")


# --------------------------------------------------------------------------- 3. the tasks, as pods


def docker_env(env: dict[str, str]) -> list[str]:
    return [a for k, v in sorted(env.items()) for a in ("-e", f"{k}={v}")]


def limits_flags(container: dict) -> list[str]:
    """The pod's CPU and memory limits as the container runtime would enforce them."""
    limits = container.get("resources", {}).get("limits", {})
    out = []
    if limits.get("cpu"):
        out += ["--cpus", str(limits["cpu"])]
    if limits.get("memory"):
        out += ["--memory", k8s_to_docker(limits["memory"])]
    return out


def k8s_to_docker(quantity) -> str:
    return str(quantity).replace("Gi", "g").replace("Mi", "m")


class Runner:
    """Propeller's part for one task node: inputs.pb, the filled container args, the pod env; outputs.pb back."""

    def __init__(self, package: Package, store: BlobStore, workdir: Path):
        self.package, self.store, self.workdir = package, store, workdir
        # No shared paths: the emulator declares its host's /tmp shared (FRD_SHARED_PATHS); these pods share nothing.
        self.execution = Execution(package, store, workdir, shared_paths=())
        self.started: list[str] = []  # the containers this script started (removed by name at the end)

    def prepare(self, task_name: str, node_id: str, inputs: dict) -> tuple:
        task = self.package.tasks[f"tasks.flyte.tasks.{task_name}"]
        meta = f"metadata/propeller/{self.execution.name}/{node_id}/data"
        inputs_uri = self.store.uri(meta, "inputs.pb")
        from flyteidl.core import literals_pb2

        self.store.put(inputs_uri, literals_pb2.LiteralMap(literals=inputs).SerializeToString())
        out_prefix = self.store.uri(meta, "0")
        raw = self.store.uri("data", self.execution.name, f"{node_id}-0")
        args = fill_template(
            list(task.container.args),
            {
                "input": inputs_uri,
                "outputPrefix": out_prefix,
                "rawOutputDataPrefix": raw,
                "checkpointOutputPrefix": f"{raw}/_flytecheckpoints",
                "prevCheckpointPrefix": "",
                "remote_package_path": "",
            },
        )
        # The env Flyte gives the pod: the blob store, the execution's identity. Not the emulator's stand-in for the
        # image's ENV (image_env: its host PATH): here the image's own ENV holds.
        env = {k: v for k, v in self.execution._base_env(task, node_id, 0).items() if k not in image_env()}
        return task, args, env, out_prefix

    def outputs(self, task_name: str, out_prefix: str):
        from flyteidl.core import literals_pb2

        from tasks.flyte import tasks as flyte_tasks

        if not check(self.store.exists(f"{out_prefix}/outputs.pb"), f"{task_name}: {out_prefix}/outputs.pb present"):
            err = f"{out_prefix}/error.pb"
            if self.store.exists(err):
                failure = read_failure(self.store.get(err))
                print(f"  error.pb: {failure.summary}\n{failure.message[-3000:]}")
            return None
        literals = literals_pb2.LiteralMap.FromString(self.store.get(f"{out_prefix}/outputs.pb"))
        types = {
            k: typing.get_args(t)[0] if typing.get_origin(t) is typing.Annotated else t  # HashMethod annotations
            for k, t in getattr(flyte_tasks, task_name).python_interface.outputs.items()
        }
        decoded = to_python(literals, types)
        for k, v in decoded.items():
            print(f"  {task_name} output {k} = {v!r}"[:600])
        return literals, decoded

    def run_plain(self, task_name: str, node_id: str, inputs: dict):
        task, args, env, out_prefix = self.prepare(task_name, node_id, inputs)
        name = f"imgcheck-{self.execution.name}-{node_id}"
        self.started.append(name)
        log = self.workdir / f"{node_id}-{task_name}.log"
        t0 = time.monotonic()
        cmd = [
            "docker",
            "run",
            "--rm",
            "--name",
            name,
            "--network",
            "host",
            *docker_env(env),
            task.container.image,
            *args,
        ]
        proc = subprocess.run(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        print(
            f"  $ docker run --rm --network host -e <{len(env)} pod env vars> {task.container.image} {shlex.join(args)}"
        )
        check(
            proc.returncode == 0,
            f"{task_name}: pod exited {proc.returncode} in {time.monotonic() - t0:.1f} s (log {log})",
        )
        if proc.returncode:
            print(log.read_text()[-3000:])
        return self.outputs(task_name, out_prefix)

    def start_node(self, name: str, container: dict, env: dict[str, str], flags: list[str]) -> None:
        """A Ray node pod: KubeRay's container command, the pod template's env, its limits. KubeRay's `ulimit -n 65536`
        fails here ("cannot modify limit": this machine caps open files at 20000 and Docker cannot raise it); the
        command goes on, as it would in a pod (`;`), with the engine's default limit."""
        self.started.append(name)
        shell = "ulimit -n 65536; ray start " + " ".join(flags)
        print(f"  pod {name}: /bin/bash -lc -- {shlex.quote(shell)}")
        # /dev/shm as KubeRay mounts it: a memory-backed volume of the container's memory limit.
        shm = container.get("resources", {}).get("limits", {}).get("memory", "512Mi")
        sh(
            [
                "docker",
                "run",
                "-d",
                "--name",
                name,
                "--network",
                "host",
                "--shm-size",
                k8s_to_docker(shm),
                *limits_flags(container),
                *docker_env(env),
                container["image"],
                "/bin/bash",
                "-lc",
                "--",
                shell,
            ],
            stdout=subprocess.DEVNULL,
        )

    def wait_nodes(self, dashboard: str, count: int, timeout: float = 180) -> list:
        from ray.util.state import list_nodes

        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            for name in self.started:
                state = subprocess.run(
                    ["docker", "inspect", "-f", "{{.State.Running}}", name], capture_output=True, text=True
                )
                if state.stdout.strip() == "false":
                    self.save_logs()
                    raise RuntimeError(f"pod {name} exited (its log: {self.workdir / (name + '.log')})")
            with contextlib.suppress(Exception):
                nodes = [
                    n
                    for n in list_nodes(address=dashboard, detail=True, timeout=10, raise_on_missing_output=False)
                    if n.state == "ALIVE"
                ]
                if len(nodes) >= count:
                    return nodes
                last = len(nodes)
            time.sleep(1)
        raise TimeoutError(f"{count} Ray nodes not up in {timeout} s (alive: {last})")

    def run_ray(self, task_name: str, node_id: str, inputs: dict):
        task, args, env, out_prefix = self.prepare(task_name, node_id, inputs)
        manifest = self.execution.rayjob(task, args, node_id, 0)
        cluster = manifest["spec"]["rayClusterSpec"]
        prefix = f"imgcheck-{self.execution.name}-{node_id}"
        gcs, dash = free_port(), free_port()
        resolve = {"status.podIP": "127.0.0.1"}

        def local_ports() -> dict[str, str]:  # what one host network cannot share between pods
            return {
                "dashboard-agent-listen-port": str(free_port()),
                "dashboard-agent-grpc-port": str(free_port()),
                "runtime-env-agent-port": str(free_port()),
                "metrics-export-port": str(free_port()),
            }

        head = cluster["headGroupSpec"]
        (hc,) = head["template"]["spec"]["containers"]
        params = {
            **kuberay_start_params(head["rayStartParams"], True, hc.get("resources", {})),
            **local_ports(),
            "port": str(gcs),
            "dashboard-port": str(dash),
            "dashboard-host": "127.0.0.1",
            "ray-client-server-port": str(free_port()),
        }
        t0 = time.monotonic()
        self.start_node(
            f"{prefix}-head",
            hc,
            {**env_of(hc, {**resolve, "metadata.name": f"{prefix}-head"}), **env},
            ["--head", *kuberay_flags(params)],
        )
        dashboard = f"http://127.0.0.1:{dash}"
        self.wait_nodes(dashboard, 1)
        pods = 1
        for group in cluster["workerGroupSpecs"]:
            (wc,) = group["template"]["spec"]["containers"]
            params = kuberay_start_params(
                group["rayStartParams"], False, wc.get("resources", {}), head_address=f"127.0.0.1:{gcs}"
            )
            for i in range(int(group["replicas"])):
                name = f"{prefix}-{group['groupName']}-{i}"
                cpu = {f"{k}.cpu": str(v["cpu"]) for k, v in wc.get("resources", {}).items() if "cpu" in v}
                self.start_node(
                    name,
                    wc,
                    {**env_of(wc, {**resolve, **cpu, "metadata.name": name}), **env},
                    kuberay_flags({**params, **local_ports()}),
                )
                pods += 1
        nodes = self.wait_nodes(dashboard, pods)
        print(
            f"  Ray cluster up in {time.monotonic() - t0:.1f} s: "
            + ", ".join(
                f"{'head' if n.is_head_node else 'worker'} CPU={n.resources_total.get('CPU', 0):g} "
                f"memory={n.resources_total.get('memory', 0) / 2**30:.0f}Gi"
                for n in nodes
            )
        )
        check(len(nodes) == pods, f"{task_name}: {pods} Ray nodes (the head and every worker replica) alive")

        submission = f"{self.execution.name}-{node_id}"
        sub = manifest["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
        cmd = shlex.join(submit_command(manifest, dashboard, submission))
        name = f"{prefix}-submitter"
        self.started.append(name)
        log = self.workdir / f"{node_id}-{task_name}-job.log"
        print(f"  pod {name}: /bin/bash -lc {shlex.quote(cmd)}")
        t1 = time.monotonic()
        proc = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--name",
                name,
                "--network",
                "host",
                *docker_env({**env_of(sub, resolve), **env}),
                sub["image"],
                "/bin/bash",
                "-lc",
                cmd,
            ],
            stdout=open(log, "wb"),
            stderr=subprocess.STDOUT,
            timeout=1800,
        )
        check(
            proc.returncode == 0,
            f"{task_name}: ray job submit exited {proc.returncode} after {time.monotonic() - t1:.1f} s (log {log})",
        )
        text = log.read_text(errors="replace")
        if proc.returncode:
            print(text[-4000:])
        for line in text.splitlines():
            if "Pushing file package" in line or "Job '" in line and "succeeded" in line:
                print("  job log: " + line.strip()[:300])
        from ray.job_submission import JobSubmissionClient

        info = JobSubmissionClient(dashboard).get_job_info(submission)
        head_id = next(n.node_id for n in nodes if n.is_head_node)
        check(
            str(info.status) == "SUCCEEDED" and info.driver_node_id == head_id,
            f"{task_name}: Ray job {info.status}, its driver (pyflyte-execute) ran on the head node",
        )
        if info.job_id:
            from ray.util.state import list_actors

            actors = [
                a
                for a in list_actors(
                    address=dashboard,
                    filters=[("job_id", "=", info.job_id)],
                    detail=True,
                    limit=10000,
                    raise_on_missing_output=False,
                )
                if a.node_id
            ]
            trials = [a for a in actors if a.class_name.startswith("ImplicitFunc") or "Trainable" in a.class_name]
            check(
                bool(trials) and all(a.node_id != head_id for a in trials),
                f"{task_name}: {len(trials)} trial actors ({', '.join(sorted({a.class_name for a in trials}))}), "
                "none on the head (it offers 0 CPUs)",
            )
        return self.outputs(task_name, out_prefix)

    def save_logs(self) -> None:
        for name in self.started:
            with open(self.workdir / f"{name}.log", "wb") as f:
                subprocess.run(["docker", "logs", name], stdout=f, stderr=subprocess.STDOUT)

    def cleanup(self) -> None:
        self.save_logs()
        for name in self.started:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def run_tasks(workdir: Path) -> None:
    step("the package: pyflyte package --copy none, the image " + IMAGE_TAG)
    env = {**os.environ, "HOME": str(workdir / "home")}
    package = Package.load(build_package(workdir / "package.tgz", IMAGE_TAG, env=env, copy="none"), workdir / "package")
    print(
        f"  {len(package.tasks)} task templates; tune_hyperparameters: type "
        f"{package.tasks['tasks.flyte.tasks.tune_hyperparameters'].type}"
    )
    port = free_port()
    moto = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    runner = None
    try:
        store = BlobStore(f"http://127.0.0.1:{port}", BUCKET)
        for _ in range(50):
            with contextlib.suppress(Exception):
                store.client.create_bucket(Bucket=BUCKET)
                break
            time.sleep(0.2)
        print(f"  blob store: moto S3 on {store.endpoint}, bucket {BUCKET}")
        # The host process reads what the pods wrote (FlyteFiles) from the same store.
        os.environ.update(
            {
                **store.pod_env(),
                "AWS_ACCESS_KEY_ID": store.access_key,
                "AWS_SECRET_ACCESS_KEY": store.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1",
                # the host's Ray client (state API) must not use a token the pods' cluster does not have
                "RAY_AUTH_MODE": "disabled",
            }
        )
        from tasks.flyte import tasks as flyte_tasks
        from tasks.training.settings import TuneCluster, TuneSettings

        def literals(task, values):
            return python_literals(values, getattr(flyte_tasks, task).python_interface.inputs)

        runner = Runner(package, store, workdir)
        step("plain task pin_dataset (the digits problem's embedded data), one pod")
        got = runner.run_plain("pin_dataset", "n0", literals("pin_dataset", {"source": "", "problem": "digits"}))
        if got is None:
            return
        pinned = got[1]
        step("plain task prepare_data, one pod: the Dataset (npz) written to the raw-output prefix in S3")
        got = runner.run_plain(
            "prepare_data",
            "n1",
            literals(
                "prepare_data",
                {"source": pinned["source"], "version": pinned["version"], "problem": "digits", "seed": 0},
            ),
        )
        if got is None:
            return
        data_literal = got[0].literals["o0"]
        npz = got[1]["o0"].file.remote_source or got[1]["o0"].file.path
        check(str(npz).startswith("s3://") and store.exists(str(npz)), f"prepare_data: the dataset file {npz} is in S3")
        step("Ray task tune_hyperparameters (2 trials, 1 epoch), the RayJob's pods as KubeRay runs them")
        inputs = {
            "data": data_literal,
            **literals(
                "tune_hyperparameters",
                {"settings": TuneSettings(num_samples=2, max_epochs=1, grace_period=1), "cluster": TuneCluster()},
            ),
        }
        got = runner.run_ray("tune_hyperparameters", "n2", inputs)
        if got is None:
            return
        result = got[1]["o0"]
        trials = result.trials_csv.remote_source or result.trials_csv.path
        csv = store.get(str(trials)).decode() if str(trials).startswith("s3://") else ""
        rows = [r for r in csv.splitlines()[1:] if r.strip()]
        check(
            len(rows) == 2,
            f"tune_hyperparameters: best {result.best} ({result.metric} = {result.best_score:.4f}); "
            f"trials.csv in S3 has {len(rows)} trials",
        )
    finally:
        if runner:
            runner.cleanup()
        moto.terminate()
        moto.wait(10)


def main(argv: typing.Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-build", action="store_true", help=f"reuse the image {IMAGE_TAG} (and its base)")
    parser.add_argument("--rebuild-base", action="store_true", help=f"make {BASE_TAG} again even if it exists")
    parser.add_argument("--workdir", default="", help="logs and the package (default: a temp dir)")
    opts = parser.parse_args(argv)
    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix="image-check-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"logs in {workdir}")
    subprocess.run(
        ["docker", "info", "-f", "Docker {{.ServerVersion}}, {{.Driver}}, cgroup v{{.CgroupVersion}}"], check=True
    )
    if not opts.no_build:
        step(f"the base {BASE_TAG} (debootstrap bookworm)")
        if image_exists(BASE_TAG) and not opts.rebuild_base:
            print(f"  exists ({image_size_mb(BASE_TAG):.0f} MB): kept (--rebuild-base to make it again)")
        else:
            make_base(workdir)
        step(f"the image {IMAGE_TAG}: docker build of the Dockerfile, build arguments only")
        build_image(workdir)
    elif not check(image_exists(IMAGE_TAG), f"image {IMAGE_TAG} exists"):
        return 1
    run_tasks(workdir)
    step("result")
    print("  every check passed" if not FAILED else "  FAILED: " + "; ".join(FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
