"""Argument parsing, dispatch and error reporting for ``neuromech``."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ._commands import COMMANDS

EXIT_USAGE = 2  # bad input, as argparse uses for bad arguments
EXIT_FAILURE = 1  # the work itself failed (e.g. a simulation diverged)
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with one error format for every message: ``neuromech: error: ...``."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"neuromech: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``neuromech`` parser with every subcommand of :data:`COMMANDS`."""
    from .. import __version__

    parser = _Parser(
        prog="neuromech",
        description="Mechanistic models of neurons from neural data: simulate populations of "
        "conductance-based models, and more. Units: ms, mV, mS/cm², µA/cm².",
    )
    parser.add_argument("--version", action="version", version=f"neuromech {__version__}")
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS:
        p = sub.add_parser(command.NAME, help=command.HELP, description=command.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``neuromech`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    0: success; 2: bad input (one line ``neuromech: error: ...`` on stderr, no output written);
    1: the work failed; 130: interrupted (finished parts of a job are kept for a rerun).
    """
    from .._devices import use_compilation_cache, use_cpu_cores

    use_cpu_cores()  # before any JAX work: populations split over all CPU cores
    use_compilation_cache()  # a second fit or simulation of the same shapes skips compiling
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, --version and usage errors: argparse has printed them
        return exit.code if isinstance(exit.code, int) else EXIT_USAGE
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args) or 0)
    except (ValueError, OSError) as err:
        return _fail(_describe(err), EXIT_USAGE)
    except FloatingPointError as err:
        return _fail(str(err), EXIT_FAILURE)
    except KeyboardInterrupt:
        return _fail("interrupted; finished parts are kept, rerun the same command to resume", EXIT_INTERRUPTED)


def _fail(message: str, status: int) -> int:
    print(f"neuromech: error: {message}", file=sys.stderr)
    return status


def _describe(err: BaseException) -> str:
    """One line for an exception: the OS's reason and the file for system errors, else the message."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        return f"cannot open {err.filename}: {err.strerror}"
    return " ".join(str(err).split()) or type(err).__name__
