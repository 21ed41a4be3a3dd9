"""Kept trackers (bot/rasa_flex_handoff/trackers.py) against Rasa's real SQL (SQLite) and in-memory stores and lock store.

The property that matters: a relay never works on anything but what the store holds now. A
kept tracker is used only while no one else wrote the conversation; every other writer, a
failed change and a resumed bot make the next relay load from the store again, and the store
never gets a row twice.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Iterator, List

import pytest
from rasa.core.agent import Agent
from rasa.core.lock_store import InMemoryLockStore
from rasa.core.tracker_store import InMemoryTrackerStore, RedisTrackerStore, SQLTrackerStore, TrackerStore
from rasa.shared.core.events import BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from rasa_flex_handoff import chat_state, handoff
from rasa_flex_handoff.trackers import InMemoryText, SQLRows, StoreAccess, Trackers, access_to
from tests.unit.sessions import DOMAIN, handed_off

SENDER = "visitor-1"


def sql_store(path: Path) -> SQLTrackerStore:
    return SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(path / "trackers.db"))


@pytest.fixture(params=["sql", "in_memory"])
def agent(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Agent]:
    """An agent with a real store holding a handed-off conversation, and Rasa's in-memory lock store."""
    store: TrackerStore = sql_store(tmp_path) if request.param == "sql" else InMemoryTrackerStore(DOMAIN)
    found = Agent(domain=DOMAIN, tracker_store=store, lock_store=InMemoryLockStore())
    yield found


async def seed(agent: Agent) -> DialogueStateTracker:
    tracker = handed_off()
    await agent.tracker_store.save(tracker)
    return tracker


def relayed(text: str) -> UserUttered:
    return UserUttered(text, intent={"name": "handoff_relay", "confidence": 1.0})


async def record_relayed(trackers: Trackers, agent: Agent, text: str, sender_id: str = SENDER) -> DialogueStateTracker:
    """What a relay does to the tracker: the visitor's turn recorded under the lock; the tracker it changed."""
    async with trackers.changing(agent, sender_id) as tracker:
        assert tracker is not None
        tracker.update(relayed(text))
    return tracker


def texts(tracker: DialogueStateTracker) -> List[str]:
    return [e.text for e in tracker.events if isinstance(e, (UserUttered, BotUttered)) and e.text]


async def test_a_changed_handed_off_tracker_is_saved_and_kept_for_the_next_relay(agent: Agent) -> None:
    await seed(agent)
    trackers = Trackers()
    tracker = await record_relayed(trackers, agent, "first")
    async with trackers.changing(agent, SENDER) as again:
        assert again is tracker  # not loaded again: the store still holds exactly it
        again.update(relayed("second"))
    stored = await agent.tracker_store.retrieve(SENDER)
    assert stored is not None and texts(stored)[-2:] == ["first", "second"]


async def test_another_writer_makes_the_next_relay_load_the_store(agent: Agent) -> None:
    await seed(agent)
    trackers = Trackers()
    tracker = await record_relayed(trackers, agent, "mine")
    # Another replica (or Rasa's own turn) writes the conversation meanwhile.
    theirs = await agent.tracker_store.retrieve(SENDER)
    assert theirs is not None
    theirs.update(BotUttered("Alice: from the other replica"))
    await agent.tracker_store.save(theirs)
    async with trackers.changing(agent, SENDER) as current:
        assert current is not None and current is not tracker
        assert texts(current)[-2:] == ["mine", "Alice: from the other replica"]
        current.update(relayed("after"))
    stored = await agent.tracker_store.retrieve(SENDER)
    assert stored is not None and texts(stored)[-3:] == ["mine", "Alice: from the other replica", "after"]
    assert (await trackers.read(agent, SENDER)) is current


async def test_a_change_that_fails_is_not_kept(agent: Agent) -> None:
    await seed(agent)
    trackers = Trackers()
    await record_relayed(trackers, agent, "saved")
    with pytest.raises(RuntimeError):
        async with trackers.changing(agent, SENDER) as tracker:
            assert tracker is not None
            tracker.update(relayed("never saved"))
            raise RuntimeError("the relay failed half way")
    async with trackers.changing(agent, SENDER) as tracker:
        assert tracker is not None
        assert texts(tracker)[-1] == "saved"


