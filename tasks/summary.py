"""`python -m tasks.summary`: the end of a run in the terminal (see `tasks.reporting.summary`)."""

import sys

from tasks.reporting.summary import main

if __name__ == "__main__":
    sys.exit(main())
