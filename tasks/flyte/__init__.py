"""Flyte: the tasks (`tasks`), the typed contracts between them (`contracts`), the RayJobs they run on
(`clusters`), secrets, the checks a remote run needs before any cluster (`remote_checks`), what the
dynamic steps hand Flyte (`sizing`) and which errors Flyte retries (`recoverable`).
"""
