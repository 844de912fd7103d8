"""The ``gradverify`` command: ``check`` (the CI check), ``scan`` and ``report``.

Exit codes:

- 0: every implementation was checked and every verdict passes (``scan``: every scan ran to
  the end and no call failed);
- 1: findings: ``incorrect`` or ``error`` verdicts, or ``unstable`` under ``--fail-on unstable``
  (``scan``: a call raised, hung or returned something malformed); also when an
  implementation stops the run itself (``sys.exit``);
- 2: a usage, configuration or import error, or an output that cannot be written, with a
  one-line reason;
- 3: an internal error of gradverify (``--debug`` shows the traceback);
- 130: interrupted (Ctrl-C); no output file is written.

``--exit-zero`` makes a command exit 0 whatever happened (the messages are still printed).
Implementations are named ``MODULE:ATTR`` (the current directory is importable, as with
``python -m``) or by a built-in name: naive, epsilon, fused.

Output paths (``--json``, ``--junit-xml``, ``--out``) are resolved against the working
directory at start-up and checked before anything runs; ``--json -`` writes the JSON to
stdout and everything else to stderr.

The modules of the package, one concept each:

- :mod:`~gradverify.edges.cli.entry`: :func:`main`, and every way a command ends as an exit code;
- :mod:`~gradverify.edges.cli.parser`: :func:`build_parser`, the subcommands and their flags;
- :mod:`~gradverify.edges.cli.targets`: :func:`load_target` (``MODULE:ATTR``) and what the
  command line and the config declare for each implementation;
- :mod:`~gradverify.edges.cli.outputs`: the output paths, checked first, and ``--json -``;
- :mod:`~gradverify.edges.cli.check`, :mod:`~gradverify.edges.cli.scan`,
  :mod:`~gradverify.edges.cli.report`: one command each;
- :mod:`~gradverify.edges.cli.common`: exit codes, :class:`UsageError`, config and settings.
"""

from __future__ import annotations

from gradverify.edges.cli.check import CHECK_SCHEMA as CHECK_SCHEMA
from gradverify.edges.cli.common import (
    EXIT_FINDINGS,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
)
from gradverify.edges.cli.entry import main
from gradverify.edges.cli.outputs import STDOUT as STDOUT
from gradverify.edges.cli.outputs import Outputs as Outputs
from gradverify.edges.cli.parser import CHECK_EPILOG as CHECK_EPILOG
from gradverify.edges.cli.parser import build_parser
from gradverify.edges.cli.targets import Target as Target
from gradverify.edges.cli.targets import load_target

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "build_parser",
    "load_target",
    "main",
]
