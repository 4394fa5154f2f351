"""``python -m benchmarks`` runs the benchmark command line."""

import sys

from benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main())
