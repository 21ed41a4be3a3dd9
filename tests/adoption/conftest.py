"""A stranger's bot adopting the plugin: the built wheel in its own virtualenv, a fresh `rasa init` project.

Nothing here imports the plugin from the source tree into the adopter's processes:

- `wheel`: `pip wheel` of a copy of the repository (so no `build/` or `*.egg-info` lands in it),
  checked for the package data and console scripts an adopter needs.
- `venv`: a new virtualenv on the base interpreter whose only link to the pinned stack is a
  `.pth` line naming the repository venv's site-packages (a plain path: that directory's own
  `.pth` files, the editable install of this repository among them, are not processed). The
  wheel is installed into it; `rasa_flex_handoff` and `flex_sandbox` then import from there.
- `fresh_project`: `python -m rasa init --no-prompt`, run once; each variant copies it.
- `adopted`: one variant of that project after `rasa-flex-handoff init` (dry run, run, `check`,
  a second run that must change nothing, a run after the user's own edit that must keep it),
  trained, with its own Flex sandbox started from the venv (`flex-sandbox --env` gives the bot's
  Twilio variables, as the README tells adopters).
- `stack`: its action server and Rasa server for one Flex mode, started from the project folder.

Every process gets the environment `Venv.env` builds: no PYTHONPATH, the new venv's bin first
on PATH (the repository venv's bin removed), no Twilio/Flex/handoff variables but those given.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest
import socketio
from ruamel.yaml import YAML

from flex_sandbox.credentials import DEVELOPMENT
from northwind.processes import ROOT, VENV_BIN, ServerProcess, free_port

VARIANTS = ["domain-file", "domain-dir"]
MODES = ["conversations", "interactions", "legacy"]
AGENT = "alice"

BASE_PYTHON = Path(getattr(sys, "_base_executable", "") or Path(sys.base_prefix) / "bin" / "python3")
STACK_SITE = Path(sysconfig.get_path("purelib"))  # the pinned stack: the repository venv's site-packages
PY_DIR = f"python{sys.version_info.major}.{sys.version_info.minor}"

# What the wheel must carry for a bot that installs it (besides the modules).
WHEEL_FILES = [
    "rasa_flex_handoff/__init__.py",
    "rasa_flex_handoff/actions.py",
    "rasa_flex_handoff/cli.py",
    "rasa_flex_handoff/domain.yml",
    "rasa_flex_handoff/py.typed",
    "flex_sandbox/__main__.py",
    "flex_sandbox/desktop/index.html",
    "flex_sandbox/py.typed",
]
CONSOLE_SCRIPTS = {
    "flex-sandbox": "flex_sandbox.__main__:main",
    "rasa-flex-handoff": "rasa_flex_handoff.cli:main",
}
# Variables of the plugin, the sandbox and the repository's own setup that must not leak into the adopter's processes.
LEAKY_PREFIXES = ("TWILIO_", "FLEX_", "HANDOFF_", "RASA_AUTH", "DEMO_")
LEAKY_NAMES = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PUBLIC_URL", "REDIS_URL", "__PYVENV_LAUNCHER__"}

# Variant 2: the user's own config, with explicit policies. TED trains 20 epochs only, to keep the test
# short: the bot's side of the test's conversation comes from rules and a story's opening turn
# (and the relay from HandoffPolicy). DIET keeps Rasa's default 100 epochs: with fewer, "are you a
# bot?" fell below the fallback threshold once the handoff's intents were added.
DOMAIN_DIR_CONFIG = """\
# Our assistant's configuration: explicit pipeline and policies.
recipe: default.v1
assistant_id: adoption_domain_dir
language: en

pipeline:
  - name: WhitespaceTokenizer
  - name: RegexFeaturizer
  - name: LexicalSyntacticFeaturizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: 100
    random_seed: 1
  - name: EntitySynonymMapper
  - name: FallbackClassifier
    threshold: 0.3
    ambiguity_threshold: 0.1

policies:
  - name: RulePolicy
  - name: MemoizationPolicy
  - name: TEDPolicy
    max_history: 5
    epochs: 20
    random_seed: 1
