"""Two Rasa replicas behind one public URL, sharing a real Redis (issue 4, "Stateless and safe").

Topology (all real processes, logs in tests/.output/logs/replicas/):

    visitor (socket.io, websocket) ──> replica A ─┐
                                                  ├─ Redis: tracker store (db 0), lock store (db 1),
    Flex sandbox ── webhooks ──> public URL ──> B ┘         socket.io pub/sub (REDIS_URL, db 2)
                                 (load balancer)
                                      └──> C  (same stores, but started without REDIS_URL)

The lock store is `rasa_flex_handoff.ReplicaSafeRedisLockStore`: with Rasa's own `redis`
lock store, replicas that take a conversation's lock at the same moment lose or resurrect
tickets, and a webhook can wait 60 s for the lock (the first test here shows the safe one holds).

Every replica has the same PUBLIC_URL: the load balancer, which forwards Flex's webhooks to the
replica a test picks. The visitor's socket lives on A only, so an agent message that B handles
must travel B -> Redis pub/sub -> A to reach them. Only the action server (which creates the Flex
chat) depends on FLEX_MODE, so the replicas reach one action server per mode through a second
forwarder, switched per test.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tarfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import redis
from rasa.core.lock_store import LockError

from northwind.processes import VENV_BIN, ServerProcess, free_port, wait_for
from northwind.servers import AgentDesk, base_env
from rasa_flex_handoff.lock_store import ReplicaSafeRedisLockStore
from tests.handoff.conftest import MODES, Visitor, handed_off

# Three Rasa servers start in parallel on what may be a 2-CPU machine: give them time.
RASA_STARTUP = 420
# How long the visitor on A is watched for a message that must NOT arrive. The replica that
# handled the webhook has already recorded and emitted it by then; Redis delivers in milliseconds.
NOT_DELIVERED_WAIT = 3
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
        self.url = f"http://127.0.0.1:{port}"

    def tracker(self, sender_id: str) -> Dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/conversations/{sender_id}/tracker", timeout=10) as r:
            return json.loads(r.read())

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")


class Cluster:
    """Redis, the public load balancer, action servers per Flex mode and replicas A, B (REDIS_URL set) and C (unset)."""

    def __init__(
        self,
        sandbox: AgentDesk,
        redis_port: int,
        balancer: LoadBalancer,
        action_router: LoadBalancer,
        actions: Dict[str, ServerProcess],
        action_urls: Dict[str, str],
        replicas: Dict[str, Replica],
    ) -> None:
        self.sandbox = sandbox
        self.redis_port = redis_port
        self.balancer = balancer
        self.action_router = action_router
        self.actions = actions
        self.action_urls = action_urls
        self.a, self.b, self.c = replicas["a"], replicas["b"], replicas["c"]

    def route(self, mode: str, webhooks_to: Replica) -> None:
        """Chats are created in Flex `mode`, and Flex's webhooks (sent to PUBLIC_URL) land on `webhooks_to`."""
        self.action_router.target = self.action_urls[mode]
        self.balancer.target = webhooks_to.url

    def redis(self, db: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.redis_port, db=db, socket_timeout=5)

    def logs(self) -> str:
        processes = [self.a.process, self.b.process, self.c.process, *self.actions.values(), self.sandbox.process]
        return "\n".join(f"--- {p.name} ---\n{p.tail(60)}" for p in processes)


@pytest.fixture(scope="module")
def log_dir(output_dir: Path) -> Path:
    path = output_dir / "logs" / "replicas"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="module")
def redis_port(log_dir: Path) -> Iterator[int]:
    """A throwaway Redis on a free port: no RDB snapshots, no AOF, healthy once it answers PING."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).is_file():
        pytest.fail("redis-server is not installed (scripts/install.sh installs it when run as root)")
    port = free_port()
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    process = ServerProcess(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        None,
        log_dir,
        health=client.ping,
        startup_timeout=30,
    ).start()
    yield port
    process.stop()


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
    sandbox: AgentDesk, handoff_model: Path, log_dir: Path, redis_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("replicas")
    model = stable_copy(handoff_model, workdir)
    balancer = LoadBalancer().start()
    action_router = LoadBalancer().start()
    started: List[ServerProcess] = []
    try:
        env = {**base_env(sandbox.url), "PUBLIC_URL": balancer.url}
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
            f"tracker_store:\n  type: redis\n  url: 127.0.0.1\n  port: {redis_port}\n  db: 0\n"
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
            port = free_port()
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
        yield Cluster(sandbox, redis_port, balancer, action_router, actions, action_urls, replicas)
    finally:
        for process in reversed(started):
            process.stop()
        balancer.stop()
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
    hits_before = len(cluster.balancer.hits)
    assert visitor.transport == "websocket"
    try:
        visitor.say("/greet")
        visitor.wait_for_text("Northwind assistant")
        # A's socket.io server listens on the Redis channel; B has only published so far (or not at all).
        assert cluster.redis(2).pubsub_numsub("socketio")[0][1] >= 1
        # The conversation lives in the shared Redis tracker store, not in A's memory.
        assert cluster.redis(0).exists(f"tracker:{visitor.session_id}")

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
        hits = cluster.balancer.hits[hits_before:]
        assert hits and all(url == b.url and status == 204 for url, _, status in hits), hits
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
        assert cluster.balancer.hits_on(c.url)
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
