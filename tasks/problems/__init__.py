"""The built-in training problems, one module each: `digits` (the default) and `diabetes`.

A problem of your own is a module like these anywhere on PYTHONPATH, named as `module:attribute`.
"""