async def test_a_resumed_bot_is_not_kept_and_no_row_is_stored_twice(agent: Agent, tmp_path: Path) -> None:
    await seed(agent)
    trackers = Trackers()
    await record_relayed(trackers, agent, "before the close")
    async with trackers.changing(agent, SENDER) as tracker:
        assert tracker is not None
        slots = tracker.current_slot_values()
        for name, value in handoff.cleared_slots().items():
            tracker.update(SlotSet(name, value))
        tracker.update_with_events(chat_state.new_session(slots), DOMAIN)  # what the bot's resume records
    assert len(trackers) == 0
    async with trackers.changing(agent, SENDER) as tracker:
        assert tracker is not None
        if (tmp_path / "trackers.db").exists():
            assert "before the close" not in texts(tracker)  # the SQL store loads the new session only
        tracker.update(UserUttered("back with the bot", intent={"name": "greet"}))
    if (tmp_path / "trackers.db").exists():  # the SQL store: every row once
        rows = sqlite3.connect(tmp_path / "trackers.db").execute("SELECT data FROM events WHERE sender_id = ?", (SENDER,))
        said = [json.loads(data).get("text") for (data,) in rows if json.loads(data).get("event") == "user"]
        assert said.count("before the close") == 1 and said.count("back with the bot") == 1
    stored = await agent.tracker_store.retrieve(SENDER)
    assert stored is not None and texts(stored)[-1] == "back with the bot"
    assert texts(stored).count("before the close") <= 1


async def test_a_conversation_not_handed_off_is_not_kept(agent: Agent) -> None:
    tracker = DialogueStateTracker(SENDER, DOMAIN.slots)
    tracker.update(UserUttered("hello", intent={"name": "greet"}))
    await agent.tracker_store.save(tracker)
    trackers = Trackers()
    async with trackers.changing(agent, SENDER) as found:
        assert found is not None
        found.update(BotUttered("Hi"))
    assert len(trackers) == 0


async def test_an_unknown_conversation_is_none(agent: Agent) -> None:
    trackers = Trackers()
    async with trackers.changing(agent, "nobody") as tracker:
        assert tracker is None
    assert await trackers.read(agent, "nobody") is None


async def test_at_most_max_kept_trackers_are_kept(agent: Agent) -> None:
    trackers = Trackers(max_kept=2)
    for n in range(3):
        tracker = handed_off()
        tracker.sender_id = f"visitor-{n}"
        await agent.tracker_store.save(tracker)
        await record_relayed(trackers, agent, f"line {n}", tracker.sender_id)
    assert len(trackers) == 2
    assert trackers.forget("visitor-0") is None  # the least recently used went first


def test_each_store_has_its_access(tmp_path: Path) -> None:
    assert isinstance(access_to(sql_store(tmp_path)), SQLRows)
    assert isinstance(access_to(InMemoryTrackerStore(DOMAIN)), InMemoryText)
    # Rasa's Redis store has no cheap version: its trackers are loaded on every relay.
    assert type(access_to(RedisTrackerStore(DOMAIN, host="127.0.0.1", port=1))) is StoreAccess


def rows(db: Path, sender_id: str) -> List[tuple]:
    query = "SELECT type_name, timestamp, intent_name, action_name, data FROM events WHERE sender_id = ? ORDER BY id"
    return list(sqlite3.connect(db).execute(query, (sender_id,)))


