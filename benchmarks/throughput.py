"""Agent throughput at the paper's network size; the same as `fino bench` (same options).

    python benchmarks/throughput.py --shape cube-double
"""

import sys

from fino.cli.main import app

if __name__ == "__main__":
    app(["bench", *sys.argv[1:]])
