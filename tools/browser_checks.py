"""What the two real-browser checks share (``check_widget_in_browser.py``, ``check_app_in_browser.py``):
waiting for the page, and the Python that has pconv_lib's dependencies. Imported from those scripts
(``tools/`` is on ``sys.path`` when they run)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def poll(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Call ``check()`` every 0.2 s until it returns something truthy; exit with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except Exception:  # the page is still building: try again
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            sys.exit(f"error: no {what} after {timeout:.0f} s (see --timeout)")
        time.sleep(0.2)


def require_browser(chromium: str | Path):
    """Playwright's ``sync_playwright`` and a Chromium at ``chromium``, or exit with one line."""
    try:
        from playwright.sync_api import sync_playwright  # only the browser checks need it
    except ImportError:
        sys.exit("error: needs playwright: python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright")
    if not Path(chromium).exists():
        sys.exit(f"error: no Chromium at {chromium}; install it or pass --chromium PATH")
    return sync_playwright


def default_python() -> str:
    """The repository's ``.venv`` Python when there is one, else this one."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable
