"""Complete problems that train themselves: `lightning_digits` (a LightningModule) and `custom_loop` (a plain loop).

Run one from the project root: `pyflyte run workflows/tune_train.py tune_train_wf --problem examples.lightning_digits:PROBLEM`.
"""
