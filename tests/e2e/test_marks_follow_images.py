"""A clinician's mark lands on the image it was drawn on, or nowhere: an IMIL run stopped at a
review round on a folder data set, a mark saved through the page, then between the stop and
`resume=` the data set changes (rows reordered, the image replaced or deleted, a split changed),
and training is killed with `kill -9` after it took the round's marks."""

import csv
import json
import logging
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, make_folder_dataset, tiny_config, write_png
from starlette.testclient import TestClient

from hkd.errors import InputError
from hkd.imil.marks_store import MarksStore
from hkd.review.app import create_app
from hkd.run.experiment import run_experiment

RECT = {"type": "rect", "x": 2, "y": 2, "w": 12, "h": 12}


def queue(data) -> list[str]:
    return ["data.format=folder", f"data.root={data}", "data.image_size=32", "imil.enabled=true",
            "imil.oracle=queue", "imil.start_epoch=0", "imil.budget=0.2", "imil.rounds=1",
            "trainer.max_epochs=6", "augment.policy=none"]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A run waiting at round 1, with one sample marked through the review page."""
    tmp = tmp_path_factory.mktemp("marks")
    data = make_folder_dataset(tmp / "data", n_per_class=10, classes=("a", "b", "c"), size=56,
                               with_split=True)
    run_dir = run_experiment(tiny_config(tmp, *queue(data)))
    client = TestClient(create_app(run_dir), base_url="http://127.0.0.1")
    sample = client.get("/api/rounds/1").json()["samples"][0]
    answer = client.put(f"/api/rounds/1/samples/{sample['id']}/marks",
                        json={"status": "marked", "regions": [RECT], "who": "dr. rows", "version": 0})
    assert answer.status_code == 200
    return run_dir, data, sample


def copy_of(stopped, tmp_path):
    run_dir, data, sample = stopped
    run, copy = tmp_path / "run", tmp_path / "data"
    shutil.copytree(run_dir, run)
    shutil.copytree(data, copy)
    return run, copy, sample


def resume(run, data, *overrides):
    arguments = [f"resume={run}", f"data.root={data}", f"data.cache_dir={run.parent / 'cache'}", *overrides]
    return run_experiment(tiny_config(run.parent, *arguments), arguments)


def rows(data) -> list[dict]:
    with open(data / "labels.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(data, table: list[dict]) -> None:
    with open(data / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)


def edit_of(run, name: str) -> dict | None:
    edits = json.loads((run / "imil" / "edits.json").read_text())["edits"]
    found = [e for e in edits if e.get("image") == name]
    assert len(found) <= 1
    return found[0] if found else None


def test_rows_reordered_the_mark_follows_its_image_and_the_round_is_closed(stopped, tmp_path):
    run, data, sample = copy_of(stopped, tmp_path)
    table = rows(data)
    write_rows(data, table[::-1])  # the same images and labels, exported in another order
    resume(run, data)
    edit = edit_of(run, sample["file"])
    new_row = [r["image"] for r in table[::-1]].index(f"img/{sample['file']}")
    assert new_row != sample["idx"]  # it did move
    assert edit["idx"] == new_row and edit["source"] == "clinician" and edit["who"] == "dr. rows"
    assert edit["sha256"] == sample["sha256"]
    changes = (run / "data_changes.jsonl").read_text()
    assert "images are in other rows" in changes
    client = TestClient(create_app(run), base_url="http://127.0.0.1")
    (round_1,) = [r for r in client.get("/api/rounds").json()["rounds"] if r["round"] == 1]
    assert round_1["closed"]
    late = client.put(f"/api/rounds/1/samples/{sample['id']}/marks",
                      json={"status": "not_an_error", "who": "dr. late", "version": 1})
    assert late.status_code == 409 and f"closed at {round_1['closed']}" in late.json()["error"]
    assert MarksStore(run / "imil" / "round_1").latest()[sample["id"]]["who"] == "dr. rows"  # not replaced
    coco = client.get("/api/rounds/1/coco").json()  # a clinician's own tool drops marks in too late
    (run / "imil" / "round_1" / "marks_coco.json").write_text(json.dumps(coco))
    with pytest.raises(InputError, match=r"marks_coco.json changed after round 1 was closed at .*never"):
        resume(run, data, "trainer.max_epochs=7")


def test_a_replaced_image_is_a_named_error_or_its_mark_is_dropped_when_asked(stopped, tmp_path, caplog):
    run, data, sample = copy_of(stopped, tmp_path)
    write_png(data / "img" / sample["file"], np.full((56, 56), 7, np.uint8))  # another image, same name
    with pytest.raises(InputError, match=rf"{sample['file']} was replaced.*imil.changed_images=drop"):
        resume(run, data)
    with caplog.at_level(logging.WARNING):
        resume(run, data, "imil.changed_images=drop")
    assert edit_of(run, sample["file"]) is None
    assert any(sample["file"] in message and "dropping" in message for message in caplog.messages)


def test_a_deleted_image_is_a_named_error(stopped, tmp_path):
    run, data, sample = copy_of(stopped, tmp_path)
    write_rows(data, [r for r in rows(data) if r["image"] != f"img/{sample['file']}"])
    (data / "img" / sample["file"]).unlink()
    with pytest.raises(InputError, match=rf"{sample['file']} is no longer in the data set"):
        resume(run, data)


def test_a_changed_split_is_refused_unless_allowed(stopped, tmp_path):
    run, data, _ = copy_of(stopped, tmp_path)
    table = rows(data)
    moved = next(r for r in table if r["split"] == "test")
    moved["split"] = "train"
    write_rows(data, table)
    with pytest.raises(InputError, match=r"another split.*test -> train.*data.allow_split_change=true"):
        resume(run, data)
    resume(run, data, "data.allow_split_change=true")
    assert "1 images in another split" in (run / "data_changes.jsonl").read_text()


def test_training_killed_after_taking_the_marks_takes_the_same_marks_again(stopped, tmp_path):
    run, data, sample = copy_of(stopped, tmp_path)
    store = MarksStore(run / "imil" / "round_1")
    process = subprocess.Popen([sys.executable, "-m", "hkd", "train", "quickstart", f"resume={run}",
                                f"data.root={data}", f"data.cache_dir={tmp_path / 'cache'}"], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while store.closure() is None and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # mid-round: the marks are taken, the epoch not trained
    assert process.wait(timeout=30) == -signal.SIGKILL
    closed = store.closure()
    assert closed is not None and sample["id"] in closed["taken"]
    resume(run, data)
    assert edit_of(run, sample["file"])["who"] == "dr. rows"
    assert store.closure() == closed  # closed once; the second run took what the first took
    summary = json.loads((run / "summary.json").read_text())
    assert summary["imil_rounds"][0]["closed_at"] == closed["when"]
