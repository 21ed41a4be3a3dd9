"""Handed-off conversations' trackers, read and changed through the bot's tracker store without reloading them per relay.

Rasa's tracker stores load a conversation by deserialising every event of its session (20 to
45 µs an event here), so a relay that loads and saves the tracker costs more the longer the
conversation is: 9 ms at 35 events, 194 ms at 2,000. While a conversation is handed off, this
server keeps the tracker it last saved and uses it again only while the store still holds
exactly that tracker: under the conversation's lock, a version read cheaply from the store must
equal the one read right after our save. Any other writer (another replica, Rasa's own turn,
the HTTP API) changes the version, and the next relay loads the tracker again. So the tracker
store stays the record of every turn and the only shared state; what is kept here is a copy
that is never trusted without that check.

Cheap versions exist for Rasa's SQL store (the count and last id of the conversation's rows:
rows are only ever added) and its in-memory store (the stored text itself: every save replaces
it). Other stores (Redis, MongoDB, DynamoDB, custom ones) are loaded on every relay, as before.
Saves always go through the store's own `save` (event broker, fail-safe fallback).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Dict, Hashable, List, Optional, Tuple

import sqlalchemy as sa
from rasa.core.agent import Agent
from rasa.core.tracker_store import (
    AwaitableTrackerStore,
    FailSafeTrackerStore,
    InMemoryTrackerStore,
    SQLTrackerStore,
    TrackerStore,
)
from rasa.shared.core.events import Event, SessionStarted, SlotSet
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

from rasa_flex_handoff import handoff

logger = logging.getLogger(__name__)

# How often a waiting relay or webhook retries the conversation lock (Rasa's default, 1 s, shows
# as a second of lag whenever a visitor message and a webhook of the same chat meet).
LOCK_POLL_SECONDS = 0.05

# At most this many trackers are kept (least recently used go first); a chat beyond it is loaded per relay.
MAX_KEPT = 5000


class StoreAccess:
    """How this server checks and writes one kind of store: here, a store without a cheap version (load every time)."""

    def __init__(self, store: TrackerStore) -> None:
        self.store = store

    def version(self, sender_id: str) -> Optional[Hashable]:
        """The conversation's version in the store now; None when there is no cheap one (load the tracker)."""
        return None

    def may_be_handed_off(self, sender_id: str) -> bool:
        """False only when the conversation is surely not handed off, told without loading it (here: never told)."""
        return True

    async def append(
        self, tracker: DialogueStateTracker, new_events: List[Event], version: Optional[Hashable]
    ) -> Optional[Hashable]:
        """Store the tracker's `new_events` (the store held `version` before); the version after.

        Rasa's own `save` of the configured store (with its event broker and fail-safe fallback).
        """
        await self.store.save(tracker)
        return self.version(tracker.sender_id)


