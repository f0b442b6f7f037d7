# One image for the Flyte task pod, the KubeRay head and the KubeRay workers.
#
#   docker build -t flyte-ray-dvc:dev .
#
# torch is a CPU build by default. The CUDA variant, for GPU workers (`gpus_per_worker` > 0 in
# `train_cluster`/`tune_cluster`: the worker pods then request nvidia.com/gpu), is one build
# argument, a CUDA tag of the PyTorch install matrix:
#   docker build --build-arg TORCH_VARIANT=cu128 -t flyte-ray-dvc:cuda .
# The CUDA wheel brings its own CUDA runtime; the node's driver comes from the NVIDIA device
# plugin / container toolkit, which reads NVIDIA_DRIVER_CAPABILITIES below. The build checks
# that the torch it installed is the variant asked for. TORCH_VERSION must stay equal to the
# torch pin in constraints.txt.
#
# The code lives in /home/flyte/app: the working directory, and on PYTHONPATH. Fast registration
# unpacks code into the working directory for `pyflyte run --remote` (destination "."), but
# `pyflyte register` and `pyflyte package` unpack to /root by default, which the non-root user
# cannot write: pass `--destination-dir /home/flyte/app` (register) or
# `--in-container-source-path /home/flyte/app` (package).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: the virtualenv ---------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}
ARG TORCH_VERSION=2.13.0

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, alone, from the PyTorch index. Its dependencies come from PyPI in the next step,
# under the constraints. The local version label (+cpu, +cu128) is ignored when matching the
# constraint torch==2.13.0 (PEP 440), so that step keeps this build instead of pulling the
# default CUDA wheel from PyPI.
RUN pip install --no-deps --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# The project and every other dependency, at the versions in constraints.txt.
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY workflows/ workflows/
COPY tasks/ tasks/
COPY dvc_bridge/ dvc_bridge/
COPY compat/ compat/
COPY examples/ examples/
RUN pip install -c constraints.txt . \
 && pip check \
 && python -c "import torch; v = torch.__version__; print('torch', v, 'cuda', torch.version.cuda); \
assert v.split('+')[0] == '${TORCH_VERSION}', v; \
assert (torch.version.cuda is None) == ('${TORCH_VARIANT}' == 'cpu'), 'torch is not the ${TORCH_VARIANT} variant'"

# ---- runtime: Flyte task pod, Ray head, Ray workers ------------------------------------------
FROM ${PYTHON_IMAGE}

# Pass --build-arg SOURCE_URL=<repository URL> to fill the source label.
ARG SOURCE_URL=""
ARG TORCH_VARIANT=cpu
LABEL org.opencontainers.image.title="flyte-ray-dvc" \
      org.opencontainers.image.description="Flyte task pod, Ray head and Ray workers for Ray Tune/Train on Flyte, every run a DVC experiment." \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.flyte-ray-dvc.torch-variant="${TORCH_VARIANT}"

# git for the DVC bridge, wget for KubeRay's health probes; no compilers or build tools.
# safe.directory: the bridge's clones must be usable whoever owns them. Debian point releases
# move package versions, so they are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git wget \
 && rm -rf /var/lib/apt/lists/* \
 && git config --system --add safe.directory '*'

# A non-root user with a writable home (Ray writes ~/.ray, DVC and matplotlib their config).
# KubeRay starts Ray with `/bin/bash -lc`, and Debian's /etc/profile resets PATH for login
# shells: the profile.d script puts the venv back in front ($PATH is meant literally).
# hadolint ignore=SC2016
RUN groupadd --gid 1000 flyte \
 && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash flyte \
 && install -d -o flyte -g flyte /home/flyte/app \
 && echo 'export PATH="/opt/venv/bin:$PATH"' > /etc/profile.d/00-venv.sh

# Owned by root: the environment is read-only at run time.
COPY --from=builder /opt/venv /opt/venv

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/home/flyte \
    PYTHONPATH=/home/flyte/app \
    PYTHONUNBUFFERED=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    DVC_NO_ANALYTICS=1 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# Only the packages: Ray uploads this directory as the job's working_dir, so keep it small.
WORKDIR /home/flyte/app
COPY --chown=flyte:flyte workflows/ workflows/
COPY --chown=flyte:flyte tasks/ tasks/
COPY --chown=flyte:flyte dvc_bridge/ dvc_bridge/
COPY --chown=flyte:flyte compat/ compat/
# The example problems that train themselves (--problem examples.lightning_digits:PROBLEM, examples.custom_loop:PROBLEM).
COPY --chown=flyte:flyte examples/ examples/
# A team's own problem module (README "Your own model") goes here too, e.g.
#   COPY --chown=flyte:flyte team_code/team_iris.py ./
# and runs with --problem team_iris:PROBLEM: /home/flyte/app is on PYTHONPATH in every pod and Ray node.

USER 1000:1000

# The tools must be found the way KubeRay runs them, in a login shell.
RUN bash -lc 'for c in python ray pyflyte-execute pyflyte-fast-execute dvc git wget; do \
        command -v "$c" >/dev/null || { echo "$c is not on the login-shell PATH" >&2; exit 1; }; \
    done; [ "$(command -v python)" = /opt/venv/bin/python ]'
