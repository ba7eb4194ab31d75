"""The subcommands of ``neuromech``, in the order ``--help`` lists them.

A subcommand is a module with:

- ``NAME``: the word on the command line; ``HELP``: one line for ``neuromech --help``;
- ``add_arguments(parser)``: declare its options on an ``argparse`` parser;
- ``run(args) -> int``: do the work through the public Python API and return the exit status.
  Raise ``ValueError`` (bad input) or ``OSError`` (files) with a clear message: :func:`main` prints
  it as ``neuromech: error: ...`` and exits with status 2. Write outputs atomically (neuromech.io).

To add one (``dics``, ``population``, ``populate``, ``fit``, ``predict``), write the module and list
it below.
"""

from . import _dics, _fit, _populate, _population, _predict, _simulate, _stream, _train_network, _training_data

COMMANDS = (_simulate, _dics, _population, _populate, _training_data, _train_network, _fit, _predict, _stream)
