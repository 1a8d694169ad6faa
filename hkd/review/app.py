"""The clinician's review page for IMIL rounds: a small Starlette app over ``RUN_DIR/imil/``.

Samples are addressed by round number and sample id from the round's manifest, never by path, so
nothing outside the run's ``imil/`` folder can be read or written. Marks are validated (geometry
inside the image, sizes bounded) and saved in the round's database (``hkd.imil.marks_store``),
versioned per sample: a save based on an outdated version gets 409 instead of silently overwriting
another tab's, page's or process's work, and a save to a round training has closed gets 409 naming
when. Every accepted change is appended to the round's ``audit.jsonl``. Who may ask at all:
``hkd.review.security``.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hkd.atomic import append_json_line
from hkd.data.rle import bbox as rle_bbox
from hkd.errors import InputError
from hkd.imil.marks_store import ConflictError, MarksStore, RoundClosedError
from hkd.imil.queue import marks_rle, read_manifest, round_numbers, validate_regions
from hkd.review.security import LOOPBACK, ReviewGuard

STATIC = Path(__file__).parent / "static"
MAX_BODY = 2 * 1024 * 1024
STATUSES = ("marked", "skipped", "not_an_error", "accepted")  # accepted: a propagated proposal
AUDIT = "audit.jsonl"  # every accepted change of a round's marks, one JSON line each
WILDCARD = ("0.0.0.0", "::")  # listen on every interface: clients' names come from --allow-host


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class ReviewStore:
    """Reads rounds and writes marks under ``RUN_DIR/imil`` only."""

    def __init__(self, run_dir: str | Path) -> None:
        self.imil = Path(run_dir).resolve() / "imil"
        if not self.imil.is_dir():
            raise FileNotFoundError(f"{run_dir} has no imil/ folder: run with imil.oracle=queue first")

    def rounds(self) -> list[int]:
        return round_numbers(self.imil.parent)

    def folder(self, number: int) -> Path:
        if number not in self.rounds():
            raise KeyError(f"no IMIL round {number}")
        return self.imil / f"round_{number}"

    def manifest(self, number: int) -> dict:
        return read_manifest(self.folder(number))

    def sample(self, number: int, sample_id: str) -> dict:
        for sample in self.manifest(number)["samples"]:
            if sample["id"] == sample_id:
                return sample
        raise KeyError(f"round {number} has no sample '{sample_id}'")

    def marks(self, number: int) -> dict:
        """``{"samples": {id: latest mark}, "closed": when training took them, or None}``."""
        store = MarksStore(self.folder(number))
        closure = store.closure()
        return {"samples": store.latest(), "closed": closure["when"] if closure else None}

    def save_mark(self, number: int, sample_id: str, body: dict, client: str = "") -> dict:
        """Validate and save a sample's marks, and append the change to the round's audit trail
        (``audit.jsonl``); if either write fails, the saved marks do not change."""
        sample = self.sample(number, sample_id)
        status = body.get("status")
        if status not in STATUSES:
            raise InputError(f"'status' must be one of {', '.join(STATUSES)}")
        where = f"round {number} sample {sample_id}"
        regions = validate_regions(body.get("regions", []), sample["width"], sample["height"], where)
        comment, who = body.get("comment", ""), body.get("who", "")
        if not isinstance(comment, str) or not isinstance(who, str) or len(comment) > 2000 or len(who) > 200:
            raise InputError("'comment' and 'who' must be short strings")
        version = body.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise InputError("'version' must be a whole number")
        folder = self.folder(number)

        def audit(record: dict) -> None:
            append_json_line(folder / AUDIT, {
                "time": record["when"], "who": who, "sample": sample_id, "idx": sample["idx"],
                "image": sample.get("file", ""), "status": status, "regions": len(regions),
                "replaced_version": record["version"] - 1, "client": client})

        mark = {"status": status, "regions": regions, "comment": comment, "who": who}
        return MarksStore(folder).save(sample_id, mark, version, client, also=audit)

    def coco(self, number: int) -> dict:
        """The round's marks as COCO: one ``irrelevant`` annotation per marked sample, its
        rectangles, brush strokes and erasers drawn into one mask, stored as RLE."""
        manifest, marks = self.manifest(number), self.marks(number)["samples"]
        images, annotations = [], []
        for image_id, sample in enumerate(manifest["samples"], start=1):
            images.append({"id": image_id, "file_name": sample["image"], "width": sample["width"],
                           "height": sample["height"]})
            mark = marks.get(sample["id"]) or {}
            rle = marks_rle(mark.get("regions", []), sample["width"], sample["height"]) \
                if mark.get("status") == "marked" else None
            if rle is not None:
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                    "segmentation": rle, "bbox": list(rle_bbox(rle)), "iscrowd": 0})
        return {"images": images, "annotations": annotations,
                "categories": [{"id": 1, "name": "irrelevant"}]}


def create_app(run_dir: str | Path, token: str | None = None, hosts: Iterable[str] = LOOPBACK) -> Starlette:
    """The page and its API for ``RUN_DIR/imil``, behind ``ReviewGuard`` (answering only ``hosts``;
    ``token=None`` serves without a token)."""
    store = ReviewStore(run_dir)

    def round_number(request: Request) -> int:
        text = request.path_params["number"]
        if not text.isdigit():
            raise KeyError(f"round '{text}' is not a number")
        return int(text)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def list_rounds(request: Request) -> Response:
        rounds = []
        for number in store.rounds():
            manifest, marks = store.manifest(number), store.marks(number)
            rounds.append({"round": number, "epoch": manifest["epoch"],
                           "kind": manifest.get("kind", "outliers"), "closed": marks["closed"],
                           "total": len(manifest["samples"]), "done": len(marks["samples"])})
        return JSONResponse({"rounds": rounds})

    async def get_round(request: Request) -> Response:
        number = round_number(request)
        marks = store.marks(number)
        return JSONResponse({**store.manifest(number), "marks": marks["samples"], "closed": marks["closed"]})

    async def sample_file(request: Request) -> Response:
        number = round_number(request)
        sample = store.sample(number, request.path_params["sample_id"])
        kind = request.path_params["kind"]
        if kind not in ("image", "cam", "proposal") or kind not in sample:
            raise KeyError(f"sample has no file of kind '{kind}'")
        path = store.folder(number) / sample[kind]  # a name from the manifest, never the request
        if path.resolve().parent != store.folder(number).resolve():
            return error(403, "refused: the manifest points outside the round folder")
        return FileResponse(path, media_type="image/png")

    async def put_marks(request: Request) -> Response:
        number = round_number(request)
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_BODY:
            return error(413, f"request body over {MAX_BODY} bytes")
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return error(413, f"request body over {MAX_BODY} bytes")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return error(400, f"body is not valid JSON: {exc}")
        if not isinstance(body, dict):
            return error(400, "body must be a JSON object")
        try:
            record = store.save_mark(number, request.path_params["sample_id"], body,
                                     client=request.client.host if request.client else "")
        except (ConflictError, RoundClosedError) as exc:
            return error(409, str(exc))
        except InputError as exc:
            return error(422, str(exc))
        except OSError as exc:  # disk full or read-only: saved marks unchanged, the page keeps its drawing
            return error(507, str(exc))
        return JSONResponse(record)

    async def coco(request: Request) -> Response:
        return JSONResponse(store.coco(round_number(request)))

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, str(exc).strip("'\""))

    routes = [
        Route("/", index),
        Route("/api/rounds", list_rounds),
        Route("/api/rounds/{number}", get_round),
        Route("/api/rounds/{number}/coco", coco),
        Route("/api/rounds/{number}/samples/{sample_id}/{kind}", sample_file),
        Route("/api/rounds/{number}/samples/{sample_id}/marks", put_marks, methods=["PUT"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(ReviewGuard, hosts=hosts, token=token)]
    return Starlette(routes=routes, middleware=middleware, exception_handlers={KeyError: not_found})


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
          no_token: bool = False, allow_hosts: Iterable[str] = ()) -> None:
    """Serve the page with a token (generated unless given), like Jupyter; ``no_token`` only on
    loopback. The page answers the loopback names, ``host`` and ``allow_hosts``."""
    import uvicorn

    if no_token and (host not in LOOPBACK or token):
        raise ValueError("--no-token is only for the loopback address (127.0.0.1, localhost, ::1), "
                         "and not together with --token")
    if no_token:
        print("warning: serving without a token: every local user of this machine can read the "
              "round's images and change its marks", file=sys.stderr, flush=True)
    token = None if no_token else (token or secrets.token_urlsafe(24))
    hosts = {*LOOPBACK, *allow_hosts} | ({host} if host not in WILDCARD else set())
    app = create_app(run_dir, token, hosts)
    shown = f"[{host}]" if ":" in host else ("127.0.0.1" if host in WILDCARD else host)
    print(f"review page: http://{shown}:{port}/" + (f"?token={token}" if token else ""), flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
