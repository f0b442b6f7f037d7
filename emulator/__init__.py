"""Run a serialized workflow the way a Flyte cluster with KubeRay would, on this one machine.

There is no Flyte backend or Kubernetes here, so this plays their parts and nothing else:

* **flytectl / flyteadmin** (`emulator.packaging`): `pyflyte package` produces the real protobufs; the
  fast-registration code archive is uploaded to S3 and `{{ .remote_package_path }}` filled in.
* **flytepropeller** (`emulator.run`, its rules in `emulator.propeller`): walks the workflow's nodes, resolves each
  node's input bindings from upstream outputs (attribute paths included), writes `inputs.pb`, fills the container
  template (`{{.input}}`, `{{.outputPrefix}}`, ...) and reads `outputs.pb` / `error.pb` back. A failed attempt is
  retried by propeller's rule (`RetryBudget`): only a RECOVERABLE error document, or an attempt that died without
  one; user errors count against the task's `retries`, system errors against propeller's own budget of 3. Every path
  is in S3 (`emulator.blobstore`, a moto server on loopback).
* **a pod** (`emulator.pods`): the task's container command run as a process with the pod's environment only (the
  image's variables, Flyte's execution variables, `FLYTE_AWS_*` for the blob store, and the secrets the task template
  requests, as Flyte's webhook would inject them), its own HOME, TMPDIR and a fresh copy of what the image holds in
  /home/flyte/app (the Dockerfile's COPY lines). The one rewrite: the in-image path /home/flyte/app becomes that
  pod's directory.
* **the Flyte Ray plugin and KubeRay** for `ray` tasks: the RayJob the plugin builds from the task's spec and the
  `ray start` / `ray job submit` KubeRay derives from it (`emulator.kuberay`), run as a real multi-node Ray cluster,
  one `ray start` per pod with its own directory and the pod template's env, the task's entrypoint the job driver on
  the head (`emulator.raycluster`). What one machine cannot share between pods is rewritten: node IP, ports, temp
  dirs, the object store size. `--print-rayjob` prints the RayJob of each Ray task.

Not emulated: Flyte's cache (every task runs), scheduling (a launch plan is run once with a given
kickoff time), resource requests/limits (Ray sees the logical CPUs of rayStartParams; Kubernetes
would also enforce the pod limits), image pulls, KubeRay's autoscaler and TTL.

Also: `emulator.literals` (Python values to Flyte literals and back, with flytekit's TypeEngine), `emulator.host`
(the project root, this environment's programs, free ports), `emulator.cli` (the command line).

    python -m emulator --repo-url file:///path/to/bare.git      # starts its own S3
    python -m emulator --print-rayjob                          # the RayJobs, nothing run

(`python scripts/emulate_remote.py ...` is the same command.)
"""
