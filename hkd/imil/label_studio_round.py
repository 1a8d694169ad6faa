"""An IMIL review round in Label Studio: ``hkd label-studio export`` writes the round's samples as
Label Studio tasks (``label_studio_tasks.json``, with the model's prediction and where its Grad-CAM
is high as pre-annotations) and the project's labeling configuration (``label_studio_config.xml``);
``hkd label-studio import`` reads the clinician's completed export (Export -> JSON) back as the
round's ``marks_coco.json``, which training takes on ``resume=`` as it takes any tool's marks.
Only regions labelled ``irrelevant`` are marks; the ``model attention`` pre-annotation is not one
unless the clinician relabels it."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

from PIL import Image

from hkd.atomic import atomic_write_json, atomic_write_text
from hkd.data import ls_rle
from hkd.data.formats.folder import IRRELEVANT_CATEGORY, read_json
from hkd.data.label_studio import to_coco
from hkd.errors import InputError
from hkd.imil.marks_store import MarksStore
from hkd.imil.pictures import heatmap_values
from hkd.imil.queue import MARKS_COCO, read_manifest, round_dir, round_numbers

TASKS = "label_studio_tasks.json"
CONFIG = "label_studio_config.xml"
ATTENTION = "model attention"
ATTENTION_LEVEL = 0.5  # the Grad-CAM (0..1 over the image) at and above which a pixel is pre-annotated


def labeling_config(classes: list[str]) -> str:
    """Label Studio's labeling configuration for a round: marks as brush, box or polygon, the
    model's attention as a brush pre-annotation, its prediction as a choice."""
    choices = "".join(f"<Choice value={quoteattr(name)}/>" for name in classes)
    marks = f'<Label value="{IRRELEVANT_CATEGORY}" background="red"/>'
    return f"""<View>
  <Header value="$label: the model predicted $prediction ($confidence)"/>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="marks" toName="image">{marks}</BrushLabels>
  <RectangleLabels name="marks_box" toName="image">{marks}</RectangleLabels>
  <PolygonLabels name="marks_outline" toName="image">{marks}</PolygonLabels>
  <BrushLabels name="attention" toName="image"><Label value="{ATTENTION}" background="yellow"/></BrushLabels>
  <Choices name="prediction" toName="image" choice="single" showInline="true">{choices}</Choices>
</View>
"""


def sample_task(folder: Path, number: int, sample: dict, image_url: str) -> dict:
    cam = heatmap_values(Image.open(folder / sample["cam"]))
    size = {"original_width": sample["width"], "original_height": sample["height"], "to_name": "image"}
    painted = ls_rle.encode(cam >= ATTENTION_LEVEL)
    attention = {"type": "brushlabels", "from_name": "attention", **size,
                 "value": {"format": "rle", "rle": painted, "brushlabels": [ATTENTION]}}
    prediction = {"type": "choices", "from_name": "prediction", "to_name": "image",
                  "value": {"choices": [sample["prediction"]]}}
    return {"data": {"image": f"{image_url.rstrip('/')}/{sample['image']}", "sample_id": sample["id"],
                     "label": sample["label"], "prediction": sample["prediction"],
                     "confidence": f"{100 * sample['confidence']:.0f} %"},
            "predictions": [{"model_version": f"hkd IMIL round {number}", "score": sample["confidence"],
                             "result": [prediction, attention]}]}


def export_round(folder: Path, image_url: str | None = None) -> tuple[Path, Path]:
    """``label_studio_tasks.json`` and ``label_studio_config.xml`` in the round's folder; each
    task's image is ``IMAGE_URL/<sample image>`` (default: Label Studio's local-files storage with
    the run directory as its document root)."""
    manifest = read_manifest(folder)
    number = int(manifest["round"])
    url = image_url or f"/data/local-files/?d=imil/{folder.name}"
    tasks = [sample_task(folder, number, sample, url) for sample in manifest["samples"]]
    classes = sorted({s[key] for s in manifest["samples"] for key in ("label", "prediction")})
    return (atomic_write_json(folder / TASKS, tasks),
            atomic_write_text(folder / CONFIG, labeling_config(classes)))


def import_round(folder: Path, export: Path) -> Path:
    """The completed export's ``irrelevant`` regions as the round's ``marks_coco.json`` (refused
    once training has closed the round: it would never take them)."""
    closure = MarksStore(folder).closure()
    if closure:
        raise InputError(f"{folder}: training closed this round at {closure['when']} and took its "
                         "marks; marks imported now would never be used")
    tasks = read_json(export)
    coco = to_coco(tasks, str(export))
    samples = {s["id"]: s for s in read_manifest(folder)["samples"]}
    for number, (task, image) in enumerate(zip(tasks, coco["images"])):
        sample_id = (task.get("data") or {}).get("sample_id")
        if sample_id not in samples:
            raise InputError(f"{export} task {task.get('id', number)}: its sample_id {sample_id!r} is "
                             f"not in {folder.name} (export the round with hkd label-studio export)")
        image["file_name"] = samples[sample_id]["image"]
    irrelevant = {c["id"] for c in coco["categories"] if c["name"] == IRRELEVANT_CATEGORY}
    coco["annotations"] = [a for a in coco["annotations"] if a["category_id"] in irrelevant]
    coco["categories"] = [c for c in coco["categories"] if c["id"] in irrelevant]
    return atomic_write_json(folder / MARKS_COCO, coco)


def round_folder(run_dir: Path, number: int | None) -> Path:
    """Round ``number`` of a run, or its latest."""
    numbers = round_numbers(run_dir)
    if not numbers:
        raise InputError(f"{run_dir}: no IMIL rounds (imil/round_N/manifest.json) to review")
    if number is None:
        return round_dir(run_dir, numbers[-1])
    if number not in numbers:
        raise InputError(f"{run_dir}: no round {number} (it has {', '.join(f'round_{n}' for n in numbers)})")
    return round_dir(run_dir, number)