"""


# How long each step took (shown at the end of the run: an adopter's real waiting times).
TIMINGS: List[Tuple[str, float]] = []


@contextmanager
def timed(step: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        TIMINGS.append((step, time.monotonic() - started))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.section("adoption: time per step")
        for step, seconds in TIMINGS:
            terminalreporter.write_line(f"{seconds:7.1f}s  {step}")


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def run(
    args: Sequence[Any], cwd: Path, env: Optional[Dict[str, str]] = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run a command to completion; stdout and stderr together in `.stdout`."""
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        timeout=timeout,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def check(result: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{what} failed with exit code {result.returncode}:\n{tail(result.stdout, 80)}"
    return result


# --- the wheel ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel` of the repository as it is now (a copy of its top-level files and `bot/`)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for item in ROOT.iterdir():
        # Top-level files a build may read (pyproject.toml, README.md, a licence...); no dotfiles such as .env.
        if item.is_file() and not item.name.startswith("."):
            shutil.copy2(item, source / item.name)
    caches = ("__pycache__", "*.pyc", "*.egg-info", "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache")
    shutil.copytree(ROOT / "bot", source / "bot", ignore=shutil.ignore_patterns(*caches))
    out = work / "dist"
    with timed("pip wheel ."):
        check(
            run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "--no-deps",
                    "--no-build-isolation",
                    "--no-index",
                    "--disable-pip-version-check",
                    "-w",
                    out,
                    ".",
                ],
                cwd=source,
                timeout=300,
            ),
            "pip wheel .",
        )
    wheels = sorted(out.glob("rasa_flex_handoff-*.whl"))
    assert len(wheels) == 1, f"expected one rasa_flex_handoff wheel, found {[w.name for w in out.iterdir()]}"
    with zipfile.ZipFile(wheels[0]) as z:
        names = set(z.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        entry_points = z.read(f"{dist_info}/entry_points.txt").decode()
    missing = [name for name in WHEEL_FILES if name not in names]
    assert not missing, f"{wheels[0].name} lacks {missing}"
    top = {n.split("/")[0] for n in names}
    assert top == {"rasa_flex_handoff", "flex_sandbox", dist_info}, f"unexpected top-level entries in the wheel: {sorted(top)}"
    scripts = parse_console_scripts(entry_points)
    for script, target in CONSOLE_SCRIPTS.items():
        assert scripts.get(script) == target, f"entry_points.txt: {script} should be {target}; got:\n{entry_points}"
    return wheels[0]


def parse_exports(text: str) -> Dict[str, str]:
    """`export NAME=value` lines (shell-quoted values) as a mapping."""
    found: Dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line[len("export ") :].split("=", 1)
            found[name.strip()] = (shlex.split(value) or [""])[0]
    return found


def parse_console_scripts(entry_points: str) -> Dict[str, str]:
    scripts: Dict[str, str] = {}
    section = None
    for line in entry_points.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and section == "console_scripts":
            name, target = (part.strip() for part in line.split("=", 1))
            scripts[name] = target
    return scripts


# --- the adopter's virtualenv ---------------------------------------------------------------------


@dataclass
class Venv:
    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    @property
    def site_packages(self) -> Path:
        return self.root / "lib" / PY_DIR / "site-packages"

    def env(self, **extra: str) -> Dict[str, str]:
        """The environment of every adopter process: this venv first on PATH, nothing pointing into the repository."""
        env = {k: v for k, v in os.environ.items() if k not in LEAKY_NAMES and not k.startswith(LEAKY_PREFIXES)}
        path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p) != VENV_BIN]
        env.update(
            PATH=os.pathsep.join([str(self.bin), *path]),
            VIRTUAL_ENV=str(self.root),
            RASA_TELEMETRY_ENABLED="false",
            TF_CPP_MIN_LOG_LEVEL="2",
            PYTHONUNBUFFERED="1",
            PYTHONNOUSERSITE="1",
        )
        env.update(extra)
        return env


