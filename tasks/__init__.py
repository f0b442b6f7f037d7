"""Data preparation, the model, and the Ray Tune and Ray Train tasks."""
