"""Pure training: what a user sets for a search and a run (`settings`), what fits a cluster (`capacity`), the plain
PyTorch loop (`loop`: loaders, one epoch, one evaluation, the DDP batch split), the contract of a problem's own loop
(`contract`), the search's rules (`search`) and the baselines every run is scored beside (`baselines`).
No Flyte or Ray.
"""
