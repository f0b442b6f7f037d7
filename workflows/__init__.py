"""The workflows wiring the tasks, and their launch plans."""