class SQLRows(StoreAccess):
    """Rasa's SQL store, whose rows are only ever added: the version is the conversation's row count.

    Rasa's `save` counts the session's rows to find the new events, then inserts them through the
    ORM; a relay knows its new events, so it inserts just those rows, as Rasa writes them. Under the
    conversation's lock no one else writes, so the count after is the count before plus the rows
    added, with no query. With an event broker configured, or when the insert fails, Rasa's own
    `save` runs instead (it publishes and falls back).

    Relays that reach this point in the same turn of the event loop are committed together, in
    one transaction (group commit): the commit waits for the disk (SQLite's fsync) or the database
    server, and Rasa's SQL store blocks the server while it does, so one commit per message capped
    a server at about 90 relayed messages a second here. Each relay still returns only once its
    rows are committed.
    """

    def __init__(self, store: TrackerStore, sql: SQLTrackerStore) -> None:
        super().__init__(store)
        self.sql = sql
        event = sql.SQLEvent
        self.table = event.__table__
        self.count = sa.select(sa.func.count(event.id)).where(event.sender_id == sa.bindparam("sender_id"))
        self.chat_slot = (
            sa.select(event.data)
            .where(
                event.sender_id == sa.bindparam("sender_id"),
                event.type_name == SlotSet.type_name,
                event.action_name == handoff.CHANNEL_SLOT,  # Rasa's SQL store keeps a slot's name there
            )
            .order_by(event.id.desc())
            .limit(1)
        )
        self._batch: List[Tuple[List[Dict[str, Any]], asyncio.Future[None]]] = []

    def version(self, sender_id: str) -> Optional[Hashable]:
        with self.sql.engine.connect() as connection:
            return int(connection.execute(self.count, {"sender_id": sender_id}).scalar_one())

    def may_be_handed_off(self, sender_id: str) -> bool:
        """Whether the conversation's latest record of the handoff's chat slot names a chat.

        Slots change only through slot events (`SlotSet`; a new session sets carried-over slots
        again) and resets that clear them, so when the latest such row sets no chat, the
        conversation is not handed off: a bot turn need not load the tracker to learn it.
        """
        with self.sql.engine.connect() as connection:
            data = connection.execute(self.chat_slot, {"sender_id": sender_id}).scalar_one_or_none()
        return data is not None and json.loads(data).get("value") is not None

    async def append(
        self, tracker: DialogueStateTracker, new_events: List[Event], version: Optional[Hashable]
    ) -> Optional[Hashable]:
        if self.sql.event_broker is not None or not isinstance(version, int):
            return await super().append(tracker, new_events, version)
        rows = [_row(tracker.sender_id, event) for event in new_events]
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[None] = loop.create_future()
        self._batch.append((rows, committed))
        if len(self._batch) == 1:
            loop.call_soon(self._commit)
        try:
            await committed
        except sa.exc.SQLAlchemyError:
            logger.debug("direct insert failed; saving through the tracker store", exc_info=True)
            return await super().append(tracker, new_events, None)
        return version + len(rows)

    def _commit(self) -> None:
        """Insert the rows of every relay waiting now, in one transaction; tell each how it went."""
        batch, self._batch = self._batch, []
        error: Optional[BaseException] = None
        try:
            with self.sql.engine.begin() as connection:
                connection.execute(self.table.insert(), [row for rows, _ in batch for row in rows])
        except sa.exc.SQLAlchemyError as e:
            error = e  # each relay then saves through Rasa's store on its own
        for _, committed in batch:
            if committed.done():
                continue  # its relay was cancelled
            if error is None:
                committed.set_result(None)
            else:
                committed.set_exception(error)


def _row(sender_id: str, event: Event) -> Dict[str, Any]:
    """An event as Rasa's SQL store writes it (`SQLTrackerStore.save`): the columns its queries filter on, and the JSON."""
    data = event.as_dict()
    return {
        "sender_id": sender_id,
        "type_name": event.type_name,
        "timestamp": data.get("timestamp"),
        "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
        "action_name": data.get("name"),
        "data": json.dumps(data),
    }


class InMemoryText(StoreAccess):
    """Rasa's in-memory store: every save stores a new text, and comparing the same text object is instant."""

    def __init__(self, store: TrackerStore, memory: InMemoryTrackerStore) -> None:
        super().__init__(store)
        self.memory = memory

    def version(self, sender_id: str) -> Optional[Hashable]:
        stored: Optional[str] = self.memory.store.get(sender_id)
        return stored


def primary_store(store: TrackerStore) -> TrackerStore:
    """The store under Rasa's wrappers (awaitable, fail-safe): the one that holds the rows."""
    while isinstance(store, (AwaitableTrackerStore, FailSafeTrackerStore)):
        store = store._tracker_store
    return store


def access_to(store: TrackerStore) -> StoreAccess:
    """How to check and write this store (as configured, wrappers included)."""
    primary = primary_store(store)
    if isinstance(primary, SQLTrackerStore):
        return SQLRows(store, primary)
    if isinstance(primary, InMemoryTrackerStore):
        return InMemoryText(store, primary)
    return StoreAccess(store)


@dataclass
class _Kept:
    tracker: DialogueStateTracker
    version: Hashable


