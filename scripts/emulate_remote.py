"""Run a serialized workflow the way a Flyte cluster with KubeRay would, on this one machine.

The emulator is the `emulator` package (its docstring says what is emulated and how); this is its command line,
the same as `python -m emulator`:

    python scripts/emulate_remote.py --repo-url file:///path/to/bare.git      # starts its own S3
    python scripts/emulate_remote.py --print-rayjob                          # the RayJobs, nothing run
"""

import sys
from pathlib import Path

# Run as a file, Python puts scripts/ on sys.path, not the checkout this script belongs to.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulator.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
