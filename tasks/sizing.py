"""`python -m tasks.sizing`: what Flyte would be given for a run's cluster sizes (see `tasks.flyte.sizing`)."""

import sys

from tasks.flyte.sizing import main

if __name__ == "__main__":
    sys.exit(main())
