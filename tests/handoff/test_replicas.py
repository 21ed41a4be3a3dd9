"""Rasa replicas behind one public URL, sharing real stores (issue 4, "Stateless and safe"; issue 13, faults).

Topology (all real processes, logs in tests/.output/logs/replicas/):

    visitor (socket.io, websocket) ──> replica A ─┐   PostgreSQL: tracker store
                                                  ├─ Redis: lock store (db 1), socket.io pub/sub (REDIS_URL, db 2)
    Flex sandbox ── webhooks ──> nginx ─────> B ──┘
                          (the public URL)
                                      └──> C  (same stores, but started without REDIS_URL)

nginx is the public URL: socket.io (websocket upgrade) and everything else go to an upstream of
A and B, Flex's webhook route to the replicas a test routes it to (a config reload).

The lock store is `rasa_flex_handoff.ReplicaSafeRedisLockStore`: with Rasa's own `redis`
lock store, replicas that take a conversation's lock at the same moment lose or resurrect
tickets, and a webhook can wait 60 s for the lock (the first test here shows the safe one holds).

Every replica has the same PUBLIC_URL: nginx, which forwards Flex's webhooks to the
replica a test picks. The visitor's socket lives on A only, so an agent message that B handles
must travel B -> Redis pub/sub -> A to reach them. Only the action server (which creates the Flex
chat) depends on FLEX_MODE, so the replicas reach one action server per mode through a
forwarder, switched per test.

The fault tests at the end stop Redis mid-handoff and kill (SIGKILL) the replica holding a
visitor's socket behind nginx; see their docstrings.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tarfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import redis
from rasa.core.lock_store import LockError
from rasa.core.tracker_store import SQLTrackerStore

from northwind.processes import VENV_BIN, ServerProcess, free_port, wait_for
from northwind.servers import AgentDesk, base_env, flat, off_contract
from rasa_flex_handoff.lock_store import ReplicaSafeRedisLockStore
from tests.handoff.conftest import MODES, Visitor, handed_off
from tests.handoff.services import Nginx, PostgresServer, RedisServer

# Three Rasa servers start in parallel on what may be a 2-CPU machine: give them time.
RASA_STARTUP = 420
# How long the visitor on A is watched for a message that must NOT arrive. The replica that
# handled the webhook has already recorded and emitted it by then; Redis delivers in milliseconds.
NOT_DELIVERED_WAIT = 3
# Seconds a conversation's lock ticket lives (Rasa's TICKET_LOCK_LIFETIME) on the replicas: longer than
# the sandbox's three webhook attempts of 5 s (FLEX_SANDBOX_WEBHOOK_TIMEOUT), so a webhook waiting behind
# a killed replica's ticket is given up by the sandbox and only the catch-up brings it.
LOCK_LIFETIME = 20
# How long the kill test waits for anything after the kill: the killed replica's ticket expires first.
AFTER_KILL = LOCK_LIFETIME + 30
# How long Redis stays down after the first 503: longer than the sandbox's retry delays (3 x 0.2 s).
OUTAGE_AFTER_503 = 1.0
# The replicas' tracker store database in the test's PostgreSQL.
TRACKER_DB = "trackers"
# Headers a forwarding proxy sets itself.
HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "date", "server"}


class LoadBalancer:
    """One URL in front of several servers: forwards each POST to the server `target` names, noting who got it."""

    def __init__(self) -> None:
        self.target: Optional[str] = None
        self.hits: List[Tuple[str, str, int]] = []  # (replica URL, path, status)
        balancer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                balancer.forward(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> LoadBalancer:
        self.thread.start()
        return self

    @staticmethod
    def read_body(handler: BaseHTTPRequestHandler) -> bytes:
        if handler.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        body = b""
        while True:
            size = int(handler.rfile.readline().split(b";")[0], 16)
            if size == 0:
                handler.rfile.readline()  # the blank line after the last chunk (no trailers here)
                return body
            body += handler.rfile.read(size + 2)[:size]  # each chunk ends with CRLF

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        target = self.target
        body = self.read_body(handler)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        request = urllib.request.Request(f"{target}{handler.path}", data=body, headers=headers, method=handler.command)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                status, reply_headers, payload = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, reply_headers, payload = e.code, e.headers, e.read()
        except OSError:
            status, reply_headers, payload = 502, None, b""
        self.hits.append((str(target), handler.path, status))
        try:
            handler.send_response(status)
            for key, value in reply_headers.items() if reply_headers else []:
                if key.lower() not in HOP_BY_HOP:
                    handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller gave up waiting (Flex times a webhook out); it retries on its own

    def hits_on(self, target: str) -> List[Tuple[str, str, int]]:
        return [hit for hit in self.hits if hit[0] == target]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Replica:
    """One Rasa server of the cluster; quacks like `Stack` for `handed_off` (tracker + sandbox)."""

    def __init__(self, name: str, sandbox: AgentDesk, process: ServerProcess, port: int) -> None:
        self.name = name
        self.sandbox = sandbox
        self.process = process
        self.port = port
        self.address = f"127.0.0.1:{port}"  # as nginx names its upstream
        self.url = f"http://127.0.0.1:{port}"

    def tracker(self, sender_id: str) -> Dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/conversations/{sender_id}/tracker", timeout=10) as r:
            return json.loads(r.read())

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")


class Cluster:
    """Redis, PostgreSQL, nginx (the public URL), action servers per Flex mode and replicas A, B (REDIS_URL set) and C (unset)."""

    def __init__(
        self,
        sandbox: AgentDesk,
        redis_server: RedisServer,
        postgres: PostgresServer,
        nginx: Nginx,
        action_router: LoadBalancer,
        actions: Dict[str, ServerProcess],
        action_urls: Dict[str, str],
        replicas: Dict[str, Replica],
    ) -> None:
        self.sandbox = sandbox
        self.redis_server = redis_server
        self.postgres = postgres
        self.nginx = nginx
        self.action_router = action_router
        self.actions = actions
        self.action_urls = action_urls
        self.a, self.b, self.c = replicas["a"], replicas["b"], replicas["c"]
        self.replicas = [self.a, self.b, self.c]

    def route(self, mode: str, webhooks_to: Replica, *more: Replica) -> None:
        """Chats are created in Flex `mode`; Flex's webhooks (sent to PUBLIC_URL, nginx) land on `webhooks_to` (and `more`)."""
        self.action_router.target = self.action_urls[mode]
        targets = [webhooks_to, *more]
        self.nginx.route("+".join(r.name for r in targets), [r.port for r in targets])

    def hits_on(self, replica: Replica, since: int = 0) -> List[Tuple[List[str], List[str], int]]:
        """The webhook requests nginx passed to `replica` (alone or after another upstream failed)."""
        return [hit for hit in self.nginx.hits()[since:] if replica.address in hit[0]]

    def redis(self, db: int) -> redis.Redis:
        return self.redis_server.client(db)

    def events(self, sender_id: str, type_name: str) -> List[Dict[str, Any]]:
        """The conversation's events of one type, as the SQL tracker store holds them in PostgreSQL."""
        rows = self.postgres.query(
            TRACKER_DB, "SELECT data FROM events WHERE sender_id = %s AND type_name = %s", sender_id, type_name
        )
        return [json.loads(str(row[0])) for row in rows]

    def revive(self) -> None:
        """Start again any replica a fault test killed (a no-op when all run)."""
        for replica in self.replicas:
            if replica.process.proc is not None and replica.process.proc.poll() is not None:
                replica.process.start()

    def logs(self) -> str:
        processes = [*(r.process for r in self.replicas), *self.actions.values(), self.sandbox.process]
        processes += [p for p in (self.redis_server.process, self.postgres.process, self.nginx.process) if p is not None]
        return "\n".join(f"--- {p.name} ---\n{p.tail(60)}" for p in processes)


