#!/usr/bin/env python
"""Manual front-end check of the mask-drawing widget in a real JupyterLab (not part of `make test`).

The unit tests drive ``MaskPainter``'s Python side with simulated ipycanvas events; this script
checks the browser side: it starts JupyterLab from this repository's ``.venv`` on a scratch
notebook, opens it in headless Chromium, runs the cell that shows the painter, drags the mouse
across the canvas, presses "Inpaint", reads the widget's status line back from the page and saves
a screenshot.

Needs Chromium and Playwright, which the course does not depend on::

    apt-get install chromium                  # Debian/Ubuntu; or any Chromium/Chrome binary
    python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    /tmp/pw/bin/python tools/check_widget_in_browser.py --chromium /usr/bin/chromium

Prints the status line (e.g. "mask 256x256, 8.6% holes, 1 stroke, inpainted") and exits 1 when
painting or inpainting did not reach Python.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CELL = """import numpy as np
from pconv_lib.photos import sample_photo
from pconv_lib.widgets import MaskPainter

def mean_fill(image, mask):
    out = image.copy()
    out[mask == 0] = image[mask == 1].mean(axis=0).astype(np.uint8)
    return out

painter = MaskPainter(sample_photo("astronaut", 256), predict_fn=mean_fill)
painter"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium/Chrome binary")
    parser.add_argument("--port", type=int, default=8899)
    parser.add_argument("--screenshot", type=Path, default=Path("widget_check.png"))
    args = parser.parse_args()

    import nbformat
    from playwright.sync_api import sync_playwright  # only this script needs it

    work = Path(tempfile.mkdtemp())
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(CELL)]
    nbformat.write(notebook, work / "painter.ipynb")
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "jupyter"), "lab", "--no-browser", f"--port={args.port}",
         "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={work}", "--allow-root"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(60):
            try:
                urllib.request.urlopen(f"{base}/lab", timeout=2)
                break
            except OSError:
                time.sleep(1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/painter.ipynb")
            page.wait_for_selector(".jp-Notebook", timeout=60_000)
            time.sleep(3)
            page.locator(".jp-Cell").first.click()
            page.keyboard.press("Shift+Enter")
            canvas = page.locator("canvas").first
            canvas.wait_for(timeout=120_000)
            time.sleep(3)
            box = canvas.bounding_box()
            page.mouse.move(box["x"] + 40, box["y"] + 60)
            page.mouse.down()
            for i in range(1, 21):
                page.mouse.move(box["x"] + 40 + 8 * i, box["y"] + 60 + 5 * i)
                time.sleep(0.05)
            page.mouse.up()
            time.sleep(2)
            page.get_by_role("button", name="Inpaint").click()
            time.sleep(3)
            page.screenshot(path=str(args.screenshot))
            status = page.get_by_text(re.compile(r"^mask \d+x\d+")).first.inner_text()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("status line:", status)
    print("screenshot:", args.screenshot)
    painted = re.search(r"([0-9.]+)% holes, (\d+) stroke", status)
    ok = painted is not None and float(painted.group(1)) > 0 and int(painted.group(2)) >= 1
    ok = ok and "inpainted" in status
    print("widget check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
