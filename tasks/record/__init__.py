"""The experiment record: where each output of a run lives in a DVC repo, its `dvc.yaml`, and the
mapping from a run's outputs to the generic record the DVC bridge writes. No Flyte or Ray.
"""
