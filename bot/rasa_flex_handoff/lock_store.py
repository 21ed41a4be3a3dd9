"""Rasa's Redis lock store, made safe for several Rasa replicas.

Rasa 3.6's `RedisLockStore` changes a conversation's ticket lock by reading it, editing it in
Python and writing it back (GET, then SET or DEL). When two replicas do that at the same moment
(a Flex webhook on one, the visitor's message on the other) one overwrites the other: a ticket
is lost (its owner gets `LockError`, or two owners share the lock) or a finished ticket comes
back and everyone waits for it to expire, 60 s by default (RasaHQ/rasa#9213). Flex's webhook
times out meanwhile. This store makes every change one optimistic Redis transaction
(WATCH/MULTI/EXEC, redone on conflict), so tickets are issued, served and removed in order
across replicas. Same settings as Rasa's `redis` lock store:

    lock_store:
      type: rasa_flex_handoff.ReplicaSafeRedisLockStore
      url: <redis host>
      port: 6379
      db: 1
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Optional, Tuple, TypeVar

import redis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")
# What a change returns: the lock to store (None: delete it) and a result for the caller.
Change = Callable[[Optional[TicketLock]], Tuple[Optional[TicketLock], T]]


class ReplicaSafeRedisLockStore(RedisLockStore):
    """`RedisLockStore` whose ticket changes are atomic in Redis."""

    def __init__(self, endpoint_config: Optional[EndpointConfig] = None, **kwargs: Any) -> None:
        if endpoint_config is not None:  # Rasa builds custom lock stores from endpoints.yml this way
            kwargs = {"host": endpoint_config.url or "localhost", **endpoint_config.kwargs, **kwargs}
        super().__init__(**kwargs)

    def _change(self, conversation_id: str, change: Change[T]) -> T:
        key = self.key_prefix + conversation_id
        with self.red.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    lock = TicketLock.from_dict(json.loads(raw)) if raw else None
                    new, result = change(lock)
                    pipe.multi()
                    if new is None:
                        pipe.delete(key)
                    else:
                        pipe.set(key, new.dumps())
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue  # another replica changed this lock meanwhile: redo on its version

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        def issue(lock: Optional[TicketLock]) -> Tuple[Optional[TicketLock], int]:
            lock = lock or self.create_lock(conversation_id)
            return lock, lock.issue_ticket(lock_lifetime)

        logger.debug(f"Issuing ticket for conversation '{conversation_id}'.")
        try:
            return self._change(conversation_id, issue)
        except redis.RedisError as e:
            raise LockError(f"Error while acquiring lock. Error:\n{e}") from e

    def update_lock(self, conversation_id: str) -> None:
        def drop_expired(lock: Optional[TicketLock]) -> Tuple[Optional[TicketLock], None]:
            if lock is not None:
                lock.remove_expired_tickets()
            return lock, None

        self._change(conversation_id, drop_expired)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        def finish(lock: Optional[TicketLock]) -> Tuple[Optional[TicketLock], None]:
            if lock is not None:
                lock.remove_ticket_for(ticket_number)
            return lock, None

        self._change(conversation_id, finish)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Return the ticket, and delete the lock if nobody else holds one, in one step."""

        def finish_and_drop(lock: Optional[TicketLock]) -> Tuple[Optional[TicketLock], bool]:
            if lock is None:
                return None, False
            lock.remove_ticket_for(ticket_number)
            if lock.is_someone_waiting():
                return lock, False
            return None, True

        deleted = self._change(conversation_id, finish_and_drop)
        self._log_deletion(conversation_id, deleted)
