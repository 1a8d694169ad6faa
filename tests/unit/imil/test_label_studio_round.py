"""An IMIL round through Label Studio: `hkd label-studio export` writes tasks with the prediction and
the Grad-CAM as pre-annotations, `hkd label-studio import` turns a completed export into the
round's marks, which read_marks (what training takes) reads."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
from PIL import Image

from hkd.cli import main
from hkd.data import ls_rle
from hkd.errors import InputError
from hkd.imil.label_studio_round import import_round
from hkd.imil.marks_store import MarksStore
from hkd.imil.pictures import heatmap
from hkd.imil.queue import read_marks, round_dir, write_round

WIDTH, HEIGHT = 40, 30


def hot_square(top: int, left: int) -> Image.Image:
    cam = np.full((HEIGHT, WIDTH), 40, np.uint8)
    cam[top:top + 10, left:left + 10] = 230
    return heatmap(Image.fromarray(cam))


@pytest.fixture
def run_dir(tmp_path):
    pairs = (("viral", "bacterial"), ("covid19", "viral"), ("fungal", "viral"))
    samples = [{"idx": i, "file": f"img{i}.png", "sha256": f"{i:064x}", "label": label,
                "prediction": predicted, "confidence": 0.8, "image": Image.new("L", (WIDTH, HEIGHT), 100),
                "cam": hot_square(5, 5 + 10 * i)} for i, (label, predicted) in enumerate(pairs)]
    write_round(round_dir(tmp_path, 1), 1, epoch=2, samples=samples)
    return tmp_path


def test_export_writes_tasks_with_the_prediction_and_the_model_attention(run_dir, capsys):
    assert main(["label-studio", "export", str(run_dir)]) == 0
    folder = round_dir(run_dir, 1)
    tasks = json.loads((folder / "label_studio_tasks.json").read_text())
    expected_images = [f"/data/local-files/?d=imil/round_1/s00{i}.png" for i in range(3)]
    assert [t["data"]["image"] for t in tasks] == expected_images
    for position, task in enumerate(tasks):
        choices, attention = task["predictions"][0]["result"]
        assert choices["value"]["choices"] == [task["data"]["prediction"]]
        painted = ls_rle.decode(attention["value"]["rle"], HEIGHT, WIDTH, "attention")
        expected = np.zeros((HEIGHT, WIDTH), bool)
        expected[5:15, 5 + 10 * position:15 + 10 * position] = True
        assert (painted == expected).all()  # where the Grad-CAM is high, and only there
    config = ElementTree.fromstring((folder / "label_studio_config.xml").read_text())
    assert [c.get("value") for c in config.iter("Choice")] == ["bacterial", "covid19", "fungal", "viral"]
    assert {b.get("name") for b in config.iter("BrushLabels")} == {"marks", "attention"}


def completed(run_dir) -> list:
    """The exported tasks as a clinician completes them in Label Studio."""
    main(["label-studio", "export", str(run_dir)])
    tasks = json.loads((round_dir(run_dir, 1) / "label_studio_tasks.json").read_text())
    right_half = np.zeros((HEIGHT, WIDTH), bool)
    right_half[:, WIDTH // 2:] = True
    size = {"original_width": WIDTH, "original_height": HEIGHT, "to_name": "image"}
    box = {"type": "rectanglelabels", "from_name": "marks_box", **size,
           "value": {"x": 0, "y": 0, "width": 50, "height": 50, "rotation": 0,
                     "rectanglelabels": ["irrelevant"]}}
    brush = {"type": "brushlabels", "from_name": "marks", **size,
             "value": {"format": "rle", "rle": ls_rle.encode(right_half), "brushlabels": ["irrelevant"]}}
    kept_attention = tasks[1]["predictions"][0]["result"][1]  # accepted as is: not a mark
    for number, (task, results, cancelled) in enumerate(zip(tasks, ([box], [brush, kept_attention], [box]),
                                                            (False, False, True)), 1):
        annotation = {"id": 10 + number, "was_cancelled": cancelled, "result": results}
        task |= {"id": number, "annotations": [annotation]}
    return tasks


def test_a_completed_export_becomes_the_rounds_marks(run_dir, tmp_path):
    export = tmp_path / "export.json"
    export.write_text(json.dumps(completed(run_dir)))
    assert main(["label-studio", "import", str(run_dir), str(export)]) == 0
    taken = {mark.sample["id"]: mark.mask for mark in read_marks(round_dir(run_dir, 1), size=20)}
    assert set(taken) == {"s000", "s001"}  # the cancelled annotation is not a mark
    assert taken["s000"][:9, :9].all() and not taken["s000"][11:].any() and not taken["s000"][:, 11:].any()
    assert taken["s001"][:, 11:].all() and not taken["s001"][:, :9].any()  # the attention brush left out


def test_an_import_from_another_round_or_into_a_closed_one_is_refused(run_dir, tmp_path):
    tasks = completed(run_dir)
    tasks[2]["data"]["sample_id"] = "s999"
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    with pytest.raises(InputError, match=r"export.json task 3: its sample_id 's999' is not in round_1"):
        import_round(round_dir(run_dir, 1), export)
    export.write_text(json.dumps(completed(run_dir)))
    MarksStore(round_dir(run_dir, 1)).close()
    with pytest.raises(InputError, match="training closed this round at .* marks imported now would never"):
        import_round(round_dir(run_dir, 1), export)
    assert not (round_dir(run_dir, 1) / "marks_coco.json").exists()