class Trackers:
    """The trackers of the conversations this server relays for: loaded from the store, or kept while still current."""

    def __init__(self, max_kept: int = MAX_KEPT) -> None:
        self.max_kept = max_kept
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._access: Optional[StoreAccess] = None

    def _store(self, agent: Agent) -> StoreAccess:
        store = agent.tracker_store
        if self._access is None or self._access.store is not store:
            self._access = access_to(store)  # a new model or store: nothing kept applies
            self._kept.clear()
        return self._access

    def _version(self, agent: Agent, sender_id: str) -> Optional[Hashable]:
        try:
            return self._store(agent).version(sender_id)
        except Exception:  # the store is failing: load through Rasa's store, which reports it
            logger.debug("tracker store version unavailable; loading the tracker", exc_info=True)
            return None

    def _kept_if_current(self, sender_id: str, version: Optional[Hashable]) -> Optional[DialogueStateTracker]:
        kept = self._kept.pop(sender_id, None)
        if kept is None or version is None or kept.version != version:
            return None
        self._kept[sender_id] = kept  # most recently used
        return kept.tracker

    def may_be_handed_off(self, agent: Agent, sender_id: str) -> bool:
        """False only when the store tells cheaply that the conversation is not handed off (a bot turn then loads nothing).

        Read without the lock: a handoff starting meanwhile is Rasa's turn, and `HandoffPolicy`
        routes the message to the relay once it holds the lock.
        """
        if sender_id in self._kept:
            return True
        try:
            return self._store(agent).may_be_handed_off(sender_id)
        except Exception:  # the store is failing: the full path reports it
            logger.debug("tracker store cannot tell whether handed off; loading the tracker", exc_info=True)
            return True

    async def read(self, agent: Agent, sender_id: str) -> Optional[DialogueStateTracker]:
        """The conversation's tracker as stored now, without its lock: read it, do not change it."""
        if sender_id in self._kept:
            found = self._kept_if_current(sender_id, self._version(agent, sender_id))
            if found is not None:
                return found
        return await agent.tracker_store.retrieve(sender_id)

    @asynccontextmanager
    async def changing(self, agent: Agent, sender_id: str) -> AsyncIterator[Optional[DialogueStateTracker]]:
        """The conversation's tracker (None if there is none) under its lock, stored on the way out if it got new events.

        The lock is Rasa's lock store's, so relays, webhooks and Rasa's own turns of one
        conversation take turns on every replica; and while it is held no one else writes the
        conversation, so the version read first is the store's until this relay writes.
        """
        async with agent.lock_store.lock(sender_id, wait_time_in_seconds=LOCK_POLL_SECONDS):
            store = self._store(agent)
            version = self._version(agent, sender_id)
            kept = self._kept_if_current(sender_id, version)
            tracker = kept or await agent.tracker_store.retrieve(sender_id)
            before = len(tracker.events) if tracker is not None else 0
            try:
                yield tracker
            except BaseException:
                self._kept.pop(sender_id, None)  # possibly changed and not stored
                raise
            if tracker is None:
                return
            new_events = list(itertools.islice(tracker.events, before, None))
            if new_events:
                self._kept.pop(sender_id, None)  # until stored
                version = await store.append(tracker, new_events, version)
            elif kept is not None:
                return  # unchanged, and still what the store holds
            if _holds_as_stored(tracker, new_events) and version is not None:
                self._keep(sender_id, _Kept(tracker, version))

    def _keep(self, sender_id: str, kept: _Kept) -> None:
        self._kept[sender_id] = kept
        self._kept.move_to_end(sender_id)
        while len(self._kept) > self.max_kept:
            self._kept.popitem(last=False)

    def __len__(self) -> int:
        return len(self._kept)

    def forget(self, sender_id: str) -> Any:
        """Drop a kept tracker (tests; a store changed behind Rasa's back)."""
        return self._kept.pop(sender_id, None)


def _holds_as_stored(tracker: DialogueStateTracker, new_events: List[Event]) -> bool:
    """Whether a stored tracker is worth keeping and is what the store loads: handed off, one session.

    Stores load only the latest session (`SessionStarted` begins one when the bot resumes), so a
    tracker across two is not what they hold; and only handed-off conversations are relayed.
    """
    if any(isinstance(event, SessionStarted) for event in new_events):
        return False
    return handoff.chat_from_slots(tracker.current_slot_values()) is not None
