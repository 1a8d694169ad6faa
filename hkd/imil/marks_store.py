"""A round's marks in one SQLite database (``round_N/marks.sqlite``, WAL mode): any number of review
pages, in any number of processes, and the training process read and write it; no acknowledged
save is ever lost.

Every save is one ``BEGIN IMMEDIATE`` transaction: SQLite lets one writer in at a time across
processes, so the version check ("is this save based on the latest version?") and the new version
are one atomic step, and a stale save gets ``ConflictError`` whichever process made the newer one.
Every version is kept (the history), ``synchronous=FULL`` makes a committed save survive a crash,
and ``marks.json`` beside it is an export of the latest versions, rewritten inside the same
transaction (for people and tools; training reads the database).

When training takes the round's marks it **closes** the round in the same way: the time and the
marks taken are stored, and every later save gets ``RoundClosedError`` naming when it was closed.

SQLite needs a local file system (WAL relies on shared memory between the processes of one
machine): run the review pages on the machine that holds the run directory.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing, contextmanager
from pathlib import Path

from hkd.atomic import atomic_write_json

DATABASE = "marks.sqlite"
EXPORT = "marks.json"
SCHEMA = """
CREATE TABLE IF NOT EXISTS marks (
    sample TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL, regions TEXT NOT NULL,
    comment TEXT NOT NULL, who TEXT NOT NULL, time TEXT NOT NULL, client TEXT NOT NULL,
    PRIMARY KEY (sample, version));
CREATE TABLE IF NOT EXISTS closure (
    id INTEGER PRIMARY KEY CHECK (id = 1), time TEXT NOT NULL, taken TEXT NOT NULL);
