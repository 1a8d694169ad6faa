"""The review page: API safety rules with a real app, and a real browser (Debian's Chromium
driven by Playwright) drawing, saving, reloading, and a resumed run applying the mark."""

import json
import re
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from conftest import tiny_config
from starlette.testclient import TestClient

from hkd.imil.masks import decode_mask
from hkd.review.app import create_app
from hkd.run.experiment import run_experiment

QUEUE = ["imil.enabled=true", "imil.oracle=queue", "imil.start_epoch=0", "imil.every_n_epochs=1",
         "imil.budget=0.1", "trainer.max_epochs=3", "augment.policy=none"]


@pytest.fixture
def pending_run(tmp_path):
    run_dir = run_experiment(tiny_config(tmp_path, *QUEUE))
    assert (run_dir / "imil" / "round_1" / "manifest.json").is_file()
    return run_dir


@pytest.fixture
def client(pending_run):
    return TestClient(create_app(pending_run), base_url="http://127.0.0.1")


def _first(client):
    return client.get("/api/rounds/1").json()["samples"][0]


def test_rounds_and_sample_files_are_served(client):
    assert "IMIL review" in client.get("/").text
    rounds = client.get("/api/rounds").json()["rounds"]
    assert rounds == [{"round": 1, "epoch": 0, "kind": "outliers", "closed": None, "total": 4, "done": 0}]
    sample = _first(client)
    image = client.get(f"/api/rounds/1/samples/{sample['id']}/image")
    assert image.status_code == 200 and image.content[:4] == b"\x89PNG"


