#!/usr/bin/env python
"""Check the web app (``python -m pconv_lib app``) in a real browser (not part of `make test`).

``tests/test_app.py`` drives the server's handlers; this script drives the page: it starts the app
(with the course's Python, ``--python``) on a free loopback port, opens it in headless Chromium,
picks a sample photo, paints a stroke with the mouse, clicks "Inpaint", downloads the result and the
mask from the page's links and checks them with the course's Python: the result has the photo's
size, every valid pixel is the photo's, the holes are filled (not left black; with the demo model,
closer to the photo than its mean colour) and the mask has holes under the stroke. Then it uploads
a file that is not an image and checks that the page shows one "error: ..." line; uses Clear,
Inpaint without holes (one error line), Undo, the downloaded mask as a mask file and the Eraser;
and sends a second inpaint while one runs (as a second tab would): one of the two must be refused
as "busy". Saves a screenshot of the page with the results.

Needs Chromium and Playwright, which the course does not depend on::

    apt-get install chromium                  # Debian/Ubuntu; or any Chromium/Chrome binary
    python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    /tmp/pw/bin/python tools/check_app_in_browser.py --chromium /usr/bin/chromium \
        --python .venv/bin/python             # the Python that has pconv_lib's dependencies

``--repeat N`` clicks "Inpaint" N times more and prints the median seconds (the model's, measured
by the server, and the whole round trip seen by the browser). ``--checkpoint PATH`` checks your own
model. Every wait polls the page (every 0.2 s, up to ``--timeout`` seconds). Exits 1 when a check
fails.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from browser_checks import default_python, poll, require_browser  # noqa: E402  (tools/ is sys.path[0])

ADDRESS = re.compile(r"open (http://127\.0\.0\.1:\d+/) in a browser")
# run by --python (numpy, OpenCV): compares the PNGs the page downloaded
PIXEL_CHECK = r"""
import json, sys
import cv2, numpy as np
folder, x, y = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
read = lambda name: cv2.imread(f"{folder}/{name}", cv2.IMREAD_UNCHANGED)
photo, result, telea, mask = read("photo.png"), read("result.png"), read("telea.png"), read("mask.png")
valid, holes = mask == 255, mask == 0
error = float(np.abs(result[holes].astype(int) - photo[holes]).mean())
flat = float(np.abs(photo[holes].astype(int) - photo[valid].mean(axis=0)).mean())
print(json.dumps({
    "photo": list(photo.shape), "result": list(result.shape), "telea": list(telea.shape),
    "mask_binary": bool(np.isin(mask, [0, 255]).all()), "hole_percent": round(100 * float(holes.mean()), 2),
    "valid_pixels_changed": int((result != photo).any(axis=2)[valid].sum()),
    "telea_valid_pixels_changed": int((telea != photo).any(axis=2)[valid].sum()),
    "hole_error": round(error, 1), "mean_colour_error": round(flat, 1),
    "holes_left_black": round(float((result[holes] == 0).all(axis=1).mean()), 3),
    "hole_under_stroke": bool(mask[y, x] == 0),
}))
"""


def _start_app(args: argparse.Namespace, log: Path) -> tuple[subprocess.Popen, str]:
    """Start ``python -m pconv_lib app --port 0`` and return it with the address it printed."""
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p), PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        [args.python, "-m", "pconv_lib", "app", "--port", "0", "--checkpoint", args.checkpoint],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=ROOT,
    )

    def address() -> str | None:
        if server.poll() is not None:
            sys.exit(f"error: the app stopped: {log.read_text().strip()}")
        found = ADDRESS.search(log.read_text())
        return found.group(1) if found else None

    return server, poll(address, args.timeout, "address printed by the app")


def _wait_answer(page, timeout: float) -> str:
    """The status line once it shows the answer to an inpaint (a result, an error or "busy")."""
    status = page.locator("#status")
    return poll(lambda: (t := status.inner_text()).startswith(("inpainted:", "error", "busy")) and t,
                 timeout, "inpaint answer in the status line")


def _inpaint(page, timeout: float) -> tuple[str, float]:
    """Click Inpaint; return the status line and the seconds until the page showed the answer."""
    clicked = time.monotonic()
    page.click("#inpaint")
    return _wait_answer(page, timeout), time.monotonic() - clicked


def _link_bytes(page, selector: str) -> bytes:
    """The bytes behind a download link or an image of the page (a blob: URL)."""
    b64 = page.evaluate(
        """async (selector) => {
            const element = document.querySelector(selector);
            const blob = await (await fetch(element.href || element.src)).blob();
            const bytes = new Uint8Array(await blob.arrayBuffer());
            let text = ""; for (const b of bytes) text += String.fromCharCode(b);
            return btoa(text);
        }""",
        selector,
    )
    return base64.b64decode(b64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium/Chrome binary")
    parser.add_argument("--python", default=default_python(), help="Python with pconv_lib's dependencies")
    parser.add_argument("--checkpoint", default="demo", help="the model the app serves (default: demo)")
    parser.add_argument("--photo", default="coffee", help="a sample photo name (coffee: 600x400)")
    parser.add_argument("--screenshot", type=Path, default=Path("app_check.png"))
    parser.add_argument("--repeat", type=int, default=0,
                        help="click Inpaint this many times more, for timings")
    parser.add_argument("--timeout", type=float, default=180, help="seconds each wait may take")
    parser.add_argument("--viewport-width", type=int, default=1400, help="browser window width")
    args = parser.parse_args()
    sync_playwright = require_browser(args.chromium)
    check = subprocess.run([args.python, "-c", "import cv2, numpy, pconv_lib"], capture_output=True,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if check.returncode != 0:
        sys.exit(f"error: {args.python} cannot import pconv_lib and its dependencies; pass --python PATH")

    work = Path(tempfile.mkdtemp(prefix="app-check-"))
    server, url = _start_app(args, work / "app.log")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
            page = browser.new_page(viewport={"width": args.viewport_width, "height": 1000})
            page.goto(url)
            wait_ms = int(args.timeout * 1000)
            page.wait_for_selector(f"#sample option[value='{args.photo}']", state="attached", timeout=wait_ms)
            page.select_option("#sample", args.photo)
            status = page.locator("#status")
            poll(lambda: re.match(rf"{args.photo}: \d+x\d+", status.inner_text()), args.timeout, "photo")
            width, height = page.evaluate("[document.getElementById('paint').width, "
                                          "document.getElementById('paint').height]")
            box = page.locator("#paint").bounding_box()
            # a stroke from 30 % to 60 % of the width, at 40 % to 50 % of the height
            start = (box["x"] + 0.3 * box["width"], box["y"] + 0.4 * box["height"])
            end = (box["x"] + 0.6 * box["width"], box["y"] + 0.5 * box["height"])
            page.mouse.move(*start)
            page.mouse.down()
            for i in range(1, 21):
                t = i / 20
                page.mouse.move(start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)
                time.sleep(0.02)
            page.mouse.up()
            painted = poll(lambda: re.search(r"([0-9.]+)% holes", status.inner_text()), args.timeout,
                            "hole percentage in the status line")
            middle = ((start[0] + end[0]) / 2 - box["x"]) * width / box["width"], \
                     ((start[1] + end[1]) / 2 - box["y"]) * height / box["height"]
            text, seconds = _inpaint(page, args.timeout)
            print("status line:", text)
            print(f"Inpaint took {seconds:.2f} s as seen by the browser")
            page.wait_for_timeout(300)  # the result images decode
            page.screenshot(path=str(args.screenshot), full_page=True)
            files = {"photo.png": base64.b64decode(page.evaluate("state.photoPng")),
                     "result.png": _link_bytes(page, "#download-result"),
                     "telea.png": _link_bytes(page, "#out-telea"),
                     "mask.png": _link_bytes(page, "#download-mask")}
            for name, data in files.items():
                (work / name).write_bytes(data)
            # a second inpaint while one runs (as from a second tab): one of the two is refused, "busy"
            page.click("#inpaint")
            second = page.evaluate(
                """async () => {
                    const r = await fetch("/api/inpaint", {method: "POST",
                        headers: {"Content-Type": "application/json"},
                        body: JSON.stringify({photo: state.photoPng, mask: maskPng()})});
                    return [r.status, (await r.json()).error || "inpainted"];
                }""")
            first = _wait_answer(page, args.timeout)
            print(f"two at once: the page: {first[:40]!r}...; the second request: {second[0]} "
                  f"{second[1][:60]!r}")
            model_times, round_trips = [], []
            for _ in range(args.repeat):
                again, took = _inpaint(page, args.timeout)
                found = re.search(r"model ([0-9.]+) s", again)
                if found:
                    model_times.append(float(found.group(1)))
                    round_trips.append(took)
            # the controls: Clear, Inpaint without holes, Undo, a mask file (the one downloaded above)
            holes = painted.group(1)

            def percent() -> str | None:
                found = re.search(r"([0-9.]+)% holes", status.inner_text())
                return found.group(1) if found else None

            page.click("#clear")
            controls = {"clear": poll(lambda: percent() == "0.0" and "0.0", args.timeout, "cleared mask")}
            controls["no holes"] = _inpaint(page, args.timeout)[0]
            page.click("#undo")
            controls["undo"] = poll(lambda: percent() == holes and holes, args.timeout, "undone clear")
            page.click("#clear")
            poll(lambda: percent() == "0.0", args.timeout, "cleared mask")
            page.set_input_files("#mask-file", files=[{"name": "mask.png", "mimeType": "image/png",
                                                       "buffer": files["mask.png"]}])
            controls["mask file"] = poll(lambda: percent() == holes and holes, args.timeout, "loaded mask")
            page.click("#eraser")  # erase the first half of the stroke (the canvas has moved: results)
            now = page.locator("#paint").bounding_box()
            page.mouse.move(now["x"] + 0.3 * now["width"], now["y"] + 0.4 * now["height"])
            page.mouse.down()
            page.mouse.move(now["x"] + 0.45 * now["width"], now["y"] + 0.45 * now["height"], steps=10)
            page.mouse.up()
            controls["eraser"] = poll(lambda: (p := percent()) not in (None, holes) and p, args.timeout,
                                       "erased holes")
            print("controls:", controls)
            # bad input in the page: a file that is not an image
            page.set_input_files("#photo-file", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                                        "buffer": b"not a photo"}])
            error_line = poll(lambda: (t := status.inner_text()).startswith("error") and t, args.timeout,
                               "error line for a file that is not an image")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    where = [str(int(middle[0])), str(int(middle[1]))]
    pixel = subprocess.run([args.python, "-c", PIXEL_CHECK, str(work), *where], capture_output=True,
                           text=True)
    if pixel.returncode != 0:
        sys.exit(f"error: the pixel check failed: {pixel.stderr.strip()}")
    found = json.loads(pixel.stdout)
    print("pixels:", json.dumps(found))
    if model_times:
        print(f"{len(model_times)} more inpaints: model median {statistics.median(model_times):.2f} s (min "
              f"{min(model_times):.2f}), browser round trip median {statistics.median(round_trips):.2f} s")
    print("not an image:", error_line)
    print("screenshot:", args.screenshot)
    shape = [height, width, 3]
    checks = {
        "stroke painted": float(painted.group(1)) > 0,
        "inpainted": text.startswith("inpainted:"),
        "result has the photo's size": found["result"] == found["photo"] == found["telea"] == shape,
        "valid pixels unchanged": found["valid_pixels_changed"] == 0 == found["telea_valid_pixels_changed"],
        "holes filled (not left black, as the model receives them)": found["holes_left_black"] < 0.01,
        "mask binary, holes under the stroke": found["mask_binary"] and found["hole_under_stroke"],
        "two at once: one inpainted, the other refused as busy": sorted(
            [first.startswith("inpainted:"), second[0] == 200]) == [False, True]
        and (first.startswith("busy:") or (second[0] == 409 and second[1].startswith("busy:"))),
        "clear, undo and a mask file give the painted holes back": controls["clear"] == "0.0"
        and controls["undo"] == controls["mask file"] == painted.group(1),
        "the eraser removes holes": 0 < float(controls["eraser"]) < float(painted.group(1)),
        "inpaint without holes: one error line": controls["no holes"].startswith("error: no holes to fill"),
        "one error line for a non-image": error_line.startswith("error: notes.txt is not a readable image")
        and "\n" not in error_line and "Traceback" not in error_line,
    }
    if args.checkpoint == "demo":  # a trained model: the fill continues the photo
        checks["demo model: fill closer to the photo than its mean colour"] = (
            found["hole_error"] < 0.8 * found["mean_colour_error"])
    for name, ok in checks.items():
        print(f"  {'ok ' if ok else 'FAILED'} {name}")
    print("app check:", "OK" if all(checks.values()) else "FAILED")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