async def test_relayed_rows_are_the_rows_rasa_writes(tmp_path: Path) -> None:
    """The relay inserts its new events itself: the same columns Rasa's SQL store writes, so its queries find them."""
    ours = sql_store(tmp_path)
    rasa_own = SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "rasa.db"))
    agent = Agent(domain=DOMAIN, tracker_store=ours, lock_store=InMemoryLockStore())
    tracker = handed_off()
    await ours.save(tracker)
    await rasa_own.save(tracker)
    new = [relayed("where is my parcel?"), BotUttered("Alice: on its way", metadata={"handoff": {"message_sid": "IM9"}})]
    new.append(SlotSet(handoff.LAST_INDEX_SLOT, 4.0))
    trackers = Trackers()
    async with trackers.changing(agent, SENDER) as changed:
        assert changed is not None
        changed.update_with_events(new, DOMAIN, override_timestamp=False)
    theirs = await rasa_own.retrieve(SENDER)  # as Rasa's processor would: loaded, changed, saved
    assert theirs is not None
    theirs.update_with_events(new, DOMAIN, override_timestamp=False)
    await rasa_own.save(theirs)
    assert rows(tmp_path / "trackers.db", SENDER) == rows(tmp_path / "rasa.db", SENDER)
    loaded = await ours.retrieve(SENDER)
    assert loaded is not None and loaded.current_slot_values() == theirs.current_slot_values()


async def test_with_an_event_broker_rasa_saves_and_publishes(tmp_path: Path) -> None:
    """Rasa's own save runs when an event broker is configured, so every relayed event is published."""
    from rasa.core.brokers.sql import SQLEventBroker

    broker = SQLEventBroker(db=str(tmp_path / "broker.db"))
    store = SQLTrackerStore(DOMAIN, event_broker=broker, dialect="sqlite", db=str(tmp_path / "trackers.db"))
    agent = Agent(domain=DOMAIN, tracker_store=store, lock_store=InMemoryLockStore())
    await store.save(handed_off())
    trackers = Trackers()
    for text in ("one", "two"):
        await record_relayed(trackers, agent, text)
    published = [json.loads(data) for (data,) in sqlite3.connect(tmp_path / "broker.db").execute("SELECT data FROM events")]
    assert [e.get("text") for e in published if e.get("event") == "user"][-2:] == ["one", "two"]


async def test_relays_of_many_conversations_commit_together(tmp_path: Path) -> None:
    """Group commit: relays waiting on the store at once share one transaction, and each row lands once."""
    import asyncio

    import sqlalchemy as sa

    store = sql_store(tmp_path)
    agent = Agent(domain=DOMAIN, tracker_store=store, lock_store=InMemoryLockStore())
    senders = [f"visitor-{n}" for n in range(20)]
    for sender in senders:
        tracker = handed_off()
        tracker.sender_id = sender
        await store.save(tracker)
    commits: List[int] = []
    sa.event.listen(store.engine, "commit", lambda _connection: commits.append(1))
    trackers = Trackers()

    await asyncio.gather(*(record_relayed(trackers, agent, f"from {sender}", sender) for sender in senders))
    assert len(commits) < len(senders) / 2
    for sender in senders:
        said = [json.loads(data).get("text") for (_, _, _, _, data) in rows(tmp_path / "trackers.db", sender)]
        assert said.count(f"from {sender}") == 1


async def test_the_sql_store_tells_a_conversation_that_is_not_handed_off_without_loading_it(tmp_path: Path) -> None:
    store = sql_store(tmp_path)
    agent = Agent(domain=DOMAIN, tracker_store=store, lock_store=InMemoryLockStore())
    trackers = Trackers()
    assert not trackers.may_be_handed_off(agent, "nobody")
    chatting = DialogueStateTracker("chatting", DOMAIN.slots)
    chatting.update(UserUttered("hello", intent={"name": "greet"}))
    await store.save(chatting)
    assert not trackers.may_be_handed_off(agent, "chatting")
    await store.save(handed_off())
    assert trackers.may_be_handed_off(agent, SENDER)
    async with trackers.changing(agent, SENDER) as tracker:  # the bot resumes: the chat slot is cleared
        assert tracker is not None
        tracker.update_with_events([SlotSet(name, value) for name, value in handoff.cleared_slots().items()], DOMAIN)
    assert not trackers.may_be_handed_off(agent, SENDER)
    # Stores without such a query cannot tell: the relay loads the tracker.
    memory = Agent(domain=DOMAIN, tracker_store=InMemoryTrackerStore(DOMAIN), lock_store=InMemoryLockStore())
    assert Trackers().may_be_handed_off(memory, "nobody")