"""


class ConflictError(Exception):
    """A save based on a version that is no longer the latest."""


class RoundClosedError(Exception):
    """A save to a round whose marks training has already taken."""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


class MarksStore:
    """The marks of the round in ``folder``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DATABASE

    def exists(self) -> bool:
        """Whether the round has a database, made now from a ``marks.json`` of a run made before
        there was one (its marks become their samples' first versions)."""
        if not self.path.is_file() and (self.folder / EXPORT).is_file():
            marks = json.loads((self.folder / EXPORT).read_text()).get("samples") or {}
            self.import_marks(marks)
        return self.path.is_file()

    @contextmanager
    def _connection(self, write: bool):
        connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        with closing(connection):
            connection.execute("PRAGMA busy_timeout = 60000")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")
            connection.executescript(SCHEMA)
            if not write:
                yield connection
                return
            connection.execute("BEGIN IMMEDIATE")  # the one writer of this database, across processes
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    # -- reading -----------------------------------------------------------------------------
    def latest(self) -> dict[str, dict]:
        """{sample id: its latest mark} (``status, regions, comment, who, when, version``)."""
        if not self.exists():
            return {}
        with self._connection(write=False) as connection:
            return _latest(connection)

    def history(self) -> list[dict]:
        """Every saved version of every sample, oldest first."""
        if not self.exists():
            return []
        with self._connection(write=False) as connection:
            rows = connection.execute("SELECT sample, version, status, who, time, client FROM marks "
                                      "ORDER BY rowid").fetchall()
        return [dict(zip(("sample", "version", "status", "who", "when", "client"), row)) for row in rows]

    def closure(self) -> dict | None:
        """``{"when": time, "taken": {sample: mark}}`` once training has taken the marks, else None."""
        if not self.exists():
            return None
        with self._connection(write=False) as connection:
            return _closure(connection)

    # -- writing -----------------------------------------------------------------------------
    def save(self, sample: str, mark: dict, expected_version: int | None = None, client: str = "",
             also: Callable[[dict], None] | None = None) -> dict:
        """Store a new version of ``sample``'s mark (``status, regions, comment, who``); with
        ``expected_version``, only if that is still the latest. ``also(record)`` runs inside the
        transaction (the audit trail): if it raises, nothing is saved."""
        self.exists()
        try:
            return self._save(sample, mark, expected_version, client, also)
        except (OSError, sqlite3.OperationalError) as error:  # e.g. the disk is full: nothing saved
            self._reexport()
            raise OSError(getattr(error, "errno", None),
                          f"could not write {self.path}: {error}; the saved marks are unchanged") from error

    def _save(self, sample: str, mark: dict, expected_version: int | None, client: str,
              also: Callable[[dict], None] | None) -> dict:
        with self._connection(write=True) as connection:
            closed = _closure(connection)
            if closed is not None:
                raise RoundClosedError(f"{self.folder.name} was closed at {closed['when']}, when training "
                                       "took its marks; this save was not used (mark the image in a later "
                                       "round)")
            version = connection.execute("SELECT COALESCE(MAX(version), 0) FROM marks WHERE sample = ?",
                                         (sample,)).fetchone()[0]
            if expected_version is not None and expected_version != version:
                raise ConflictError(f"{sample} was saved elsewhere meanwhile (version {version}, yours "
                                    f"{expected_version}): reload to see it")
            record = {"status": mark["status"], "regions": mark.get("regions", []),
                      "comment": mark.get("comment", ""), "who": mark.get("who", ""), "when": now(),
                      "version": version + 1}
            connection.execute("INSERT INTO marks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               (sample, record["version"], record["status"], json.dumps(record["regions"]),
                                record["comment"], record["who"], record["when"], client))
            self._export(connection)
            if also is not None:
                also(record)
        return record

    def _reexport(self) -> None:
        """After a failed save: ``marks.json`` shows the database again (best effort)."""
        try:
            with self._connection(write=False) as connection:
                self._export(connection)
        except (OSError, sqlite3.Error):
            pass

    def close(self) -> dict:
        """Close the round and return the marks taken (a round closed before returns what it
        took then, so a training run killed after closing takes the same marks again)."""
        self.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._connection(write=True) as connection:
            closed = _closure(connection)
            if closed is None:
                closed = {"when": now(), "taken": _latest(connection)}
                connection.execute("INSERT INTO closure VALUES (1, ?, ?)",
                                   (closed["when"], json.dumps(closed["taken"])))
                self._export(connection)
        return closed

    def import_marks(self, marks: dict[str, dict]) -> None:
        """Marks kept only in ``marks.json`` become their samples' versions, once."""
        with self._connection(write=True) as connection:
            empty = connection.execute("SELECT COUNT(*) FROM marks").fetchone()[0] == 0
            if empty and _closure(connection) is None:
                for sample, mark in marks.items():
                    connection.execute("INSERT INTO marks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                       (sample, int(mark.get("version", 1)), mark["status"],
                                        json.dumps(mark.get("regions", [])), mark.get("comment", ""),
                                        mark.get("who", ""), mark.get("when", now()), "marks.json"))

    def _export(self, connection: sqlite3.Connection) -> None:
        closed = _closure(connection)
        export = {"samples": _latest(connection)}
        if closed is not None:
            export["closed"] = closed["when"]
        atomic_write_json(self.folder / EXPORT, export)


def _latest(connection: sqlite3.Connection) -> dict[str, dict]:
    rows = connection.execute(
        "SELECT sample, version, status, regions, comment, who, time FROM marks AS m WHERE version = "
        "(SELECT MAX(version) FROM marks WHERE sample = m.sample) ORDER BY sample").fetchall()
    return {sample: {"status": status, "regions": json.loads(regions), "comment": comment, "who": who,
                     "when": when, "version": version}
            for sample, version, status, regions, comment, who, when in rows}


def _closure(connection: sqlite3.Connection) -> dict | None:
    row = connection.execute("SELECT time, taken FROM closure WHERE id = 1").fetchone()
    return None if row is None else {"when": row[0], "taken": json.loads(row[1])}
