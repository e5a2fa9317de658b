"""The CLI tests' one runner: ``python -m pconv_lib ARGS`` in-process, never a traceback."""

from __future__ import annotations

from pconv_lib.app import cli


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """Run the command line with ``argv`` (``str()`` of each); return (exit code, stdout, stderr)
    after asserting that neither shows a traceback."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err
