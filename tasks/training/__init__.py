"""Pure training: what a user sets for a search and a run (`settings`), what fits a cluster
(`capacity`), and the plain PyTorch loop (`loop`: loaders, one epoch, one evaluation, the DDP
batch split). No Flyte or Ray.
"""
