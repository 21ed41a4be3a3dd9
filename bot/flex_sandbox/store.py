"""SQLite persistence for the sandbox: Twilio resources as JSON documents plus the webhook outbox.

Every resource and every queued webhook belongs to one account (the `account` column). Code reaches the data
through `Store.scoped(account_sid)`, an `AccountStore` that reads and writes only that account's rows, so a
state file shared by several accounts (the sandbox restarted with other credentials) never mixes them.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    sid TEXT NOT NULL,
    parent TEXT NOT NULL DEFAULT '',
    doc TEXT NOT NULL,
    account TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS resources_sid ON resources (kind, sid);
CREATE INDEX IF NOT EXISTS resources_parent ON resources (kind, parent, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    doc TEXT NOT NULL,
    account TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS blobs (
    sid TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    data BLOB NOT NULL
);
"""
ACCOUNT_INDEXES = """
CREATE INDEX IF NOT EXISTS resources_account ON resources (account, kind, parent, seq);
CREATE INDEX IF NOT EXISTS deliveries_account ON deliveries (account, id);
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
        self._migrate()
        self._db.executescript(ACCOUNT_INDEXES)

    def scoped(self, account: str) -> AccountStore:
        """This database as one account sees it."""
        return AccountStore(self, account)

    def close(self) -> None:
        """Close the database (after the server stopped)."""
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[Store]:
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

    # -- schema -----------------------------------------------------------------
    def _columns(self, table: str) -> List[str]:
        return [row[1] for row in self._db.execute(f"PRAGMA table_info({table})")]

    def _migrate(self) -> None:
        """Bring a state file written before accounts were tracked up to date (idempotent).

        Such a file was provisioned for one account, the one its Flex flow names; rows whose document
        carries no `account_sid` (services, tasks) and the unscoped provisioning keys belong to it.
        """
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version >= SCHEMA_VERSION:
            return
        with self.transaction():
            for table in ("resources", "deliveries"):
                if "account" not in self._columns(table):
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN account TEXT NOT NULL DEFAULT ''")
            row = self._db.execute(
                "SELECT json_extract(doc, '$.account_sid') FROM resources WHERE kind = 'flex_flow' ORDER BY seq LIMIT 1"
            ).fetchone()
            owner = row[0] if row and row[0] else ""
            self._db.execute(
                "UPDATE resources SET account = COALESCE(json_extract(doc, '$.account_sid'), ?) WHERE account = ''", (owner,)
            )
            self._db.execute(
                "UPDATE deliveries SET account = COALESCE(json_extract(doc, '$.params.AccountSid'), ?) WHERE account = ''",
                (owner,),
            )
            if owner:
                self._db.execute("UPDATE meta SET key = ? || ':' || key WHERE instr(key, ':') = 0", (owner,))
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if version == 0 and owner:
            log.info("state file migrated: its resources belong to %s", owner)

    # -- meta -----------------------------------------------------------------
    def meta(self, account: str, key: str) -> Optional[str]:
        """A provisioning value of an account (e.g. its chat service SID)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (f"{account}:{key}",)).fetchone()
        return row[0] if row else None

    def set_meta(self, account: str, key: str, value: str) -> None:
        """Remember a provisioning value of an account."""
        with self.transaction():
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (f"{account}:{key}", value))

    # -- resources ------------------------------------------------------------
    def insert(self, account: str, kind: str, doc: Doc, parent: str = "") -> Doc:
        """Store a new resource document of `account` (its `sid` is the key)."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO resources (kind, sid, parent, doc, account) VALUES (?, ?, ?, ?, ?)",
                (kind, doc["sid"], parent, json.dumps(doc), account),
            )
        return doc

    def get(self, account: str, kind: str, sid: str, parent: Optional[str] = None) -> Optional[Doc]:
        """One resource of `account`, optionally checked to belong to `parent`."""
        with self._lock:
            row = self._db.execute(
                "SELECT parent, doc FROM resources WHERE kind = ? AND sid = ? AND account = ?", (kind, sid, account)
            ).fetchone()
        if row is None or (parent is not None and row[0] != parent):
            return None
        found: Doc = json.loads(row[1])
        return found

    def replace(self, account: str, kind: str, doc: Doc) -> Doc:
        """Overwrite a resource document of `account`."""
        with self.transaction():
            self._db.execute(
                "UPDATE resources SET doc = ? WHERE kind = ? AND sid = ? AND account = ?",
                (json.dumps(doc), kind, doc["sid"], account),
            )
        return doc

    def delete(self, account: str, kind: str, sid: str) -> bool:
        """Remove a resource of `account`; False when it did not exist."""
        with self.transaction():
            cur = self._db.execute("DELETE FROM resources WHERE kind = ? AND sid = ? AND account = ?", (kind, sid, account))
        return cur.rowcount > 0

    def list(
        self,
        account: str,
        kind: str,
        parent: Optional[str] = None,
        offset: int = 0,
        limit: int = -1,
        descending: bool = False,
        where: Optional[Dict[str, Any]] = None,
    ) -> Tuple[List[Doc], bool]:
        """A page of `account`'s resources in creation order, and whether more follow."""
        sql = "SELECT doc FROM resources WHERE account = ? AND kind = ?"
        args: List[Any] = [account, kind]
        if parent is not None:
            sql += " AND parent = ?"
            args.append(parent)
        for key, value in (where or {}).items():
            if isinstance(value, (list, tuple)):  # any of several values (Twilio's repeated list filters)
                sql += f" AND json_extract(doc, '$.{key}') IN ({', '.join('?' * len(value)) or 'NULL'})"
                args += list(value)
            else:
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

    def count(self, account: str, kind: str, parent: str) -> int:
        """How many resources of a kind a parent of `account` has."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM resources WHERE account = ? AND kind = ? AND parent = ?", (account, kind, parent)
            ).fetchone()
        return int(row[0])

    # -- blobs (uploaded media bytes, kept out of the JSON documents) -----------
    def put_blob(self, account: str, sid: str, data: bytes) -> None:
        """Store the bytes of resource `sid` of `account` (replacing any before)."""
        with self.transaction():
            self._db.execute("INSERT OR REPLACE INTO blobs (sid, account, data) VALUES (?, ?, ?)", (sid, account, data))

    def blob(self, account: str, sid: str) -> Optional[bytes]:
        """The bytes stored for resource `sid` of `account`, if any."""
        with self._lock:
            row = self._db.execute("SELECT data FROM blobs WHERE sid = ? AND account = ?", (sid, account)).fetchone()
        return bytes(row[0]) if row else None

    # -- webhook outbox -------------------------------------------------------
    def add_delivery(self, account: str, queue: str, doc: Doc) -> int:
        """Queue a webhook delivery of `account` durably; returns its id."""
        with self.transaction():
            cur = self._db.execute(
                "INSERT INTO deliveries (queue, doc, account) VALUES (?, ?, ?)", (queue, json.dumps(doc), account)
            )
        assert cur.lastrowid is not None  # an INSERT always has one
        return cur.lastrowid

    def delivery(self, account: str, delivery_id: int) -> Optional[Doc]:
        """A queued delivery of `account`, or None once it is done."""
        with self._lock:
            row = self._db.execute("SELECT doc FROM deliveries WHERE id = ? AND account = ?", (delivery_id, account)).fetchone()
        return json.loads(row[0]) if row else None

    def finish_delivery(self, account: str, delivery_id: int) -> None:
        """Drop a delivery that succeeded or ran out of retries."""
        with self.transaction():
            self._db.execute("DELETE FROM deliveries WHERE id = ? AND account = ?", (delivery_id, account))

    def pending_deliveries(self, account: str) -> List[Tuple[int, str]]:
        """`account`'s deliveries left over from a previous run, oldest first (other accounts' wait for them)."""
        with self._lock:
            return [
                (r[0], r[1])
                for r in self._db.execute("SELECT id, queue FROM deliveries WHERE account = ? ORDER BY id", (account,))
            ]


class AccountStore:
    """The store as one account sees it: the same calls, every one limited to that account's rows."""

    def __init__(self, store: Store, account: str) -> None:
        if not account:
            raise ValueError("an account SID is required")
        self.base = store
        self.account = account

    def transaction(self) -> Any:
        """Group writes atomically (shared with every account: one database, one lock)."""
        return self.base.transaction()

    def meta(self, key: str) -> Optional[str]:
        return self.base.meta(self.account, key)

    def set_meta(self, key: str, value: str) -> None:
        self.base.set_meta(self.account, key, value)

    def insert(self, kind: str, doc: Doc, parent: str = "") -> Doc:
        return self.base.insert(self.account, kind, doc, parent)

    def get(self, kind: str, sid: str, parent: Optional[str] = None) -> Optional[Doc]:
        return self.base.get(self.account, kind, sid, parent)

    def replace(self, kind: str, doc: Doc) -> Doc:
        return self.base.replace(self.account, kind, doc)

    def delete(self, kind: str, sid: str) -> bool:
        return self.base.delete(self.account, kind, sid)

    def list(
        self,
        kind: str,
        parent: Optional[str] = None,
        offset: int = 0,
        limit: int = -1,
        descending: bool = False,
        where: Optional[Dict[str, Any]] = None,
    ) -> Tuple[List[Doc], bool]:
        return self.base.list(self.account, kind, parent, offset, limit, descending, where)

    def count(self, kind: str, parent: str) -> int:
        return self.base.count(self.account, kind, parent)

    def put_blob(self, sid: str, data: bytes) -> None:
        self.base.put_blob(self.account, sid, data)

    def blob(self, sid: str) -> Optional[bytes]:
        return self.base.blob(self.account, sid)

    def add_delivery(self, queue: str, doc: Doc) -> int:
        return self.base.add_delivery(self.account, queue, doc)

    def delivery(self, delivery_id: int) -> Optional[Doc]:
        return self.base.delivery(self.account, delivery_id)

    def finish_delivery(self, delivery_id: int) -> None:
        self.base.finish_delivery(self.account, delivery_id)

    def pending_deliveries(self) -> List[Tuple[int, str]]:
        return self.base.pending_deliveries(self.account)
