"""Real infrastructure for the multi-replica tests: Redis, PostgreSQL and nginx, each a throwaway process on a free port.

They are the Debian packages' binaries (scripts/install.sh installs them), started by the tests
with their state in temp directories, never the system services, so a test can stop, restart or
kill them like an operator or an outage would.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import psycopg2
import pytest
import redis

from northwind.processes import ServerProcess, free_port, wait_for


class RedisServer:
    """redis-server without persistence (a restart loses every lock, as a fresh Redis would); stop and start on the same port."""

    def __init__(self, log_dir: Path) -> None:
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(self.binary).is_file():
            pytest.fail("redis-server is not installed (scripts/install.sh installs it when run as root)")
        self.port = free_port()
        self.log_dir = log_dir
        self.process: Optional[ServerProcess] = None

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5, socket_connect_timeout=1)

    def start(self) -> RedisServer:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1)
        self.process = ServerProcess(
            "redis",
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            None,
            self.log_dir,
            health=client.ping,
            startup_timeout=30,
        ).start()
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's binaries (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        pytest.fail("PostgreSQL is not installed (scripts/install.sh installs the postgresql package when run as root)")
    return Path(found[-1]).parent


class PostgresServer:
    """A throwaway PostgreSQL cluster: trust auth for user `rasa`, unix socket in its temp dir, fsync off (tests only).

    initdb and postgres refuse to run as root: as root they run as the `postgres` user the Debian
    package creates, in a directory outside pytest's private temp tree, which that user can reach.
    """

    user = "rasa"
    password = "rasa"

    def __init__(self, log_dir: Path) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        self.log_dir = log_dir
        self.root = Path(tempfile.mkdtemp(prefix="rasa-flex-handoff-pg-"))
        self.data = self.root / "data"
        self.as_owner: List[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self.as_owner = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
        self.process: Optional[ServerProcess] = None

    def connect(self, db: str = "postgres") -> psycopg2.extensions.connection:
        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname=db, connect_timeout=2
        )

    def start(self) -> PostgresServer:
        initdb = [str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8"]
        done = subprocess.run(
            [*self.as_owner, *initdb, "--locale=C", "--no-sync"], cwd=self.root, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            pytest.fail(f"initdb failed:\n{done.stdout}\n{done.stderr}")

        def accepts() -> bool:
            self.connect().close()
            return True

        settings = ["listen_addresses=127.0.0.1", "fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        self.process = ServerProcess(
            "postgres",
            [
                *self.as_owner,
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                *[arg for setting in settings for arg in ("-c", setting)],
            ],
            None,
            self.log_dir,
            cwd=self.root,
            health=accepts,
            startup_timeout=60,
        ).start()
        return self

    def create_database(self, name: str) -> None:
        connection = self.connect()
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()

    def query(self, db: str, sql: str, *args: object) -> List[Tuple[object, ...]]:
        connection = self.connect(db)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, args)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def stop(self) -> None:
        """Fast shutdown (SIGINT: disconnect clients, no waiting for them), then the temp dir goes."""
        process = self.process
        if process is not None and process.proc is not None and process.proc.poll() is None:
            process.proc.send_signal(signal.SIGINT)
            try:
                process.proc.wait(20)
            except subprocess.TimeoutExpired:
                process.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Nginx:
    """nginx as the public front of the replicas: socket.io (websocket upgrade) and everything else to an
    upstream of replicas, Flex's webhook route to the replicas a test routes it to.

    Routing is a config reload, as an operator would do it; `route` returns once the new workers answer.
    Every webhook request is logged as `upstream addresses|upstream statuses|status|uri`.
    """

    def __init__(self, log_dir: Path, workdir: Path, replicas: Sequence[int]) -> None:
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(self.binary).is_file():
            pytest.fail("nginx is not installed (scripts/install.sh installs it when run as root)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.dir = workdir
        self.conf = workdir / "nginx.conf"
        self.hits_log = log_dir / "nginx-webhooks.log"
        self.replicas = list(replicas)
        self.process: Optional[ServerProcess] = None
        self.route_name = ""

    def config(self, name: str, webhook_ports: Sequence[int]) -> str:
        def servers(ports: Sequence[int]) -> str:
            # One failed connection takes a replica out for 10 s: the next request goes to another at once.
            return "".join(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=10s;\n" for port in ports)

        kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        temp = "".join(f"  {kind}_temp_path {self.dir / kind};\n" for kind in kinds)
        user = "user root root;\n" if os.geteuid() == 0 else ""  # workers must reach the temp paths in root's temp dir
        return (
            "daemon off;\n"
            "worker_processes 1;\n"
            f"{user}"
            f"pid {self.dir / 'nginx.pid'};\n"
            "error_log stderr warn;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            "  access_log off;\n"
            f"{temp}"
            # A new connection per request: after a reload no old worker keeps serving a keep-alive client.
            "  keepalive_timeout 0;\n"
            "  log_format hits '$upstream_addr|$upstream_status|$status|$request_uri';\n"
            "  map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n"
            f"  upstream replicas {{\n{servers(self.replicas)}  }}\n"
            f"  upstream webhooks {{\n{servers(webhook_ports)}  }}\n"
            "  server {\n"
            f"    listen 127.0.0.1:{self.port};\n"
            "    proxy_set_header Host $host;\n"
            "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
            "    location /socket.io/ {\n"
            "      proxy_pass http://replicas;\n"
            "      proxy_http_version 1.1;\n"
            "      proxy_set_header Upgrade $http_upgrade;\n"
            "      proxy_set_header Connection $connection_upgrade;\n"
            "      proxy_set_header Host $host;\n"
            "      proxy_read_timeout 300s;\n"
            "    }\n"
            "    location ~ ^/webhooks/[^/]+/flex$ {\n"
            "      proxy_pass http://webhooks;\n"
            f"      access_log {self.hits_log} hits;\n"
            "    }\n"
            f"    location = /nginx-route {{ return 200 '{name}'; }}\n"
            "    location / { proxy_pass http://replicas; }\n"
            "  }\n"
            "}\n"
        )

    def start(self, name: str, webhook_ports: Sequence[int]) -> Nginx:
        self.conf.write_text(self.config(name, webhook_ports))
        self.route_name = name
        self.process = ServerProcess(
            "nginx",
            [self.binary, "-e", "stderr", "-p", str(self.dir), "-c", str(self.conf)],
            f"{self.url}/nginx-route",
            self.log_dir,
            startup_timeout=30,
        ).start()
        return self

    def answered_route(self) -> str:
        with urllib.request.urlopen(f"{self.url}/nginx-route", timeout=2) as r:
            return r.read().decode()

    def route(self, name: str, webhook_ports: Sequence[int]) -> None:
        """Send Flex's webhooks to these replicas (reload; no-op if already so)."""
        if name == self.route_name:
            return
        assert self.process is not None and self.process.proc is not None
        old_workers = self.workers()
        self.conf.write_text(self.config(name, webhook_ports))
        self.process.proc.send_signal(signal.SIGHUP)

        def switched() -> bool:
            # An old worker accepts new connections until it has handled the reload; then it renames itself.
            return all(not self.is_accepting(pid) for pid in old_workers) and self.answered_route() == name

        wait_for(switched, 20, f"nginx serving route {name!r} only", interval=0.05)
        self.route_name = name

    def workers(self) -> List[int]:
        """The master's worker processes (children in /proc)."""
        assert self.process is not None and self.process.proc is not None
        master = self.process.proc.pid
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                    found.append(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                continue
        return found

    @staticmethod
    def is_accepting(pid: int) -> bool:
        """Whether an nginx worker still takes new connections (a reloaded one is titled "worker process is shutting down")."""
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
        return bool(title) and "shutting down" not in title

    def hits(self) -> List[Tuple[List[str], List[str], int]]:
        """Each webhook request so far: the upstreams tried, their statuses, and nginx's answer."""
        found = []
        for line in self.hits_log.read_text().splitlines() if self.hits_log.exists() else []:
            upstreams, statuses, status, _uri = line.split("|", 3)
            found.append(([u.strip() for u in upstreams.split(",")], [s.strip() for s in statuses.split(",")], int(status)))
        return found

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
