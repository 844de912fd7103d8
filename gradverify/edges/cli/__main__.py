"""``python -m gradverify.edges.cli``: the ``gradverify`` command, as ``python -m gradverify``."""

import sys

from gradverify.edges.cli import main

if __name__ == "__main__":  # not when a worker process re-imports the main module
    sys.exit(main())
