"""Running ``gradverify`` in-process in the CLI tests, and reading its one-line errors."""

from __future__ import annotations

from gradverify.edges.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``main(argv)``: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    """The only non-blank line of ``err``, which must carry no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]
