"""SQLite persistence for the sandbox: Twilio resources as JSON documents plus the webhook outbox."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    sid TEXT NOT NULL,
    parent TEXT NOT NULL DEFAULT '',
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS resources_sid ON resources (kind, sid);
CREATE INDEX IF NOT EXISTS resources_parent ON resources (kind, parent, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    doc TEXT NOT NULL
);
"""

Doc = Dict[str, Any]


def public(doc: Doc) -> Doc:
    """A document without its `_`-prefixed fields: those are sandbox bookkeeping Twilio never shows."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


class Store:
    """One SQLite database; every write goes through a single lock so per-channel indexes stay contiguous."""

    def __init__(self, path: Optional[str]) -> None:
        self.path = path or ":memory:"
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._depth = 0
        if path:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database (after the server stopped)."""
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator["Store"]:
        """Group writes atomically; nested use joins the outer transaction."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    # -- meta -----------------------------------------------------------------
    def meta(self, key: str) -> Optional[str]:
        """A provisioning value (e.g. the default flow SID)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Remember a provisioning value."""
        with self.transaction():
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- resources ------------------------------------------------------------
    def insert(self, kind: str, doc: Doc, parent: str = "") -> Doc:
        """Store a new resource document (its `sid` is the key)."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO resources (kind, sid, parent, doc) VALUES (?, ?, ?, ?)",
                (kind, doc["sid"], parent, json.dumps(doc)),
            )
        return doc

    def get(self, kind: str, sid: str, parent: Optional[str] = None) -> Optional[Doc]:
        """One resource, optionally checked to belong to `parent`."""
        with self._lock:
            row = self._db.execute("SELECT parent, doc FROM resources WHERE kind = ? AND sid = ?", (kind, sid)).fetchone()
        if row is None or (parent is not None and row[0] != parent):
            return None
        return json.loads(row[1])

    def replace(self, kind: str, doc: Doc) -> Doc:
        """Overwrite a resource document."""
        with self.transaction():
            self._db.execute("UPDATE resources SET doc = ? WHERE kind = ? AND sid = ?", (json.dumps(doc), kind, doc["sid"]))
        return doc

    def delete(self, kind: str, sid: str) -> bool:
        """Remove a resource; False when it did not exist."""
        with self.transaction():
            cur = self._db.execute("DELETE FROM resources WHERE kind = ? AND sid = ?", (kind, sid))
        return cur.rowcount > 0

    def list(
        self, kind: str, parent: Optional[str] = None, offset: int = 0, limit: int = -1, descending: bool = False,
        where: Optional[Dict[str, Any]] = None,
    ) -> Tuple[List[Doc], bool]:
        """A page of resources in creation order, and whether more follow."""
        sql = "SELECT doc FROM resources WHERE kind = ?"
        args: List[Any] = [kind]
        if parent is not None:
            sql += " AND parent = ?"
            args.append(parent)
        for key, value in (where or {}).items():
            sql += f" AND json_extract(doc, '$.{key}') = ?"
            args.append(value)
        sql += " ORDER BY seq " + ("DESC" if descending else "ASC") + " LIMIT ? OFFSET ?"
        args += [limit + 1 if limit >= 0 else -1, offset]
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        docs = [json.loads(r[0]) for r in rows]
        if limit >= 0 and len(docs) > limit:
            return docs[:limit], True
        return docs, False

    def count(self, kind: str, parent: str) -> int:
        """How many resources of a kind a parent has."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM resources WHERE kind = ? AND parent = ?", (kind, parent)).fetchone()[0]

    # -- webhook outbox -------------------------------------------------------
    def add_delivery(self, queue: str, doc: Doc) -> int:
        """Queue a webhook delivery durably; returns its id."""
        with self.transaction():
            cur = self._db.execute("INSERT INTO deliveries (queue, doc) VALUES (?, ?)", (queue, json.dumps(doc)))
        return int(cur.lastrowid)

    def delivery(self, delivery_id: int) -> Optional[Doc]:
        """A queued delivery, or None once it is done."""
        with self._lock:
            row = self._db.execute("SELECT doc FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def finish_delivery(self, delivery_id: int) -> None:
        """Drop a delivery that succeeded or ran out of retries."""
        with self.transaction():
            self._db.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))

    def pending_deliveries(self) -> List[Tuple[int, str]]:
        """Deliveries left over from a previous run, oldest first."""
        with self._lock:
            return [(r[0], r[1]) for r in self._db.execute("SELECT id, queue FROM deliveries ORDER BY id")]
