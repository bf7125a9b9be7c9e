import sys

from bench.cli import main
from theory.cliutil import run_main

sys.exit(run_main(main, errors=(ValueError,)))
