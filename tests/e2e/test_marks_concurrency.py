"""One round, many writers: two and four real `hkd review` processes (three writers each) save
marks on the same round at once; every acknowledged save is in the round's database with a version
no other save got, nothing else is, and a `kill -9` of a server mid-load loses nothing it
acknowledged."""

import json
import sqlite3
import threading
from http.client import HTTPException

import numpy as np
import pytest
from PIL import Image
from review_page import Page

from hkd.imil.marks_store import MarksStore
from hkd.imil.queue import write_round

N_SAMPLES = 6


def one_round(tmp_path):
    """A run directory with one review round of real files (as training writes it)."""
    run_dir = tmp_path / "run"
    samples = [{"idx": i, "file": f"img/{i}.png", "sha256": f"{i:064x}", "label": "a", "prediction": "b",
                "confidence": 0.9, "image": Image.new("L", (40, 40), 40 * i),
                "cam": Image.new("RGB", (40, 40))} for i in range(N_SAMPLES)]
    write_round(run_dir / "imil" / "round_1", 1, 0, samples)
    return run_dir, [f"s{i:03d}" for i in range(N_SAMPLES)]


def writer(page: Page, name: str, samples: list[str], saves: int, seed: int, acks: list,
           refused: list, errors: list) -> None:
    """``saves`` acknowledged saves, each based on the version the page showed last (a 409 means
    another writer was first: reload and try again, as the page tells a person to)."""
    rng = np.random.default_rng(seed)
    for number in range(saves):
        sample = samples[rng.integers(len(samples))]
        while True:
            try:
                version = (page.get("/api/rounds/1")["marks"].get(sample) or {}).get("version", 0)
                who = f"{name}-{number}"
                rect = {"type": "rect", "x": 1, "y": 1, "w": 2 + number % 30, "h": 3}
                status, answer = page.put_mark(1, sample, {"status": "marked", "regions": [rect],
                                                           "who": who, "version": version})
            except (OSError, HTTPException) as error:  # the server was killed: nothing acknowledged
                errors.append(f"{name}: {error!r}")
                return
            if status == 200:
                acks.append((sample, answer["version"], who))
                break
            assert status == 409, answer
            refused.append(answer["error"])


def load(pages: list[Page], samples: list[str], saves: int) -> tuple[list, list, list, list]:
    acks, refused, errors, threads = [], [], [], []
    for p, page in enumerate(pages):
        for w in range(3):
            threads.append(threading.Thread(target=writer, args=(page, f"server{p}-writer{w}", samples,
                                                                 saves, 10 * p + w, acks, refused,
                                                                 errors)))
    for thread in threads:
        thread.start()
    return acks, refused, errors, threads


@pytest.mark.parametrize("servers", [2, 4])
def test_many_review_servers_on_one_round_lose_no_acknowledged_save(tmp_path, servers):
    run_dir, samples = one_round(tmp_path)
    pages = [Page(run_dir, "--no-token") for _ in range(servers)]
    try:
        acks, refused, errors, threads = load(pages, samples, saves=12)
        for thread in threads:
            thread.join(timeout=300)
    finally:
        for page in pages:
            page.stop()
    folder = run_dir / "imil" / "round_1"
    history = MarksStore(folder).history()
    stored = {(h["sample"], h["version"]): h["who"] for h in history}
    acknowledged = {(sample, version): who for sample, version, who in acks}
    print(f"{servers} servers x 3 writers: {len(acks)} saves acknowledged, {len(refused)} stale saves "
          f"refused (409), {len(history)} versions stored, "
          f"{len(set(acknowledged) - set(stored))} acknowledged saves lost")
    assert not errors and not any(thread.is_alive() for thread in threads), errors  # no server was killed
    assert len(acks) == servers * 3 * 12
    assert len(acknowledged) == len(acks)  # no two acknowledged saves got the same version
    assert stored == acknowledged  # every acknowledged save is there (by whom), and nothing else
    assert refused and all("saved elsewhere meanwhile" in message for message in refused)
    latest = json.loads((folder / "marks.json").read_text())["samples"]
    for sample in samples:
        versions = [version for s, version, _ in acks if s == sample]
        assert latest.get(sample, {}).get("version", 0) == max(versions, default=0)
        assert sorted(versions) == list(range(1, len(versions) + 1))  # no gaps: no save overwritten
    audit = (folder / "audit.jsonl").read_text().splitlines()
    assert len(audit) == len(acks)


def test_a_review_server_killed_mid_load_loses_nothing_it_acknowledged(tmp_path):
    run_dir, samples = one_round(tmp_path)
    victim, survivor = Page(run_dir, "--no-token"), Page(run_dir, "--no-token")
    try:
        acks, _, _, threads = load([victim, survivor], samples, saves=15)
        while len(acks) < 10:
            threads[0].join(timeout=0.05)
        victim.process.kill()  # kill -9, mid-save for some of its writers
        victim.process.wait(timeout=20)
        for thread in threads:
            thread.join(timeout=300)
    finally:
        survivor.stop()
    folder = run_dir / "imil" / "round_1"
    stored = {(h["sample"], h["version"]) for h in MarksStore(folder).history()}
    assert {(sample, version) for sample, version, _ in acks} <= stored
    assert len(acks) >= 3 * 15  # the survivor's writers all finished
    with sqlite3.connect(folder / "marks.sqlite") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    lines = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
    assert len(lines) >= len(acks)  # the audit trail is whole lines, one per stored change at least