@pytest.mark.parametrize("path", [
    "/api/rounds/1/samples/..%2F..%2Fconfig.yaml/image",
    "/api/rounds/1/samples/s000/..%2F..%2Fconfig.yaml",
    "/api/rounds/..%2F..%2F/samples/s000/image",
    "/api/rounds/9/samples/s000/image",
    "/api/rounds/1/samples/nope/image",
    "/static/..%2F..%2F..%2Fconfig.py",
])
def test_nothing_outside_the_round_can_be_read(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert b"run_dir" not in response.content and b"seed" not in response.content


def test_marks_are_validated_and_saved_atomically(client, pending_run):
    sample = _first(client)
    url = f"/api/rounds/1/samples/{sample['id']}/marks"
    w, h = sample["width"], sample["height"]
    good = {"status": "marked", "regions": [{"type": "rect", "x": 1, "y": 1, "w": 10, "h": 10}], "version": 0}
    bad_requests = [
        (b"{not json", 400), (b"[1, 2]", 400),
        (json.dumps({**good, "regions": [{"type": "rect", "x": w - 2, "y": 0, "w": 30, "h": 5}]}), 422),
        (json.dumps({**good, "regions": [{"type": "rect", "x": 0, "y": 0, "w": -3, "h": 5}]}), 422),
        (json.dumps({**good, "regions": [{"type": "stroke", "points": [[w * 3, 1]], "width": 5}]}), 422),
        (json.dumps({**good, "regions": [{"type": "circle"}]}), 422),
        (json.dumps({**good, "status": "maybe"}), 422),
        (b"{" + b" " * (3 * 1024 * 1024) + b"}", 413),
    ]
    for body, status in bad_requests:
        response = client.put(url, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == status, (body[:80], response.text)
        assert "error" in response.json()
    assert not (pending_run / "imil" / "round_1" / "marks.json").exists()  # nothing half-written
    assert client.put("/api/rounds/1/samples/zzz/marks", json=good).status_code == 404
    saved = client.put(url, json=good)
    assert saved.status_code == 200 and saved.json()["version"] == 1
    stale = client.put(url, json={**good, "regions": []})  # another tab, still at version 0
    assert stale.status_code == 409 and "reload" in stale.json()["error"]
    marks = json.loads((pending_run / "imil" / "round_1" / "marks.json").read_text())
    assert marks["samples"][sample["id"]]["regions"][0]["w"] == 10
    assert client.get("/api/rounds").json()["rounds"][0]["done"] == 1
    coco = client.get("/api/rounds/1/coco").json()
    assert coco["annotations"][0]["bbox"] == [1, 1, 10, 10]
    assert {"x": w, "y": h} and (pending_run / "imil" / "round_1" / sample["image"]).is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_browser_draw_save_reload_and_resume_applies_the_mark(pending_run, tmp_path):
    import uvicorn
    from playwright.sync_api import expect, sync_playwright

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(pending_run, token="browser-token"), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            console = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(f"http://127.0.0.1:{port}/?token=browser-token")  # as `hkd review` prints it
            page.wait_for_selector("#queue button")
            assert page.url == f"http://127.0.0.1:{port}/"  # the token left the address bar
            assert "0 / 4 done" in page.text_content("#progress")
            page.fill("#who", "dr. test")
            box = page.locator("#canvas").bounding_box()
            page.mouse.move(box["x"] + 0.05 * box["width"], box["y"] + 0.05 * box["height"])
            page.mouse.down()
            page.mouse.move(box["x"] + 0.4 * box["width"], box["y"] + 0.4 * box["height"], steps=5)
            page.mouse.up()
            page.click("#save")
            # locator assertions, not wait_for_function: the page's CSP forbids eval in its world
            expect(page.locator("#progress")).to_have_text(re.compile(r"^1 /"))
            page.screenshot(path=str(tmp_path / "review.png"))
            page.reload()
            page.wait_for_selector("#queue button.marked")
            page.click("#queue button.marked")
            expect(page.locator("#status")).to_contain_text("marked")
            assert "1 regions" in page.text_content("#status")
            assert "dr. test" in page.text_content("#status")
            browser.close()
            assert not [m for m in console if "Content Security Policy" in m]  # the page obeys its CSP
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    marks = json.loads((pending_run / "imil" / "round_1" / "marks.json").read_text())
    (sample_id, mark), = marks["samples"].items()
    rect = mark["regions"][0]
    manifest = json.loads((pending_run / "imil" / "round_1" / "manifest.json").read_text())
    sample = next(s for s in manifest["samples"] if s["id"] == sample_id)
    assert rect["x"] < 0.1 * sample["width"] and rect["w"] > 0.25 * sample["width"]
    resume = [f"resume={pending_run}"]
    run_experiment(tiny_config(tmp_path, *QUEUE, *resume), resume)
    edits = json.loads((pending_run / "imil" / "edits.json").read_text())
    applied = {e["idx"]: e for e in edits["edits"]}
    assert applied[sample["idx"]]["source"] == "clinician"
    mask = decode_mask(applied[sample["idx"]]["mask"])
    size = mask.shape[0]
    assert mask[int(0.12 * size):int(0.3 * size), int(0.12 * size):int(0.3 * size)].all()
    assert not mask[int(0.5 * size):, :].any() and np.mean(mask) < 0.25


FULL_DISK_SCRIPT = """
import json, resource, signal, sys
from pathlib import Path
import torch
from starlette.testclient import TestClient
from hkd.run.checkpoints import AtomicCheckpointIO
from hkd.review.app import create_app

run_dir = Path(sys.argv[1])
client = TestClient(create_app(run_dir), base_url="http://127.0.0.1")
sample = client.get("/api/rounds/1").json()["samples"][0]
url = f"/api/rounds/1/samples/{sample['id']}/marks"
rect = {"type": "rect", "x": 1, "y": 1, "w": 4, "h": 4}
first = client.put(url, json={"status": "marked", "regions": [rect]})
checkpoint = run_dir / "checkpoints" / "last.ckpt"
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))  # the disk is now full
strokes = [{"type": "stroke", "points": [[2, 2], [3, 3]] * 20, "width": 3} for _ in range(40)]
second = client.put(url, json={"status": "marked", "regions": strokes, "comment": "x" * 1500, "version": 1})
try:
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(100_000)}}, checkpoint)
    saved = "saved"
except OSError as error:
    saved = str(error)
print(json.dumps({"first": first.status_code, "second": second.status_code,
                  "error": second.json().get("error"), "checkpoint": saved}))
"""


def test_full_disk_keeps_marks_and_checkpoints_and_says_so(pending_run):
    """A real write limit (RLIMIT_FSIZE) in a separate process: saving marks and a checkpoint fail
    with a clear message, and the previous files stay intact."""
    import subprocess
    import sys

    checkpoint = pending_run / "checkpoints" / "last.ckpt"
    checkpoint_before = checkpoint.read_bytes()
    result = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, str(pending_run)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["first"] == 200 and outcome["second"] == 507
    assert "could not write" in outcome["error"] and "unchanged" in outcome["error"]
    assert "could not write" in outcome["checkpoint"] and "unchanged" in outcome["checkpoint"]
    marks = json.loads((pending_run / "imil" / "round_1" / "marks.json").read_text())
    (saved,) = marks["samples"].values()
    assert saved["version"] == 1 and saved["regions"][0]["type"] == "rect"  # the first save survived
    assert checkpoint.read_bytes() == checkpoint_before
    leftovers = list(pending_run.rglob(".*.tmp"))
    assert not leftovers


def test_brush_marks_round_trip_through_coco_rle_into_a_data_set(client, pending_run, tmp_path):
    """draw -> save -> export COCO (RLE) -> load as a data set's annotations -> the same mask; and
    the same file read back as a round's marks_coco.json."""
    import shutil as copying

    from hkd.data.decode import rasterize
    from hkd.data.formats.folder import read_folder
    from hkd.data.rle import decode
    from hkd.imil.queue import draw_marks, rasterize_marks, read_marks

    sample = _first(client)
    w, h = sample["width"], sample["height"]
    regions = [{"type": "rect", "x": 2, "y": 3, "w": 12, "h": 9},
               {"type": "stroke", "points": [[18, 14], [26, 22], [30, 24]], "width": 5},
               {"type": "rect", "x": 4, "y": 4, "w": 3, "h": 3, "erase": True}]
    url = f"/api/rounds/1/samples/{sample['id']}/marks"
    assert client.put(url, json={"status": "marked", "regions": regions}).status_code == 200
    coco = client.get("/api/rounds/1/coco").json()
    (annotation,) = coco["annotations"]
    drawn = np.asarray(draw_marks(regions, w, h)) > 0
    assert np.array_equal(decode(annotation["segmentation"]), drawn)  # brush strokes and erasers kept
    root = tmp_path / "reviewed"
    root.mkdir()
    copying.copy(pending_run / "imil" / "round_1" / sample["image"], root / sample["image"])
    (root / "labels.csv").write_text(f"image,label\n{sample['image']},{sample['label']}\n")
    (root / "annotations.json").write_text(json.dumps(coco))
    (record,) = read_folder(root)
    assert record.irrelevant[0].rle is not None
    expected = rasterize_marks(regions, w, h, 32)
    assert np.array_equal(rasterize(record.irrelevant, w, h, 32) > 0, expected)
    folder = pending_run / "imil" / "round_1"
    (folder / "marks_coco.json").write_text(json.dumps(coco))  # as a clinician's own tool would
    (taken,) = read_marks(folder, 32)  # the COCO file's mark of the sample replaces the page's
    assert np.array_equal(taken.mask, expected) and taken.mark["source"] == "coco"
    assert taken.sample["id"] == sample["id"] and taken.sample["file"].endswith(".png")
