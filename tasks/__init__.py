"""Tune, train and record: the project's code, in layers whose imports point down only.

    tasks.cli, .scaffold, .sizing, .summary   commands (`python -m tasks.<name>`)
    tasks.flyte                               Flyte tasks, contracts, RayJobs, secrets
    tasks.ray_glue                            Ray Tune, Ray Train, local Ray, checkpoint storage
    tasks.reporting                           log lines, Deck pages, the terminal summary
    tasks.record                              the experiment's layout in a DVC repo, earlier trials
    tasks.training                            settings, cluster capacity, the plain PyTorch loop
    tasks.data                                data sources, checks, splits, the data version
    tasks.problems                            the built-in problems (digits, diabetes)
    tasks.problem                             the problem interface and its search-space format

`tests/test_layers.py` holds the order (import-linter contracts in pyproject.toml).
"""