@pytest.fixture(scope="module")
def log_dir(output_dir: Path) -> Path:
    path = output_dir / "logs" / "replicas"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="module")
def redis_server(log_dir: Path) -> Iterator[RedisServer]:
    """A throwaway Redis on a free port: no RDB snapshots, no AOF, healthy once it answers PING."""
    server = RedisServer(log_dir).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_port(redis_server: RedisServer) -> int:
    return redis_server.port


@pytest.fixture(scope="module")
def postgres(log_dir: Path) -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster holding the replicas' tracker store, its tables made before any replica starts.

    Three replicas creating the tables at once would race (PostgreSQL: duplicate type names), so
    Rasa's SQLTrackerStore makes them here once; the replicas then find them.
    """
    server = PostgresServer(log_dir).start()
    try:
        server.create_database(TRACKER_DB)
        SQLTrackerStore(
            dialect="postgresql",
            host="127.0.0.1",
            port=server.port,
            db=TRACKER_DB,
            username=server.user,
            password=server.password,
        ).engine.dispose()
        yield server
    finally:
        server.stop()


def stable_copy(model: Path, into: Path) -> Path:
    """Copy the model and check the archive is whole: a `rasa train` elsewhere rewrites it in place."""
    copy = into / model.name

    def complete() -> bool:
        shutil.copyfile(model, copy)
        with tarfile.open(copy) as archive:
            archive.getmembers()  # reads the whole gzip stream
        return True

    wait_for(complete, 120, f"a complete copy of {model}", interval=1)
    return copy


def start_all(processes: List[ServerProcess]) -> None:
    """Start the processes in parallel (Rasa spends its ~40 s startup mostly on one core)."""
    errors: List[BaseException] = []

    def run(process: ServerProcess) -> None:
        try:
            process.start()
        except BaseException as e:  # noqa: BLE001 - reported below, after every start has finished
            errors.append(e)

    threads = [threading.Thread(target=run, args=(p,)) for p in processes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for p in processes:
            p.stop()
        raise errors[0]


@pytest.fixture(scope="module")
def cluster(
    sandbox: AgentDesk,
    handoff_model: Path,
    log_dir: Path,
    redis_server: RedisServer,
    postgres: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("replicas")
    model = stable_copy(handoff_model, workdir)
    action_router = LoadBalancer().start()
    ports = {name: free_port() for name in ("a", "b", "c")}
    # The public URL: socket.io and the rest to A and B; webhooks to A until a test routes them.
    nginx = Nginx(log_dir, workdir, [ports["a"], ports["b"]]).start("a", [ports["a"]])
    started: List[ServerProcess] = []
    redis_port = redis_server.port
    try:
        # A replica killed inside a conversation's lock leaves its ticket behind until it expires
        # (Rasa's TICKET_LOCK_LIFETIME, 60 s by default): the kill test waits that out.
        env = {**base_env(sandbox.url), "PUBLIC_URL": nginx.url, "TICKET_LOCK_LIFETIME": str(LOCK_LIFETIME)}
        credentials = workdir / "credentials.yml"
        endpoints = workdir / "endpoints.yml"
        credentials.write_text(
            "rasa_flex_handoff.SocketIOInput:\n"
            "  session_persistence: true\n"
            "  socketio_path: /socket.io\n"
            "rasa_flex_handoff.RestInput: {}\n"
        )
        endpoints.write_text(
            f"action_endpoint:\n  url: {action_router.url}/webhook\n"
            f"tracker_store:\n  type: SQL\n  dialect: postgresql\n  url: 127.0.0.1\n  port: {postgres.port}\n"
            f"  db: {TRACKER_DB}\n  username: {postgres.user}\n  password: {postgres.password}\n"
            f"lock_store:\n  type: rasa_flex_handoff.ReplicaSafeRedisLockStore\n"
            f"  url: 127.0.0.1\n  port: {redis_port}\n  db: 1\n"
        )
        actions: Dict[str, ServerProcess] = {}
        action_urls: Dict[str, str] = {}
        for mode in MODES:
            action_urls[mode] = f"http://127.0.0.1:{free_port()}"
            actions[mode] = ServerProcess(
                f"actions-{mode}",
                [str(VENV_BIN / "rasa"), "run", "actions", "--port", action_urls[mode].rsplit(":", 1)[1], "--actions", "actions"],
                f"{action_urls[mode]}/health",
                log_dir,
                env={**env, "FLEX_MODE": mode},
                startup_timeout=RASA_STARTUP,
            )
        socket_redis = f"redis://127.0.0.1:{redis_port}/2"
        replicas: Dict[str, Replica] = {}
        for name, redis_url in (("a", socket_redis), ("b", socket_redis), ("c", "")):
            port = ports[name]
            process = ServerProcess(
                f"rasa-{name}",
                [
                    str(VENV_BIN / "rasa"),
                    "run",
                    "--enable-api",
                    "-m",
                    str(model),
                    "--credentials",
                    str(credentials),
                    "--endpoints",
                    str(endpoints),
                    "--port",
                    str(port),
                    "--interface",
                    "127.0.0.1",
                ],
                f"http://127.0.0.1:{port}/status",
                log_dir,
                env={**env, "REDIS_URL": redis_url},
                startup_timeout=RASA_STARTUP,
            )
            replicas[name] = Replica(name, sandbox, process, port)
        started += [*actions.values(), *(r.process for r in replicas.values())]
        start_all(started)
        yield Cluster(sandbox, redis_server, postgres, nginx, action_router, actions, action_urls, replicas)
    finally:
        for process in reversed(started):
            process.stop()
        nginx.stop()
        action_router.stop()


def test_the_lock_store_serves_contending_replicas_in_turn(redis_port: int) -> None:
    """Three lock store clients (as three replicas) take one conversation's lock over and over.

    Rasa's `RedisLockStore` fails this within seconds: tickets are lost or come back, so a
    taker gets LockError or waits for a stale ticket to expire (60 s).
    """
    r = redis.Redis(host="127.0.0.1", port=redis_port, db=3)
    r.delete("inside")
    results: List[Dict[str, Any]] = []

    def replica() -> None:
        store = ReplicaSafeRedisLockStore(host="127.0.0.1", port=redis_port, db=1, key_prefix="contention")
        stats = {"taken": 0, "lock_errors": 0, "overlaps": 0, "longest_wait": 0.0}

        async def contend() -> None:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                asked = time.monotonic()
                try:
                    async with store.lock("one-conversation", wait_time_in_seconds=0.01):
                        stats["longest_wait"] = max(stats["longest_wait"], time.monotonic() - asked)
                        if r.incr("inside") > 1:
                            stats["overlaps"] += 1
                        try:
                            await asyncio.sleep(0.002)
                        finally:
                            r.decr("inside")
                        stats["taken"] += 1
                except LockError:
                    stats["lock_errors"] += 1

        asyncio.run(contend())
        results.append(stats)

    threads = [threading.Thread(target=replica, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 3, "a lock taker hung"
    assert all(s["lock_errors"] == 0 and s["overlaps"] == 0 for s in results), results
    # Everyone got its turn often, and nobody waited long (Flex gives a webhook 5 s at most).
    assert all(s["taken"] >= 20 and s["longest_wait"] < 2 for s in results), results
    assert not r.keys("contention:lock:*")  # the last one out deleted the lock


@pytest.fixture
def visitor_on_a(cluster: Cluster) -> Iterator[Visitor]:
    cluster.revive()
    v = Visitor(cluster.a.url)
    yield v
    v.close()


def agent_turns(tracker: Dict[str, Any], text: str) -> List[Dict[str, Any]]:
    return [
        e
        for e in tracker["events"]
        if e.get("event") == "bot"
        and ((e.get("metadata") or {}).get("handoff") or {}).get("role") == "agent"
        and e["metadata"]["handoff"].get("body") == text
    ]


def delivered_line(channel_sid: str) -> str:
    return f"agent message delivered for Flex chat {channel_sid}"


@pytest.mark.parametrize("mode", MODES)
def test_agent_messages_reach_the_visitor_through_redis_from_the_other_replica(
    cluster: Cluster, visitor_on_a: Visitor, mode: str
) -> None:
    a, b, desk, visitor = cluster.a, cluster.b, cluster.sandbox, visitor_on_a
    cluster.route(mode, webhooks_to=b)  # B never sees the visitor's socket
    hits_before = len(cluster.nginx.hits())
    assert visitor.transport == "websocket"
    try:
        visitor.say("/greet")
        visitor.wait_for_text("Northwind assistant")
        # A's socket.io server listens on the Redis channel; B has only published so far (or not at all).
        assert cluster.redis(2).pubsub_numsub("socketio")[0][1] >= 1
        # The conversation lives in the shared PostgreSQL tracker store, not in A's memory (saved after the reply is sent).
        wait_for(lambda: cluster.events(str(visitor.session_id), "user"), 10, "the visitor's turn in PostgreSQL")

        start = len(visitor.messages)
        task = handed_off(a, visitor)
        desk.accept(task["sid"])
        visitor.wait_for(lambda m: m.get("event") == "agent_joined", "agent joined notice (via B and Redis)", start=start)

        text = f"hello from the agent, via replica B ({mode})"
        desk.send(task["sid"], text)
        message = visitor.wait_for(lambda m: m.get("text") == text, "agent message on A")
        assert message["sender"] == "agent" and message["message_sid"].startswith("IM")

        # Every replica reads the sandbox's typing feed; only A, which holds the socket, emits it.
        typing_posts = []

        def agent_types() -> List[Dict[str, Any]]:
            desk.typing(task["sid"])
            typing_posts.append(1)
            return visitor.agent_typing

        wait_for(agent_types, 15, "agent typing at the visitor on A", interval=0.5)

        # The webhooks really went to B, and B (not A) recorded and emitted the message.
        hits = cluster.nginx.hits()[hits_before:]
        assert hits and all(upstreams == [b.address] and status == 204 for upstreams, _, status in hits), hits
        assert delivered_line(task["channel_sid"]) in b.log() and delivered_line(task["channel_sid"]) not in a.log()

        visitor.say("visitor again, on replica A")
        wait_for(
            lambda: any(m["body"] == "visitor again, on replica A" for m in desk.transcript(task["sid"])),
            15,
            "visitor's next message at the agent",
        )

        start = len(visitor.messages)
        desk.end(task["sid"])
        visitor.wait_for(lambda m: m.get("event") == "chat_closed", "chat closed notice (via B and Redis)", start=start)
        visitor.wait_for(lambda m: m.get("event") == "bot_resumed", "bot back notice (via B and Redis)", start=start)
        assert a.tracker(visitor.session_id)["slots"]["handoff_status"] is None

        start = len(visitor.messages)
        visitor.say("/ask_payment")
        visitor.wait_for_text("Visa", start=start)

        # Delivered and recorded exactly once (checked last, so a late duplicate would have shown up),
        # whichever replica reads the shared tracker store.
        assert [m.get("text") for m in visitor.messages].count(text) == 1
        assert 1 <= len(visitor.agent_typing) <= len(typing_posts)  # B's feed did not emit it too
        for replica in (a, b):
            assert len(agent_turns(replica.tracker(visitor.session_id), text)) == 1
    except (AssertionError, TimeoutError) as e:
        raise AssertionError(f"{e}\n{cluster.logs()}") from None


def test_without_redis_the_replica_with_the_webhook_cannot_reach_the_socket(cluster: Cluster, visitor_on_a: Visitor) -> None:
    """Negative control: the same scenario with Flex's webhooks landing on C, started without REDIS_URL.

    Without the Redis manager, python-socketio emits only to sockets of its own process. C has no
    socket in the visitor's room (the visitor is connected to A), so C records the agent message in
    the shared tracker store and then emits it to nobody. A's setting does not matter: nothing is
    published for it to hear. (In the other direction Redis is not involved: A relays the visitor's
    message to Flex over HTTP.) This is what the positive test would see without REDIS_URL, and it
    shows that Redis is what carries the message there.
    """
    a, c, desk, visitor = cluster.a, cluster.c, cluster.sandbox, visitor_on_a
    cluster.route("conversations", webhooks_to=c)
    try:
        task = handed_off(a, visitor)
        desk.accept(task["sid"])
        desk.send(task["sid"], "lost without redis")
        text = "lost without redis"
        wait_for(lambda: agent_turns(a.tracker(visitor.session_id), text), 15, "agent message in the tracker (written by C)")
        assert delivered_line(task["channel_sid"]) in c.log()
        assert cluster.hits_on(c)
        with pytest.raises(TimeoutError):
            visitor.wait_for(lambda m: m.get("text") == text, "agent message that must not arrive", timeout=NOT_DELIVERED_WAIT)
        assert not any(m.get("sender") == "agent" or m.get("event") == "agent_joined" for m in visitor.messages)

        # Visitor -> agent still works (A relays over HTTP); the agent closes the chat, the bot takes over.
        visitor.say("can anyone hear me?")
        wait_for(lambda: any(m["body"] == "can anyone hear me?" for m in desk.transcript(task["sid"])), 15, "relayed")
        desk.end(task["sid"])
        wait_for(lambda: a.tracker(visitor.session_id)["slots"]["handoff_status"] is None, 15, "handoff cleared by C")
    except (AssertionError, TimeoutError) as e:
        raise AssertionError(f"{e}\n{cluster.logs()}") from None


# ---------------------------------------------------------------------------------------------
# Faults mid-handoff (issue 13): Redis restarting, and a replica killed behind nginx.
# ---------------------------------------------------------------------------------------------


def agent_texts(messages: List[Dict[str, Any]]) -> List[str]:
    return [m["text"] for m in messages if m.get("sender") == "agent" and m.get("message_sid")]


def transcript_bodies(desk: AgentDesk, task_sid: str) -> List[str]:
    return [m["body"] for m in desk.transcript(task_sid)]


def exchange(desk: AgentDesk, visitor: Visitor, task_sid: str, visitor_line: str, agent_line: str) -> None:
    """One message each way through the handoff, each waited for where it lands (the agent's transcript, the visitor)."""
    visitor.say(visitor_line)
    wait_for(lambda: visitor_line in transcript_bodies(desk, task_sid), 15, f"visitor message {visitor_line!r} at the agent")
    desk.send(task_sid, agent_line)
    visitor.wait_for(lambda m: m.get("text") == agent_line, f"agent message {agent_line!r}")


def agent_events(cluster: Cluster, sender_id: str, text: str) -> List[Dict[str, Any]]:
    """Agent turns with this text in PostgreSQL (all sessions, as the store holds them)."""
    return [e for e in cluster.events(sender_id, "bot") if ((e.get("metadata") or {}).get("handoff") or {}).get("body") == text]


def visitor_events(cluster: Cluster, sender_id: str, text: str) -> List[Dict[str, Any]]:
    return [e for e in cluster.events(sender_id, "user") if e.get("text") == text]


def rest_turn(replica: Replica, sender: str, text: str) -> List[Dict[str, Any]]:
    """One turn on the REST channel of `replica`."""
    request = urllib.request.Request(
        f"{replica.url}/webhooks/handoff_rest/webhook",
        data=json.dumps({"sender": sender, "message": text}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=15) as r:
        return json.loads(r.read())


def replica_logs_since(cluster: Cluster, marks: Dict[str, int]) -> str:
    return "".join(r.log()[marks[r.name] :] for r in cluster.replicas)


# Sanic 21.12 logs this traceback whenever a socket.io websocket closes (found before issue 13, not ours).
WEBSOCKET_CLOSE_NOISE = "Invalid response type None (need HTTPResponse)"


def tracebacks(log: str) -> List[str]:
    """The traceback blocks in a log (each from "Traceback" to its exception line), but Sanic's websocket-close one."""
    blocks, current = [], None
    for line in log.splitlines():
        if line.startswith("Traceback"):
            current = [line]
        elif current is not None:
            current.append(line)
            if not line.startswith(" "):  # the exception line ends the block
                blocks.append("\n".join(current))
                current = None
    return [b for b in blocks if WEBSOCKET_CLOSE_NOISE not in b]


def test_redis_restarting_mid_handoff_loses_and_repeats_nothing(cluster: Cluster, visitor_on_a: Visitor) -> None:
    """Redis (lock store and socket.io pub/sub) stops during a handoff and starts again (empty: it keeps no data).

    While it is down, the visitor's message cannot take the conversation's lock: it is not
    relayed, and the visitor is told so in the bot's words (`utter_handoff_relay_failed`, from the
    replica holding their socket, without Redis). The agent's message's webhook waits for the lock
    store, is answered 503 (nginx's log shows it), and the sandbox's retry, after Redis is back,
    records and delivers it. The visitor sends theirs again; pub/sub comes back, so a webhook on
    B reaches the visitor on A again; the agent ends the chat and the bot answers. Each message
    reaches the other side once and is recorded once; no replica logs a traceback.

    Webhooks go to A, the replica holding the socket, during the outage: a replica only hears
    Redis again once its subscription is back (python-socketio retries it after 1, 2, 4... s), so
    what B publishes meanwhile reaches nobody (our widget reloads the history on reconnect).
    """
    a, b, desk, visitor = cluster.a, cluster.b, cluster.sandbox, visitor_on_a
    cluster.route("conversations", webhooks_to=a)
    marks = {r.name: len(r.log()) for r in cluster.replicas}
    # Replicas subscribe to Redis once a socket connects to them (python-socketio starts its listener then).
    subscribed = cluster.redis(2).pubsub_numsub("socketio")[0][1]
    during, agent_during, agent_after = "sent while redis is down", "agent, while redis is down", "agent, via B after redis"
    try:
        task = handed_off(a, visitor)
        desk.accept(task["sid"])
        visitor.wait_for(lambda m: m.get("event") == "agent_joined", "agent joined notice")
        exchange(desk, visitor, task["sid"], "before the outage", "agent, before the outage")

        cluster.redis_server.stop()
        start = len(visitor.messages)
        visitor.say(during)
        notice = visitor.wait_for(lambda m: m.get("event") == "relay_failed", "relay failed notice", start=start, timeout=10)
        assert "could not be delivered" in notice["text"] and not off_contract(notice["wire"]), notice
        # A REST visitor's turn meanwhile is answered 503 (try again), not 500 with a traceback.
        with pytest.raises(urllib.error.HTTPError) as refused:
            rest_turn(a, "rest-visitor-during-the-outage", "hello")
        assert refused.value.code == 503

        hits_before = len(cluster.nginx.hits())
        desk.send(task["sid"], agent_during)
        wait_for(
            lambda: any(status == 503 for _, _, status in cluster.nginx.hits()[hits_before:]),
            20,
            "a webhook answered 503 while the lock store is down",
        )
        assert during not in transcript_bodies(desk, task["sid"])  # not relayed: the visitor was told
        # The outage outlasts the sandbox's retries (0.2 s, then 0.4 s later): without the route's wait
        # for the lock store, the event would be given up. A fault's duration, not a wait for a condition.
        time.sleep(OUTAGE_AFTER_503)
        cluster.redis_server.start()

        visitor.wait_for(lambda m: m.get("text") == agent_during, "agent message, retried by the sandbox after the 503")
        visitor.say(during)  # sent again, as the notice asked
        wait_for(lambda: during in transcript_bodies(desk, task["sid"]), 15, "the visitor's message sent again")

        # A's subscription is back (python-socketio retries it): a webhook handled by B reaches the visitor on A again.
        wait_for(lambda: cluster.redis(2).pubsub_numsub("socketio")[0][1] >= subscribed, 90, "A subscribed again")
        cluster.route("conversations", webhooks_to=b)
        desk.send(task["sid"], agent_after)
        visitor.wait_for(lambda m: m.get("text") == agent_after, "agent message via B after the outage")

        start = len(visitor.messages)
        desk.end(task["sid"])
        visitor.wait_for(lambda m: m.get("event") == "bot_resumed", "bot back", start=start)
        start = len(visitor.messages)
        visitor.say("/ask_payment")
        visitor.wait_for_text("Visa", start=start)

        sender = str(visitor.session_id)
        assert transcript_bodies(desk, task["sid"]).count(during) == 1
        assert len(visitor_events(cluster, sender, during)) == 1
        for text in ("agent, before the outage", agent_during, agent_after):
            assert agent_texts(visitor.messages).count(text) == 1, (text, visitor.texts())
            assert len(agent_events(cluster, sender, text)) == 1, text
        assert [m.get("event") for m in visitor.messages].count("relay_failed") == 1
        assert tracebacks(replica_logs_since(cluster, marks)) == []
        assert "answered 503, stores unreachable" in a.log()[marks["a"] :]
    except (AssertionError, TimeoutError) as e:
        raise AssertionError(f"{e}\n{cluster.logs()}") from None
    finally:
        if cluster.redis_server.process is None or cluster.redis_server.process.proc.poll() is not None:
            cluster.redis_server.start()


def socket_holders(cluster: Cluster) -> List[Replica]:
    """The replicas with an established inbound TCP connection (nginx's websocket to them), from /proc/net/tcp."""
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01":  # ESTABLISHED
            ports.add(int(fields[1].split(":")[1], 16))
    return [r for r in (cluster.a, cluster.b) if r.port in ports]


def quietly(call: Callable[[], object]) -> None:
    """Run `call`, ignoring a connection the server dropped (it was killed)."""
    try:
        call()
    except OSError:
        pass


def history(url: str, session_id: str, timeout: float = 10) -> List[Dict[str, Any]]:
    """The session's turns as our widget loads them (GET .../history/<session id>), each as the widget reads it."""
    with urllib.request.urlopen(f"{url}/webhooks/handoff_socketio/history/{session_id}", timeout=timeout) as r:
        return [flat(entry) for entry in json.loads(r.read())["messages"]]


def test_a_replica_killed_mid_handoff_behind_nginx_loses_and_repeats_nothing(cluster: Cluster) -> None:
    """The replica holding the visitor's socket is killed (SIGKILL) inside the conversation's lock, agent messages in flight.

    Everything goes through nginx (the replicas' PUBLIC_URL): the visitor's websocket, and
    Flex's webhooks, to an upstream of A and B. The kill is the worst moment: the holder is
    inside the conversation's lock (catching up for a second tab's history reload, its Flex call
    stalled by a sandbox fault), so its ticket stays in Redis until it expires (LOCK_LIFETIME).
    The agent's burst is sent just before: webhooks the killed replica took are answered 502 by
    nginx and sent to the survivor, which waits for the lock longer than the sandbox retries, so
    Flex gives the first one up: only the catch-up brings it. The visitor's socket reconnects
    through nginx to the survivor and asks for its session again (catch-up once the ticket
    expires); as our widget does then, it reloads the history and merges it by message sid.
    Every visitor message reaches the agent once, every agent message the visitor once (never
    twice on the socket), PostgreSQL records each once, and the bot resumes when the agent ends
    the chat. This test runs last: the killed replica stays down (`Cluster.revive` restarts it
    for any test after it).
    """
    cluster.revive()
    a, b, desk = cluster.a, cluster.b, cluster.sandbox
    cluster.route("conversations", a, b)
    hits_before = len(cluster.nginx.hits())
    visitor = Visitor(cluster.nginx.url, reconnection=True)
    burst = [f"agent burst {i}" for i in range(8)]
    try:
        assert visitor.transport == "websocket"
        visitor.say("/greet")
        visitor.wait_for_text("Northwind assistant")
        holder = wait_for(lambda: (lambda h: h[0] if len(h) == 1 else None)(socket_holders(cluster)), 10, "one socket holder")
        survivor = b if holder is a else a
        task = handed_off(survivor, visitor)  # its tracker, in the shared PostgreSQL
        desk.accept(task["sid"])
        visitor.wait_for(lambda m: m.get("event") == "agent_joined", "agent joined notice")
        exchange(desk, visitor, task["sid"], "visitor, before the kill", "agent, before the kill")

        # A second tab reloads the history on the holder: its catch-up takes the lock and asks Flex, which stalls.
        # (Both attempts of its Twilio client stall, so it holds the lock for seconds: TWILIO_TIMEOUT is 2 s.)
        stall = desk.fault(path_regex=r"/Conversations/CH\w+/Participants$", method="GET", delay=5, times=2)
        reload = threading.Thread(target=lambda: quietly(lambda: history(holder.url, str(visitor.session_id))), daemon=True)
        reload.start()

        def holder_stalled() -> bool:
            rule = next((f for f in desk.request("GET", "/sandbox/faults")["faults"] if f["id"] == stall["id"]), None)
            return rule is None or rule["hits"] >= 1

        wait_for(holder_stalled, 15, "the holder's catch-up stalled inside the lock")
        for text in burst:
            desk.send(task["sid"], text)
        assert holder.process.proc is not None
        os.killpg(holder.process.proc.pid, signal.SIGKILL)
        holder.process.proc.wait(10)
        desk.clear_faults()  # the stall was for the holder only

        wait_for(lambda: visitor.confirms >= 2, AFTER_KILL, "the socket reconnected through nginx and confirmed its session")
        assert socket_holders(cluster) == [survivor]
        seen = history(cluster.nginx.url, str(visitor.session_id), AFTER_KILL)  # its catch-up may wait for a stale ticket
        visitor.say("visitor, after the kill")
        wait_for(
            lambda: "visitor, after the kill" in transcript_bodies(desk, task["sid"]),
            AFTER_KILL,
            "visitor message after the kill",
        )
        desk.send(task["sid"], "agent, after the kill")
        visitor.wait_for(lambda m: m.get("text") == "agent, after the kill", "agent message after the kill, live", AFTER_KILL)

        start = len(visitor.messages)
        desk.end(task["sid"])
        visitor.wait_for(lambda m: m.get("event") == "bot_resumed", "bot back", start=start)
        start = len(visitor.messages)
        visitor.say("/ask_payment")
        visitor.wait_for_text("Visa", start=start)

        # Exactly once, checked last so a late duplicate would have shown up.
        live = [m for m in visitor.messages if m.get("sender") == "agent"]
        live_sids = [m["message_sid"] for m in live]
        assert len(live_sids) == len(set(live_sids)), agent_texts(live)  # nothing twice on the socket
        merged = {m["message_sid"]: m["text"] for m in [*seen, *live] if m.get("sender") == "agent" and m.get("message_sid")}
        sender = str(visitor.session_id)
        for text in ["agent, before the kill", *burst, "agent, after the kill"]:
            assert list(merged.values()).count(text) == 1, (text, sorted(merged.values()))
            assert len(agent_events(cluster, sender, text)) == 1, text
        bodies = transcript_bodies(desk, task["sid"])
        for text in ("visitor, before the kill", "visitor, after the kill"):
            assert bodies.count(text) == 1 and len(visitor_events(cluster, sender, text)) == 1, text
        assert [hit for hit in cluster.nginx.hits()[hits_before:] if hit[2] >= 500 and hit[2] != 502] == []
    except (AssertionError, TimeoutError) as e:
        raise AssertionError(f"{e}\nnginx webhook hits: {cluster.nginx.hits()[hits_before:]}\n{cluster.logs()}") from None
    finally:
        visitor.close()
