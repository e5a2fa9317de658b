"""The web app's handlers (pconv_lib.app.web), without a browser: a real server on an ephemeral
loopback port in a thread, real PNG uploads, the JSON answers checked (tools/check_app_in_browser.py
drives the page itself in headless Chromium)."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import tomllib
import torch

from pconv_lib import masks, photos
from pconv_lib.app import cli
from pconv_lib.app import web as app
from pconv_lib.util.errors import BadValue

H, W = 96, 128


def png_b64(image: np.ndarray) -> str:
    """uint8 RGB (H, W, 3) or grey (H, W) -> base64 PNG."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return base64.b64encode(cv2.imencode(".png", image)[1].tobytes()).decode()


def decode(b64: str) -> np.ndarray:
    """base64 PNG -> uint8 RGB (H, W, 3) or grey (H, W)."""
    image = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image


def hole_mask(height: int = H, width: int = W) -> np.ndarray:
    """1 = valid, 0 = hole: a 20x30 box and a thick line, about 10 % holes."""
    mask = np.ones((height, width), np.uint8)
    mask[30:50, 40:70] = 0
    cv2.line(mask, (10, 80), (110, 70), 0, 5)
    return mask


def serve(inpainter: app.Inpainter, max_pixels: int | None = None) -> app.AppServer:
    server = app.AppServer(("127.0.0.1", 0), inpainter, max_pixels, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def call(server: app.AppServer, path: str, payload: object = None, raw: bytes | None = None):
    """(status, JSON answer) of a GET (no payload) or a POST of ``payload`` as JSON (or ``raw``)."""
    data = raw if raw is not None else None if payload is None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(server.url + path.lstrip("/"), data, headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture(scope="module")
def demo_server():
    """``python -m pconv_lib app --port 0``'s server: the demo model, loaded once."""
    args = cli.build_parser().parse_args(["app", "--port", "0"])
    server = app.make_server(args, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return photos.sample_photo("chelsea", (H, W))


def test_default_address_is_this_computer_only(demo_server):
    args = cli.build_parser().parse_args(["app"])
    assert (args.host, args.port, args.checkpoint) == ("127.0.0.1", app.DEFAULT_PORT, "demo")
    assert demo_server.server_address[0] == "127.0.0.1"
    assert demo_server.url.startswith("http://127.0.0.1:")


def test_page_info_and_samples(demo_server):
    with urllib.request.urlopen(demo_server.url, timeout=30) as answer:
        page = answer.read().decode()
    assert answer.headers["Content-Type"].startswith("text/html") and 'id="inpaint"' in page
    status, info = call(demo_server, "/api/info")
    assert status == 200 and "demo model" in info["model"] and info["max_pixels"] > 0
    status, samples = call(demo_server, "/api/samples")
    assert [s["name"] for s in samples["samples"]] == photos.sample_photo_names()
    status, sample = call(demo_server, "/api/sample?name=coffee")
    assert status == 200 and (sample["height"], sample["width"]) == (400, 600)
    assert np.array_equal(decode(sample["png"]), photos.sample_photo("coffee"))
    status, answer = call(demo_server, "/api/sample?name=nope")
    assert status == 400 and "unknown sample photo 'nope'" in answer["error"]


def test_page_makes_no_request_outside_the_app():
    page = app.page_html().decode()
    assert "https://" not in page and "http://" not in page  # works offline, nothing fetched elsewhere


def test_photo_upload_is_read_as_the_command_line_reads_it(demo_server, photo):
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    data = base64.b64encode(jpeg.tobytes()).decode()
    status, answer = call(demo_server, "/api/photo", {"name": "C:\\Users\\me\\cat.jpg", "data": data})
    assert status == 200 and (answer["height"], answer["width"]) == (H, W)
    expected = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.array_equal(decode(answer["png"]), expected)


def test_inpaint_fills_the_holes_and_keeps_every_valid_pixel(demo_server, photo):
    mask = hole_mask()
    status, answer = call(demo_server, "/api/inpaint", {"photo": png_b64(photo), "mask": png_b64(mask * 255)})
    assert status == 200, answer
    result, telea = decode(answer["result"]), decode(answer["telea"])
    assert result.shape == telea.shape == photo.shape and result.dtype == np.uint8
    assert np.array_equal(result[mask == 1], photo[mask == 1])
    assert np.array_equal(telea[mask == 1], photo[mask == 1])
    holes = mask == 0
    error = np.abs(result[holes].astype(int) - photo[holes]).mean()
    flat = np.abs(photo[holes].astype(int) - photo[mask == 1].mean(axis=0)).mean()
    assert error < 0.8 * flat  # filled from the surroundings: closer than the mean colour (22 vs 36)
    assert result[holes].std() > 5  # not one flat colour
    assert np.array_equal(decode(answer["mask"]), mask * 255)  # the mask to download: black = hole
    assert answer["model_seconds"] > 0 and answer["telea_seconds"] > 0
    assert answer["summary"].startswith(f"{W}x{H}, 10.7% holes") and "1 tiles of 128x128" in answer["summary"]


def test_inpaint_equals_the_command_line_predict(demo_server, photo, tmp_path):
    """One prediction path: the app's result is byte for byte what `predict` writes."""
    mask = hole_mask()
    cv2.imwrite(str(tmp_path / "in.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    masks.save_mask_png(mask, tmp_path / "mask.png")
    code = cli.main(["predict", "--checkpoint", "demo", "--image", str(tmp_path / "in.png"), "--mask",
                     str(tmp_path / "mask.png"), "-o", str(tmp_path / "out.png")])
    assert code == 0
    expected = cv2.cvtColor(cv2.imread(str(tmp_path / "out.png")), cv2.COLOR_BGR2RGB)
    status, answer = call(demo_server, "/api/inpaint", {"photo": png_b64(photo), "mask": png_b64(mask * 255)})
    assert status == 200 and np.array_equal(decode(answer["result"]), expected)


def test_wide_holes_take_the_multiscale_path_as_predict_does(demo_server):
    image = photos.sample_photo("coffee", (256, 384))
    mask = np.ones((256, 384), np.uint8)
    mask[80:180, 120:270] = 0
    status, answer = call(demo_server, "/api/inpaint", {"photo": png_b64(image), "mask": png_b64(mask * 255)})
    assert status == 200 and "multi-scale: coarse pass at 1/4" in answer["summary"]


def test_too_large_photo_gets_the_command_lines_message(demo_server, photo, tmp_path, capsys):
    limited = serve(demo_server.inpainter, max_pixels=1000)
    try:
        status, answer = call(limited, "/api/photo", {"name": "cat.png", "data": png_b64(photo)})
    finally:
        limited.shutdown()
        limited.server_close()
    cv2.imwrite(str(tmp_path / "cat.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    code = cli.main(["predict", "--checkpoint", "demo", "--image", str(tmp_path / "cat.png"),
                     "--max-pixels", "1000", "-o", str(tmp_path / "out.png")])
    cli_line = capsys.readouterr().err.strip().removeprefix("error: ")
    assert status == 400 and code == 2
    assert answer["error"] == cli_line.replace(str(tmp_path / "cat.png"), "cat.png")
    assert answer["error"].startswith(f"cat.png is {W}x{H} = {H * W} pixels, over the limit of 1000 pixels")


def test_masks_are_held_to_the_pixel_limit_before_decoding(demo_server, photo):
    limited = serve(demo_server.inpainter, max_pixels=1000)
    mask = png_b64(hole_mask() * 255)
    try:
        file_answer = call(limited, "/api/mask", {"name": "m.png", "data": mask, "width": W, "height": H})
        painted_answer = call(limited, "/api/inpaint", {"photo": png_b64(photo[:20, :20]), "mask": mask})
    finally:
        limited.shutdown()
        limited.server_close()
    over = f"is {W}x{H} = {H * W} pixels, over the limit of 1000 pixels"
    assert file_answer[0] == 400 and file_answer[1]["error"].startswith(f"m.png {over}")
    assert painted_answer[0] == 400 and painted_answer[1]["error"].startswith(f"painted-mask.png {over}")


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (b"hello, not a photo", "notes.txt", "notes.txt is not a readable image"),
        (b"", "empty.png", "empty.png: nothing was uploaded; choose a file"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "broken.png", "broken.png is not a readable image"),
    ],
)
def test_not_an_image_gets_one_line(demo_server, data, name, expected):
    status, answer = call(demo_server, "/api/photo", {"name": name, "data": base64.b64encode(data).decode()})
    assert status == 400 and answer["error"].startswith(expected) and "\n" not in answer["error"]
    assert "Traceback" not in answer["error"]


@pytest.mark.parametrize(
    ("mask_value", "expected"),
    [(255, "no holes to fill: paint over what should go"), (0, "every pixel is a hole, so there is nothing")],
)
def test_mask_without_holes_or_all_holes_is_refused(demo_server, photo, mask_value, expected):
    mask = np.full((H, W), mask_value, np.uint8)
    status, answer = call(demo_server, "/api/inpaint", {"photo": png_b64(photo), "mask": png_b64(mask)})
    assert status == 400 and answer["error"].startswith(expected)


def test_painted_mask_of_another_size_is_refused(demo_server, photo):
    mask = hole_mask(H // 2, W // 2) * 255
    status, answer = call(demo_server, "/api/inpaint", {"photo": png_b64(photo), "mask": png_b64(mask)})
    assert status == 400
    assert answer["error"].startswith(f"the mask is {W // 2}x{H // 2} but the photo is {W}x{H}")


def test_mask_file_is_fitted_to_the_photo(demo_server):
    small = hole_mask(H // 2, W // 2)
    status, answer = call(demo_server, "/api/mask",
                          {"name": "m.png", "data": png_b64(small * 255), "holes_are": "black", "width": W,
                           "height": H})
    assert status == 200 and "resized the mask 64x48 to the photo's 128x96" in answer["note"]
    assert np.array_equal(decode(answer["png"]), masks.resize_mask(small, (H, W)) * 255)
    white = {"name": "m.png", "data": png_b64(small * 255), "holes_are": "white"}
    status, answer = call(demo_server, "/api/mask", {**white, "width": W // 2, "height": H // 2})
    assert status == 200 and np.array_equal(decode(answer["png"]), (1 - small) * 255)
    assert answer["note"].startswith("m.png marks 86% of the photo as holes (white = hole)")
    assert answer["note"].endswith("set 'holes in file' to black")


@pytest.mark.parametrize(
    ("mask", "size", "expected"),
    [
        (hole_mask() * 255, (W, W), "m.png is 128x96 but the photo is 128x128: another aspect ratio"),
        (hole_mask().T.copy() * 255, (H, W), "it matches the photo turned by 90 degrees"),
        (hole_mask() * 128, (H, W), "m.png: mask is not binary"),
        (None, None, "load a photo before loading a mask"),
    ],
)
def test_bad_mask_files_get_one_line(demo_server, mask, size, expected):
    payload = {"name": "m.png", "data": png_b64(mask if mask is not None else hole_mask() * 255),
               "holes_are": "black"}
    if size is not None:
        payload.update(height=size[0], width=size[1])
    status, answer = call(demo_server, "/api/mask", payload)
    assert status == 400 and expected in answer["error"]


def test_malformed_requests_get_one_line(demo_server, monkeypatch):
    assert call(demo_server, "/api/inpaint", raw=b"{not json") == (400, {"error": "the request is not JSON; "
                                                                         "reload the page"})
    status, answer = call(demo_server, "/api/photo", {"name": "a.png", "data": "%%%"})
    assert status == 400 and "not valid base64" in answer["error"]
    status, answer = call(demo_server, "/api/nothing", {})
    assert status == 404 and "no API /api/nothing" in answer["error"]
    monkeypatch.setattr(app, "MAX_BODY_BYTES", 2**20)
    # refused from the Content-Length header, before the body is sent (nothing is read)
    connection = http.client.HTTPConnection(*demo_server.server_address[:2], timeout=30)
    connection.putrequest("POST", "/api/photo")
    connection.putheader("Content-Length", str(2 * 2**20))
    connection.putheader("Content-Type", "application/json")
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 400
    assert json.load(answer)["error"].startswith("the upload is 2 MB, over the app's limit of 1 MB")
    connection.close()


class Gate(torch.nn.Module):
    """A stand-in model that waits until released (returns its input: holes come back grey-zero)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.entered.set()
        assert self.release.wait(60)
        return image


def test_second_inpaint_while_one_runs_is_refused_then_works(photo):
    gate = Gate()
    server = serve(app.Inpainter(gate, image_size=32, depth=3, name="gate"))
    payload = {"photo": png_b64(photo), "mask": png_b64(hole_mask() * 255)}
    first: list = []
    try:
        worker = threading.Thread(target=lambda: first.append(call(server, "/api/inpaint", payload)))
        worker.start()
        assert gate.entered.wait(60)
        status, answer = call(server, "/api/inpaint", payload)
        assert status == 409 and answer["busy"]
        assert answer["error"].startswith("busy: another inpaint is running")
        assert call(server, "/api/info")[0] == 200  # the server still answers everything else
        gate.release.set()
        worker.join(60)
        assert first[0][0] == 200
        assert call(server, "/api/inpaint", payload)[0] == 200  # free again
    finally:
        gate.release.set()
        server.shutdown()
        server.server_close()


def test_a_bug_gives_one_line_not_a_traceback(photo, capsys):
    def broken(image, mask):
        raise ZeroDivisionError("division by zero")

    server = serve(app.Inpainter(broken, image_size=32, depth=3, name="broken"))
    try:
        payload = {"photo": png_b64(photo), "mask": png_b64(hole_mask() * 255)}
        status, answer = call(server, "/api/inpaint", payload)
    finally:
        server.shutdown()
        server.server_close()
    assert status == 500 and answer["error"].startswith("unexpected ZeroDivisionError: division by zero")
    assert "this is a bug" in answer["error"] and "Traceback" not in answer["error"]
    assert "Traceback" in capsys.readouterr().err  # in the terminal, for the report


def test_command_line_refuses_bad_flags_in_one_line(capsys, demo_server):
    assert cli.main(["app", "--port", "70000"]) == 2
    assert capsys.readouterr().err.strip() == "error: --port must be 0..65535, got 70000"
    assert cli.main(["app", "--checkpoint", "no_such.pt"]) == 2
    assert capsys.readouterr().err.strip() == "error: checkpoint not found: no_such.pt"
    port = demo_server.server_address[1]
    assert cli.main(["app", "--port", str(port)]) == 2  # the address is taken
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot serve on 127.0.0.1:{port} (") and "choose another --port" in err


def test_same_aspect_ratio_rule():
    assert masks.same_aspect_ratio((48, 64), (96, 128))
    assert masks.same_aspect_ratio((100, 133), (300, 400))  # one mask pixel of rounding
    assert not masks.same_aspect_ratio((64, 48), (96, 128))
    assert not masks.same_aspect_ratio((100, 100), (300, 400))


def test_read_mask_refuses_bad_holes_are():
    with pytest.raises(BadValue, match="holes_are must be 'black' or 'white'"):
        app.read_mask(cv2.imencode(".png", hole_mask() * 255)[1].tobytes(), "m.png", "grey", H, W)


def test_the_page_ships_as_package_data():
    """pip install (not only -e) must carry the page (app.page_html reads it as package data)."""
    root = Path(app.__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(Path("app_page.html").match(p) for p in patterns["pconv_lib.app"])
    assert app.page_html() == (root / "pconv_lib" / "app" / "app_page.html").read_bytes()


def test_warm_up_goes_through_the_request_path_and_frees_the_model(demo_server, photo):
    assert demo_server.inpainter.warm_up() > 0
    payload = {"photo": png_b64(photo), "mask": png_b64(hole_mask() * 255)}
    status, answer = call(demo_server, "/api/inpaint", payload)
    assert status == 200, answer


def test_requests_from_other_sites_are_refused(demo_server):
    """A page of another site can make the browser send a form (no CORS question asked) or point a
    name of its own at 127.0.0.1 (DNS rebinding): neither reaches the model."""
    form = urllib.request.Request(demo_server.url + "api/inpaint", b"photo=x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(form, timeout=30)
    assert refused.value.code == 415 and "send JSON" in json.load(refused.value)["error"]
    rebound = urllib.request.Request(demo_server.url + "api/info", headers={"Host": "evil.example:8765"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(rebound, timeout=30)
    assert refused.value.code == 403 and "answers http://127.0.0.1 only" in json.load(refused.value)["error"]