@pytest.fixture(scope="session")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A new virtualenv layered on the pinned stack, with the wheel installed (no network)."""
    v = Venv(tmp_path_factory.mktemp("adopter") / "venv")
    with timed("python -m venv"):
        check(run([BASE_PYTHON, "-m", "venv", v.root], cwd=v.root.parent, env=v.env(), timeout=300), "python -m venv")
    assert v.site_packages.is_dir(), f"no {v.site_packages}"
    # A plain path line: the stack's modules become importable, its .pth files (our editable install) are not read.
    (v.site_packages / "pinned_stack.pth").write_text(f"{STACK_SITE}\n")
    with timed("pip install <wheel>"):
        check(
            run(
                [
                    v.python,
                    "-m",
                    "pip",
                    "install",
                    "--no-deps",
                    "--no-index",
                    "--ignore-installed",
                    "--disable-pip-version-check",
                    wheel,
                ],
                cwd=v.root.parent,
                env=v.env(),
                timeout=300,
            ),
            f"pip install {wheel.name}",
        )
    # `rasa` on PATH is this venv's (the console scripts of the repository venv are not here).
    shim = v.bin / "rasa"
    shim.write_text(f"#!{v.python}\nimport sys\nfrom rasa.__main__ import main\nsys.exit(main())\n")
    shim.chmod(0o755)
    for script in CONSOLE_SCRIPTS:
        assert (v.bin / script).is_file(), f"pip installed no {script} console script into {v.bin}"

    probe = check(
        run(
            [
                v.python,
                "-c",
                (
                    "import importlib.util, json, sys\n"
                    "import rasa, rasa_sdk, rasa_flex_handoff, flex_sandbox\n"
                    "print(json.dumps({'plugin': rasa_flex_handoff.__file__, 'sandbox': flex_sandbox.__file__,\n"
                    "  'rasa': rasa.__file__, 'version': rasa_flex_handoff.__version__, 'path': sys.path,\n"
                    "  'northwind': importlib.util.find_spec('northwind') is not None}))"
                ),
            ],
            cwd=v.root.parent,
            env=v.env(),
        ),
        "importing the installed packages",
    )
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    for key in ("plugin", "sandbox"):
        assert Path(found[key]).is_relative_to(v.root), f"{key} imported from {found[key]}, not from the new venv {v.root}"
    assert Path(found["rasa"]).is_relative_to(STACK_SITE), found
    assert not found["northwind"], "the repository's source tree (bot/) is importable in the adopter's venv"
    assert str(ROOT / "bot") not in found["path"] and str(ROOT) not in found["path"], found["path"]
    assert found["version"] not in ("", "0+unknown"), found
    return v


# --- the adopter's bot ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fresh_project(venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`rasa init --no-prompt`: the starter bot every Rasa user begins with (it trains once)."""
    where = tmp_path_factory.mktemp("rasa-init") / "starter"
    where.mkdir()
    with timed("rasa init --no-prompt (trains the starter bot)"):
        result = check(
            run(
                [venv.python, "-m", "rasa", "init", "--no-prompt", "--init-dir", where],
                cwd=where.parent,
                env=venv.env(),
                timeout=900,
            ),
            "rasa init",
        )
    for name in ("domain.yml", "config.yml", "credentials.yml", "endpoints.yml", "actions/actions.py", "data/nlu.yml"):
        assert (where / name).is_file(), f"rasa init made no {name}:\n{tail(result.stdout)}"
    return where


def yaml_rt() -> YAML:
    y = YAML()  # round trip: comments and order survive, as when a person edits the file
    y.preserve_quotes = True
    return y


def load_yaml(path: Path) -> Any:
    return yaml_rt().load(path.read_text())


def dump_yaml(data: Any, path: Path) -> None:
    with path.open("w") as f:
        yaml_rt().dump(data, f)


def snapshot(project: Path) -> Dict[str, bytes]:
    """Every file a person would edit (not models, caches or logs), by path."""
    skip = {"models", ".rasa", "__pycache__", "logs"}
    return {
        str(p.relative_to(project)): p.read_bytes()
        for p in sorted(project.rglob("*"))
        if p.is_file() and not skip.intersection(p.relative_to(project).parts)
    }


def changes(before: Dict[str, bytes], after: Dict[str, bytes]) -> List[str]:
    return sorted(
        [f"+{n}" for n in after.keys() - before.keys()]
        + [f"-{n}" for n in before.keys() - after.keys()]
        + [f"~{n}" for n in before.keys() & after.keys() if before[n] != after[n]]
    )


