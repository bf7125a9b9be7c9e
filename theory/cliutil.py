"""Shared CLI plumbing: bad input is one line on stderr and a non-zero exit, never a traceback."""
import argparse
import sys
from typing import Callable

from theory.errors import TheoryError

EXIT_BAD_INPUT = 2


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the epilog's example lines as written and shows every option's default beside its help."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help                  # "(default: None)" says nothing; the help text says what happens
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(EXIT_BAD_INPUT)


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None,
             errors: tuple[type[BaseException], ...] = ()) -> int:
    try:
        return main(argv)
    except (TheoryError, *errors) as e:
        sys.stderr.write(f"error: {e}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:                           # read-only or missing paths, a file where a folder should be, disk full
        where = f": {e.filename}" if e.filename else ""
        sys.stderr.write(f"error: {e.strerror or e}{where}\n")
        return EXIT_BAD_INPUT
