"""The ``neuromech`` command line: thin subcommands over the Python API.

Each subcommand is one module here (see :mod:`neuromech.cli._commands` for the list and the small
contract a module fulfils); :func:`main` parses the arguments, runs the subcommand and turns the
library's errors into one line on stderr and exit status 2.
"""

from ._main import build_parser as build_parser
from ._main import main as main
