"""Flyte: the tasks (`tasks`; batch prediction's in `predict`), the typed contracts between them (`contracts`), the
RayJobs they run on (`clusters`), secrets, the checks a remote run needs before any cluster (`remote_checks`), what
the dynamic steps hand Flyte (`sizing`), which errors Flyte retries (`recoverable`), a task's storage home across
attempts (`home`) and refusals shown as one short line (`refusals`).
"""
