#!/usr/bin/env python
"""Manual front-end check of the mask-drawing widget in a real JupyterLab (not part of `make test`).

The unit tests drive ``MaskPainter``'s Python side with simulated ipycanvas events; this script
checks the browser side: it starts JupyterLab (from the course's environment, ``--python``) on a
scratch notebook, opens it in headless Chromium, runs the cell that shows the painter, drags the
mouse across the canvas, presses "Inpaint", reads the widget's status line back from the page and
saves a screenshot.

Needs Chromium and Playwright, which the course does not depend on (this script needs nothing
else: it writes the notebook as plain JSON)::

    apt-get install chromium                  # Debian/Ubuntu; or any Chromium/Chrome binary
    python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    /tmp/pw/bin/python tools/check_widget_in_browser.py --chromium /usr/bin/chromium \
        --python .venv/bin/python             # the Python that has JupyterLab and pconv_lib

``--python`` defaults to ``.venv/bin/python`` in the repository when it exists, else the Python
running this script. ``--photo-size 512 --viewport-width 900`` checks that big photos are scaled
to fit a narrow window (look at the screenshot). ``--demo`` uses the painter's default inpainter
(the bundled demo model, multi-scale) instead of a mean-colour stand-in, and ``--photo coffee``
with ``--photo-size 0`` a full-size 400x600 photo: what a learner gets.

Every wait polls the page (every 0.2 s, up to ``--timeout`` seconds) for what it waits for - the
notebook, the canvas, the status line showing the stroke, "inpainted" - instead of sleeping a fixed
time, so a slow machine does not fail the check and a fast one does not wait for nothing. Prints
the status line (e.g. "mask 256x256, 8.6% holes, 1 stroke, inpainted - took 0.9 s"), the seconds
"Inpaint" took as seen by the browser, and exits 1 when painting or inpainting did not reach Python
(or the status line reports an error).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from browser_checks import default_python, poll, require_browser  # noqa: E402  (tools/ is sys.path[0])

CELL = """import numpy as np
from pconv_lib.photos import sample_photo
from pconv_lib.widgets import MaskPainter

def mean_fill(image, mask):
    out = image.copy()
    out[mask == 0] = image[mask == 1].mean(axis=0).astype(np.uint8)
    return out

painter = MaskPainter(sample_photo(PHOTO, SIZE), predict_fn=None if DEMO else mean_fill)
painter"""
STATUS = re.compile(r"^mask \d+x\d+")


def _notebook(source: str) -> dict:
    """A one-cell notebook in nbformat 4 JSON (no nbformat package needed)."""
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "painter", "metadata": {},
                   "outputs": [], "source": source}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium/Chrome binary")
    parser.add_argument("--port", type=int, default=8899)
    parser.add_argument("--screenshot", type=Path, default=Path("widget_check.png"))
    parser.add_argument(
        "--python", default=default_python(), help="Python with JupyterLab and pconv_lib installed"
    )
    parser.add_argument("--photo-size", type=int, default=256,
                        help="side of the test photo (0: the sample photo's own size)")
    parser.add_argument("--photo", default="astronaut", help="a sample photo name (e.g. coffee, 400x600)")
    parser.add_argument("--demo", action="store_true", help="the default inpainter (the demo model)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds each wait may take")
    parser.add_argument("--viewport-width", type=int, default=1400, help="browser window width")
    args = parser.parse_args()
    sync_playwright = require_browser(args.chromium)
    check = subprocess.run([args.python, "-c", "import jupyterlab, pconv_lib"], capture_output=True)
    if check.returncode != 0:
        sys.exit(f"error: {args.python} cannot import jupyterlab and pconv_lib; pass --python PATH")

    work = Path(tempfile.mkdtemp())
    size = args.photo_size or None
    source = f"SIZE = {size!r}\nPHOTO = {args.photo!r}\nDEMO = {args.demo!r}\n" + CELL
    (work / "painter.ipynb").write_text(json.dumps(_notebook(source), indent=1))
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
    server = subprocess.Popen(
        [args.python, "-m", "jupyter", "lab", "--no-browser", f"--port={args.port}",
         "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={work}", "--allow-root"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        poll(lambda: urllib.request.urlopen(f"{base}/lab", timeout=2), args.timeout, "JupyterLab server")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
            page = browser.new_page(viewport={"width": args.viewport_width, "height": 1000})
            page.goto(f"{base}/lab/tree/painter.ipynb")
            wait_ms = int(args.timeout * 1000)
            page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=wait_ms)
            # Shift+Enter before the kernel is ready can be lost (seen: the cell stays "[ ]" and a
            # new cell appears), so wait until the status bar says the kernel is idle
            poll(lambda: page.get_by_text(re.compile(r"\| Idle")).count() > 0, args.timeout, "kernel ready")
            page.locator(".jp-Cell").first.click()
            page.keyboard.press("Shift+Enter")
            canvas = page.locator("canvas").first
            canvas.wait_for(timeout=wait_ms)
            status_line = page.get_by_text(STATUS).first
            poll(lambda: STATUS.match(status_line.inner_text()), args.timeout, "status line")
            poll(lambda: (canvas.bounding_box() or {}).get("width", 0) > 0, args.timeout, "canvas size")
            box = canvas.bounding_box()
            page.mouse.move(box["x"] + 40, box["y"] + 60)
            page.mouse.down()
            for i in range(1, 21):
                page.mouse.move(box["x"] + 40 + 8 * i, box["y"] + 60 + 5 * i)
                time.sleep(0.05)
            page.mouse.up()
            poll(lambda: re.search(r"[1-9]\d* strokes?", status_line.inner_text()), args.timeout,
                  "stroke in the status line")
            clicked = time.monotonic()
            page.get_by_role("button", name="Inpaint").click()

            def finished() -> str | None:
                text = status_line.inner_text()
                return text if "inpainted" in text or "error" in text else None

            status = poll(finished, args.timeout, "result in the status line")
            seconds = time.monotonic() - clicked
            page.screenshot(path=str(args.screenshot))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("status line:", status)
    print(f"Inpaint took {seconds:.1f} s as seen by the browser")
    print("screenshot:", args.screenshot)
    painted = re.search(r"([0-9.]+)% holes, (\d+) stroke", status)
    ok = painted is not None and float(painted.group(1)) > 0 and int(painted.group(2)) >= 1
    ok = ok and "inpainted" in status and "error" not in status
    print("widget check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
