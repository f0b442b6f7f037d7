"""Data: where a run's data comes from, how it is checked against the problem, split and versioned.

`arrays`: the in-memory path (a file, URI or DVC-tracked file loaded whole, checked, split three ways and hashed);
`batch`: every sample of a source, for scoring. numpy, fsspec and DVC's API; nothing of Flyte or Ray.
"""