def split_domain(project: Path) -> None:
    """domain.yml -> domain/intents.yml + domain/responses.yml, as bigger bots keep theirs."""
    data = load_yaml(project / "domain.yml")
    folder = project / "domain"
    folder.mkdir()
    first = {k: v for k, v in data.items() if k != "responses"}
    second = {"version": data["version"], "responses": data["responses"]}
    dump_yaml(first, folder / "intents.yml")
    dump_yaml(second, folder / "responses.yml")
    (project / "domain.yml").unlink()


@dataclass
class Project:
    """One adopting bot: its folder, the venv it runs from, its Flex sandbox."""

    variant: str
    path: Path
    venv: Venv
    logs: Path
    domain: str  # what `rasa train --domain` gets
    sandbox: Optional[ServerProcess] = None
    sandbox_url: str = ""
    sandbox_env: Dict[str, str] = field(default_factory=dict)  # what `eval "$(flex-sandbox --env)"` exports

    def run(self, *args: Any, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
        return run(args, cwd=self.path, env=self.venv.env(**env), timeout=timeout)

    def init(self, *args: Any) -> subprocess.CompletedProcess:
        return self.run(self.venv.bin / "rasa-flex-handoff", "init", *args, timeout=300)

    def server(self, name: str, args: Sequence[Any], health_url: str, env: Dict[str, str]) -> ServerProcess:
        process = ServerProcess(name, [str(a) for a in args], health_url, self.logs, env=env, cwd=self.path, startup_timeout=240)
        process.env = dict(env)  # exactly this: ServerProcess would add os.environ and the repository venv's bin
        return process

    def channel(self) -> Dict[str, Any]:
        """The socket.io channel `init` configured in credentials.yml."""
        credentials = load_yaml(self.path / "credentials.yml") or {}
        assert "rasa_flex_handoff.SocketIOInput" in credentials, (
            f"credentials.yml has no rasa_flex_handoff.SocketIOInput: {list(credentials)}"
        )
        return dict(credentials["rasa_flex_handoff.SocketIOInput"] or {})

    def set_action_endpoint(self, url: str) -> None:
        """What a user does after init: point action_endpoint at where their action server runs."""
        path = self.path / "endpoints.yml"
        data = load_yaml(path)
        assert data and isinstance(data.get("action_endpoint"), dict) and data["action_endpoint"].get("url"), (
            f"endpoints.yml has no action_endpoint url:\n{path.read_text()}"
        )
        data["action_endpoint"]["url"] = url
        dump_yaml(data, path)

    def domain_files(self) -> List[Path]:
        where = self.path / self.domain
        return sorted(where.rglob("*.yml")) if where.is_dir() else [where]


def check_adopted(project: Project) -> None:
    """What `init` promises, read back from the files (the handoff then proves they work)."""
    project.channel()
    config = load_yaml(project.path / "config.yml")
    policies = [p.get("name") for p in (config.get("policies") or [])]
    assert "rasa_flex_handoff.HandoffPolicy" in policies, f"config.yml policies: {policies}"
    actions: List[str] = []
    for path in project.domain_files():
        actions += list((load_yaml(path) or {}).get("actions") or [])
    for name in ("action_handoff_to_agent", "action_relay_to_agent", "action_end_handoff"):
        assert name in actions, f"{name} is not in the domain's actions: {actions}"
    imports = [p for p in (project.path / "actions").rglob("*.py") if "rasa_flex_handoff.actions" in p.read_text()]
    assert imports, "no module of the actions package imports rasa_flex_handoff.actions"


def check_complete(project: Project, when: str) -> None:
    checked = project.run(project.venv.bin / "rasa-flex-handoff", "check", timeout=300)
    assert checked.returncode == 0, f"rasa-flex-handoff check {when}: exit {checked.returncode}:\n{tail(checked.stdout)}"


def adopt(project: Project) -> None:
    """`rasa-flex-handoff init`: a dry run writes nothing, a run applies (and `check` agrees), a second run
    changes nothing and says so, and a run after the user's own edit keeps it."""
    before = snapshot(project.path)
    dry = project.init(project.path, "--dry-run")
    assert dry.returncode in (0, 1) and "Traceback" not in dry.stdout, (
        f"init --dry-run failed ({dry.returncode}):\n{tail(dry.stdout)}"
    )
    assert changes(before, snapshot(project.path)) == [], f"init --dry-run changed files:\n{dry.stdout}"
    assert dry.stdout.strip(), "init --dry-run says nothing about what it would change"

    first = check(project.init(), "rasa-flex-handoff init (run in the project folder)")  # DIR defaults to the working directory
    applied = snapshot(project.path)
    assert changes(before, applied), f"init changed no file:\n{first.stdout}"
    check_adopted(project)
    check_complete(project, "after init")

    second = check(project.init(project.path), "rasa-flex-handoff init, second run")
    assert changes(applied, snapshot(project.path)) == [], f"a second init changed files:\n{second.stdout}"
    assert second.stdout.strip() and second.stdout != first.stdout, (
        f"a second init should say that nothing changed; it said:\n{second.stdout}\n(the first run said:\n{first.stdout})"
    )

    # The user points the action endpoint elsewhere (their deployment); init keeps that too.
    project.set_action_endpoint("http://actions.internal:5055/webhook")
    edited = snapshot(project.path)
    again = check(project.init(project.path), "rasa-flex-handoff init after the user's edit")
    assert changes(edited, snapshot(project.path)) == [], f"init undid the user's action_endpoint:\n{again.stdout}"


@pytest.fixture(scope="module", params=VARIANTS)
def adopted(
    request: pytest.FixtureRequest, fresh_project: Path, venv: Venv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Project]:
    """A `rasa init` bot after `rasa-flex-handoff init`, trained, with a Flex sandbox of its own."""
    variant = request.param
    base = tmp_path_factory.mktemp(f"bot-{variant}")
    path = base / "bot"
    shutil.copytree(fresh_project, path, ignore=shutil.ignore_patterns("models", ".rasa", "__pycache__"))
    domain = "domain.yml"
    if variant == "domain-dir":
        split_domain(path)
        (path / "config.yml").write_text(DOMAIN_DIR_CONFIG)
        domain = "domain"
    project = Project(variant, path, venv, base / "logs", domain)
    with timed(f"{variant}: rasa-flex-handoff init (dry run, run, check, re-runs)"):
        adopt(project)

    with timed(f"{variant}: rasa train"):
        trained = project.run(venv.python, "-m", "rasa", "train", "--domain", domain, timeout=900)
    check(trained, f"rasa train ({variant})")
    assert list((path / "models").glob("*.tar.gz")), f"rasa train left no model:\n{tail(trained.stdout)}"
    check_complete(project, "after rasa train")  # training rewrites the comments of an empty pipeline in config.yml

    port = free_port()
    project.sandbox_url = f"http://127.0.0.1:{port}"
    exports = check(project.run(venv.bin / "flex-sandbox", "--env", "--port", port, timeout=60), "flex-sandbox --env")
    project.sandbox_env = parse_exports(exports.stdout)
    assert project.sandbox_env == {**DEVELOPMENT.as_env(), "TWILIO_API_BASE": project.sandbox_url}, exports.stdout
    project.sandbox = project.server(
        "flex-sandbox",
        [venv.bin / "flex-sandbox", "--port", port, "--in-memory"],
        f"{project.sandbox_url}/health",
        venv.env(**DEVELOPMENT.as_env()),
    )
    with timed(f"{variant}: flex-sandbox start"):
        project.sandbox.start()
    try:
        yield project
    finally:
        project.sandbox.stop()


# --- one Flex mode's servers ----------------------------------------------------------------------


@dataclass
class Stack:
    project: Project
    mode: str
    actions: ServerProcess
    rasa: ServerProcess
    url: str
    channel: Dict[str, Any]

    def logs(self) -> str:
        parts = []
        for process in (self.rasa, self.actions, self.project.sandbox):
            if process is not None:
                lines = [line if len(line) <= 600 else line[:600] + " [...]" for line in process.tail(80).splitlines()]
                parts.append(f"--- {process.name} ({process.log_path}) ---\n" + "\n".join(lines))
        return "\n".join(parts)


@pytest.fixture
def stack(adopted: Project, mode: str) -> Iterator[Stack]:
    """The bot's action server and Rasa server for one Flex mode, run from the project folder."""
    project = adopted
    rasa_port, actions_port = free_port(), free_port()
    url = f"http://127.0.0.1:{rasa_port}"
    project.set_action_endpoint(f"http://127.0.0.1:{actions_port}/webhook")
    env = project.venv.env(**project.sandbox_env, PUBLIC_URL=url, FLEX_MODE=mode)
    py = project.venv.python
    actions = project.server(
        f"actions-{mode}",
        [py, "-m", "rasa_sdk", "--actions", "actions", "--port", actions_port],
        f"http://127.0.0.1:{actions_port}/health",
        env,
    )
    rasa = project.server(
        f"rasa-{mode}",
        [
            py,
            "-m",
            "rasa",
            "run",
            "--port",
            rasa_port,
            "--interface",
            "127.0.0.1",
            "--credentials",
            "credentials.yml",
            "--endpoints",
            "endpoints.yml",
        ],
        f"{url}/",
        env,
    )
    s = Stack(project, mode, actions, rasa, url, project.channel())
    try:
        with timed(f"{project.variant}/{mode}: action server + Rasa server start"):
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                for started in [pool.submit(p.start) for p in (actions, rasa)]:
                    started.result()
        yield s
    finally:
        rasa.stop()
        actions.stop()


# --- the website visitor --------------------------------------------------------------------------

# The `bot_uttered` shapes Rasa's stock socket.io output sends; a `metadata` key may come on top.
RASA_SOCKETIO_SHAPES = [{"text"}, {"text", "quick_replies"}, {"attachment"}]


def handoff_of(message: Dict[str, Any]) -> Dict[str, Any]:
    return ((message.get("metadata") or {}).get("handoff") or {}) if isinstance(message, dict) else {}


class Visitor:
    """A website visitor on socket.io (websocket transport), waiting on what arrives with an asyncio condition."""

    def __init__(self, url: str, channel: Dict[str, Any]) -> None:
        self.url = url
        self.path = channel.get("socketio_path") or "/socket.io"
        self.user_event = channel.get("user_message_evt") or "user_uttered"
        self.bot_event = channel.get("bot_message_evt") or "bot_uttered"
        self.messages: List[Dict[str, Any]] = []
        self.off_contract: List[Any] = []
        self.session_id: Optional[str] = None
        self.changed = asyncio.Condition()
        self.sio = socketio.AsyncClient(reconnection=False)
        self.sio.on(self.bot_event, self._on_bot)
        self.sio.on("session_confirm", self._on_confirm)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def _on_bot(self, data: Any) -> None:
        if not isinstance(data, dict) or (set(data) - {"metadata"}) not in RASA_SOCKETIO_SHAPES:
            self.off_contract.append(data)
        self.messages.append(data if isinstance(data, dict) else {"raw": data})
        await self._notify()

    async def _on_confirm(self, data: Any) -> None:
        self.session_id = data if isinstance(data, str) else (data or {}).get("session_id")
        await self._notify()

    async def connect(self, session_id: str) -> None:
        await self.sio.connect(self.url, socketio_path=self.path, transports=["websocket"])
        await self.sio.emit("session_request", {"session_id": session_id})
        await self.until(lambda: self.session_id, "session_confirm", timeout=15)

    @property
    def transport(self) -> str:
        return self.sio.transport()

    async def say(self, text: str) -> int:
        """Send a line; returns the number of messages so far (wait from there)."""
        mark = len(self.messages)
        await self.sio.emit(self.user_event, {"message": text, "session_id": self.session_id})
        return mark

    async def until(self, condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        async with self.changed:
            try:
                return await asyncio.wait_for(self.changed.wait_for(condition), timeout)
            except TimeoutError:
                raise AssertionError(f"no {what} within {timeout}s; the visitor got: {self.messages}") from None

    async def wait_for(
        self, predicate: Callable[[Dict[str, Any]], bool], what: str, start: int = 0, timeout: float = 30
    ) -> Dict[str, Any]:
        return await self.until(lambda: next((m for m in self.messages[start:] if predicate(m)), None), what, timeout)

    async def wait_for_text(self, text: str, start: int = 0, timeout: float = 30) -> Dict[str, Any]:
        return await self.wait_for(lambda m: m.get("text") == text, f"bot message {text!r}", start, timeout)

    async def wait_for_event(self, event: str, start: int = 0, timeout: float = 30) -> Dict[str, Any]:
        return await self.wait_for(lambda m: handoff_of(m).get("event") == event, f"{event!r} notice", start, timeout)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
