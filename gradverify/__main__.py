"""``python -m gradverify``: the command line (see :mod:`gradverify.edges.cli`)."""

if __name__ == "__main__":  # not when a worker process re-imports the main module
    from gradverify.edges.cli import main

    raise SystemExit(main())
