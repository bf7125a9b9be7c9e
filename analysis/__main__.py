import sys

from analysis.cli import main
from theory.cliutil import run_main

sys.exit(run_main(main, errors=(ValueError,)))
