"""pytest plugin for gradverify (registered through the ``pytest11`` entry point)."""
