"""A Rasa 3.6 bot project as `rasa-flex-handoff init` and `check` see it: what it lacks, and adding that.

`cli.py` calls `find_project`, `plan_setup`, then `Plan.apply()` or `Plan.diff()`. The plan compares
the project's domain, config, credentials, endpoints, training data and actions package with what the
handoff needs (`domain_check`: the package's `domain.yml` fragment; the training data it adds is in
`templates/`) and splices the additions into the user's files (`yaml_splice`), so every comment,
blank line and entry the user wrote stays. An entry the user already has is never replaced: a
definition the handoff cannot work with is reported as a conflict.

The running bot's own check of its domain is `domain_check`; only the CLI imports this module.
"""

from __future__ import annotations

import ast
import difflib
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString

from rasa_flex_handoff.domain_check import (
    FRAGMENT,
    OPTIONAL_SLOTS,
    PACKAGE,
    entry_names,
    fragment,
    package_template,
    response_texts,
)
from rasa_flex_handoff.yaml_splice import (
    Entry,
    Item,
    ProjectError,
    YamlFile,
    detached_copy,
    load_round_trip,
    plain_data,
    read_user_file,
    relative_path,
)

NLU_TEMPLATE = "templates/nlu.yml"
RULES_TEMPLATE = "templates/rules.yml"

# What init creates in a user's project.
NLU_FILE = "handoff_nlu.yml"  # in the data folder
RULES_FILE = "handoff_rules.yml"  # in the data folder
DOMAIN_DIR_FILE = "handoff.yml"  # in a domain directory; the user's own files there are never edited

POLICY = f"{PACKAGE}.HandoffPolicy"
POLICY_NAMES = frozenset({POLICY, f"{PACKAGE}.policy.HandoffPolicy"})
SOCKETIO_CHANNEL = f"{PACKAGE}.SocketIOInput"
SOCKETIO_CHANNEL_NAMES = frozenset({SOCKETIO_CHANNEL, f"{PACKAGE}.socketio.SocketIOInput"})
REST_CHANNEL = f"{PACKAGE}.RestInput"
REST_CHANNEL_NAMES = frozenset({REST_CHANNEL, f"{PACKAGE}.rest.RestInput"})
RASA_SOCKETIO_NAMES = frozenset({"socketio", "rasa.core.channels.socketio.SocketIOInput"})
DEFAULT_SOCKETIO_PATH = "/socket.io"
ACTION_ENDPOINT_URL = "http://localhost:5055/webhook"
ACTION_IMPORT = f"from {PACKAGE}.actions import ActionEndHandoff, ActionHandoffToAgent, ActionRelayToAgent  # noqa: F401"

# The policies Rasa 3.6 trains when `policies:` is empty (rasa/engine/recipes/config_files/default_config.yml):
# a config that names only HandoffPolicy would lose them, so init writes them out.
RASA_DEFAULT_POLICIES: List[Dict[str, Any]] = [
    {"name": "MemoizationPolicy"},
    {"name": "RulePolicy"},
    {"name": "UnexpecTEDIntentPolicy", "max_history": 5, "epochs": 100},
    {"name": "TEDPolicy", "max_history": 5, "epochs": 100, "constrain_similarities": True},
]

ADDED = "added"
NOTE = "note"
CONFLICT = "conflict"


@functools.lru_cache
def _handoff_rules() -> Tuple[Tuple[str, str], ...]:
    """(intent, action) of each rule in the rules template."""
    pairs = []
    for rule in plain_data(package_template(RULES_TEMPLATE).data)["rules"]:
        steps = rule["steps"]
        pairs.append((steps[0]["intent"], steps[1]["action"]))
    return tuple(pairs)


# --- the project and the plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BotProject:
    """Where a Rasa project keeps what the handoff touches."""

    root: Path
    domain: Path  # a file, or a directory of domain files
    config: Path
    credentials: Path
    endpoints: Path
    data: Path
    actions: str  # the action package (or module), as `rasa run actions --actions` names it

    @property
    def domain_is_directory(self) -> bool:
        return self.domain.is_dir()


def _first_existing(root: Path, names: Sequence[str]) -> Path:
    for name in names:
        if (root / name).exists():
            return root / name
    return root / names[0]


def find_project(directory: Union[str, Path] = ".", actions: str = "actions") -> BotProject:
    """The Rasa project in `directory`; `ProjectError` when it has no domain (`domain.yml` or `domain/`)."""
    root = Path(directory).resolve()
    if not root.is_dir():
        raise ProjectError(f"{directory} is not a directory")
    domain = next((root / name for name in ("domain.yml", "domain.yaml") if (root / name).is_file()), None)
    if domain is None and (root / "domain").is_dir():
        domain = root / "domain"
    if domain is None:
        raise ProjectError(f"{root} has no domain.yml or domain/ directory: not a Rasa project")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", actions):
        raise ProjectError(f"{actions!r} is not a Python package name")
    return BotProject(
        root=root,
        domain=domain,
        config=_first_existing(root, ("config.yml", "config.yaml")),
        credentials=_first_existing(root, ("credentials.yml", "credentials.yaml")),
        endpoints=_first_existing(root, ("endpoints.yml", "endpoints.yaml")),
        data=root / "data",
        actions=actions,
    )


@dataclass(frozen=True)
class Finding:
    """One line of init's report: something added, a note, or a conflict left for the user."""

    kind: str  # ADDED, NOTE or CONFLICT
    file: str  # relative to the project
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass(frozen=True)
class FileChange:
    path: Path
    rel: str
    old: Optional[str]  # None: a new file
    new: str

    def diff(self) -> str:
        before = [] if self.old is None else self.old.splitlines(keepends=True)
        lines = difflib.unified_diff(
            before,
            self.new.splitlines(keepends=True),
            "/dev/null" if self.old is None else f"a/{self.rel}",
            f"b/{self.rel}",
        )
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


@dataclass
class Plan:
    """What init would do to a project: the findings and the files' new texts."""

    project: BotProject
    findings: List[Finding]
    files: List[FileChange]

    @property
    def added(self) -> List[Finding]:
        return [finding for finding in self.findings if finding.kind == ADDED]

    @property
    def notes(self) -> List[Finding]:
        return [finding for finding in self.findings if finding.kind == NOTE]

    @property
    def conflicts(self) -> List[Finding]:
        return [finding for finding in self.findings if finding.kind == CONFLICT]

    @property
    def complete(self) -> bool:
        """Nothing to add and nothing in the way: the project has what the handoff needs."""
        return not self.files and not self.conflicts

    def diff(self) -> str:
        return "".join(change.diff() for change in self.files)

    def apply(self) -> List[Path]:
        """Write the changed and new files; returns their paths."""
        for change in self.files:
            change.path.parent.mkdir(parents=True, exist_ok=True)
            with change.path.open("w", encoding="utf-8", newline="") as f:
                f.write(change.new)
        return [change.path for change in self.files]


def plan_setup(project: BotProject) -> Plan:
    """What `rasa-flex-handoff init` would add to `project`, and what stands in its way."""
    return _Planner(project).plan()


# --- reading what a project has -------------------------------------------------------------------------


def _yaml_files(path: Path) -> List[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


def _read_plain(path: Path, root: Path) -> Any:
    return plain_data(load_round_trip(path.read_text(encoding="utf-8"), relative_path(root, path)))


def _merged_domain(files: Sequence[Path], root: Path) -> Dict[str, Any]:
    """The domain Rasa would load from these files (as far as names and definitions go)."""
    merged: Dict[str, Any] = {"intents": [], "slots": {}, "actions": [], "responses": {}, "forms": {}}
    for path in files:
        data = _read_plain(path, root)
        if not isinstance(data, dict):
            continue
        for key in ("intents", "actions"):
            merged[key].extend(data.get(key) or [])
        for key in ("slots", "responses", "forms"):
            if isinstance(data.get(key), dict):
                merged[key].update(data[key])
    return merged


@dataclass
class _Flow:
    """A rule or story of the project's training data."""

    file: str
    kind: str  # "rule" or "story"
    name: str
    steps: List[Any]
    loop: Optional[str]  # the active loop a rule's condition requires


def _flows(data: Any, rel: str) -> Iterator[_Flow]:
    if not isinstance(data, dict):
        return
    for section, kind in (("rules", "rule"), ("stories", "story")):
        for flow in data.get(section) or []:
            if not isinstance(flow, dict) or not isinstance(flow.get("steps"), list):
                continue
            loop = next(
                (c.get("active_loop") for c in flow.get("condition") or [] if isinstance(c, dict) and c.get("active_loop")),
                None,
            )
            yield _Flow(rel, kind, str(flow.get(kind, "")), flow["steps"], loop)


def _step_intents(step: Any) -> List[str]:
    if not isinstance(step, dict):
        return []
    if "intent" in step:
        return [str(step["intent"])]
    return [str(option.get("intent")) for option in step.get("or") or [] if isinstance(option, dict) and "intent" in option]


def _answers(flow: _Flow, intent: str) -> List[Optional[str]]:
    """The first action after each step where the visitor says `intent` (None: the flow ends there)."""
    answers = []
    for index, step in enumerate(flow.steps):
        if intent not in _step_intents(step):
            continue
        action = None
        for later in flow.steps[index + 1 :]:
            if isinstance(later, dict) and "action" in later and later["action"] != "action_deactivate_loop":
                action = str(later["action"])
                break
        answers.append(action)
    return answers


def _examples(text: Any) -> List[str]:
    """The examples of an NLU `examples: |` block."""
    return [line.strip()[1:].strip() for line in str(text or "").splitlines() if line.strip().startswith("-")]


def _normalized(example: str) -> str:
    return " ".join(re.sub(r"\[([^\]]*)\]\([^)]*\)|\[([^\]]*)\]\{[^}]*\}", r"\1\2", example).lower().split())


_PLACEHOLDER = re.compile(r"{([^\n{}]+?)}")


def _slot_signature(definition: Any) -> Tuple[Any, ...]:
    if not isinstance(definition, dict):
        return (definition,)
    slot_type = definition.get("type")
    influence = definition.get("influence_conversation", slot_type != "any")
    return (slot_type, bool(influence), definition.get("mappings"), definition.get("initial_value"))


def _describe_slot(definition: Any) -> str:
    if not isinstance(definition, dict):
        return "not a slot definition"
    signature = _slot_signature(definition)
    mappings = ", ".join(str(m.get("type")) for m in signature[2] or [] if isinstance(m, dict)) or "none"
    return f"type {signature[0]}, influence_conversation {str(signature[1]).lower()}, mappings {mappings}"


# --- the channels a credentials file names --------------------------------------------------------------


def _module_file(root: Path, module: str) -> Optional[Path]:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _extends(root: Path, dotted: str, targets: frozenset[str], depth: int = 0) -> bool:
    """Whether the class `dotted` is one of `targets` or, read from the project's sources, a subclass of one."""
    if dotted in targets:
        return True
    module, _, name = dotted.rpartition(".")
    path = _module_file(root, module) if module and depth < 5 else None
    if path is None:
        return False
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return False
    imported: Dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                imported[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            for base in node.bases:
                base_name = ast.unparse(base)
                head, _, rest = base_name.partition(".")
                if head in imported:
                    resolved = imported[head] + (f".{rest}" if rest else "")
                else:
                    resolved = f"{module}.{base_name}"
                if _extends(root, resolved, targets, depth + 1):
                    return True
    return False


# --- the planner ----------------------------------------------------------------------------------------


class _Planner:
    def __init__(self, project: BotProject) -> None:
        self.project = project
        self.root = project.root
        self.findings: List[Finding] = []
        self.changes: List[FileChange] = []

    def plan(self) -> Plan:
        domain = self._plan_domain()
        self._plan_data(domain)
        self._plan_config()
        self._plan_credentials()
        self._plan_endpoints()
        self._plan_actions()
        return Plan(self.project, self.findings, self.changes)

    def _report(self, kind: str, file: str, message: str) -> None:
        self.findings.append(Finding(kind, file, message))

    def _finish(self, target: YamlFile) -> None:
        new = target.new_text()
        if new != (target.old or "") or (target.old is None and target.ops):
            self.changes.append(FileChange(target.path, target.rel, target.old, new))
            if target.rewritten and target.old:
                self._report(
                    NOTE,
                    target.rel,
                    "rewritten by ruamel.yaml (its layout, e.g. `[...]`, `{...}` or `~`, leaves no room to add lines): "
                    "comments and entries kept, indentation may differ",
                )

    # domain ---------------------------------------------------------------------------------------

    def _plan_domain(self) -> Dict[str, Any]:
        project, frag, template = self.project, fragment(), package_template(FRAGMENT)
        files = _yaml_files(project.domain)
        if project.domain_is_directory:
            path = project.domain / DOMAIN_DIR_FILE
            target = YamlFile(self.root, path, header=template.header())
            if target.old is None:
                target.add_entries(None, [Entry("version", DoubleQuotedScalarString("3.1"))])
        else:
            target = YamlFile(self.root, project.domain)
        user = _merged_domain(files, self.root)
        where = target.rel  # what is added goes there; what the user wrote may be in any file of a directory
        theirs = relative_path(self.root, project.domain) + ("/" if project.domain_is_directory else "")

        intents = set(entry_names(user["intents"]))
        missing_intents = [(i, name) for i, name in enumerate(entry_names(frag["intents"])) if name not in intents]
        if missing_intents and self._fits(target, "intents", list):
            target.add_items("intents", [Item(name, template.item_comments("intents", i)) for i, name in missing_intents])
            for _, name in missing_intents:
                self._report(ADDED, where, f"intent {name}")

        slot_entries = []
        for name, definition in frag["slots"].items():
            have = user["slots"].get(name)
            if name not in user["slots"]:
                slot_entries.append(
                    Entry(name, detached_copy(template.data["slots"][name]), template.key_comments("slots", name))
                )
                self._report(ADDED, where, f"slot {name}")
            elif _slot_signature(have) == _slot_signature(definition):
                continue
            elif name in OPTIONAL_SLOTS:
                self._report(NOTE, theirs, f"slot {name}: kept yours ({_describe_slot(have)}); the handoff only reads its value")
            else:
                self._report(
                    CONFLICT,
                    theirs,
                    f"slot {name} is defined as {_describe_slot(have)}; the handoff needs {_describe_slot(definition)} "
                    "(not replaced: change it by hand)",
                )
        if slot_entries and self._fits(target, "slots", dict):
            target.add_entries("slots", slot_entries, template.section_comments("slots"))

        actions = set(entry_names(user["actions"]))
        missing_actions = [(i, name) for i, name in enumerate(entry_names(frag["actions"])) if name not in actions]
        if missing_actions and self._fits(target, "actions", list):
            target.add_items("actions", [Item(name, template.item_comments("actions", i)) for i, name in missing_actions])
            for _, name in missing_actions:
                self._report(ADDED, where, f"action {name}")

        fillers = set(user["slots"]) | set(frag["slots"])
        response_entries = []
        for name, variations in frag["responses"].items():
            if name not in user["responses"]:
                response_entries.append(
                    Entry(name, detached_copy(template.data["responses"][name]), template.key_comments("responses", name))
                )
                self._report(ADDED, where, f"response {name}")
                continue
            have = user["responses"][name]
            if response_texts(have) == response_texts(variations):
                continue
            problem = self._response_problem(have, response_texts(variations), fillers)
            if problem:
                self._report(CONFLICT, theirs, f"response {name} {problem} (not replaced: change it by hand)")
            else:
                self._report(NOTE, theirs, f"response {name}: kept your wording")
        if response_entries and self._fits(target, "responses", dict):
            target.add_entries("responses", response_entries, template.section_comments("responses"))

        self._finish(target)
        return user

    @staticmethod
    def _response_problem(variations: Any, defaults: List[str], fillers: Set[str]) -> Optional[str]:
        texts = response_texts(variations)
        if not texts:
            return "has no text variation (the handoff says it on every channel, so it needs a `text`)"
        offered = {match for default in defaults for match in _PLACEHOLDER.findall(default)}
        for text in texts:
            unknown = sorted(set(_PLACEHOLDER.findall(text)) - offered - fillers)
            if unknown:
                names = ", ".join("{" + name + "}" for name in unknown)
                fills = ", ".join("{" + name + "}" for name in sorted(offered)) or "no variables"
                return f"uses {names}, which nothing fills (the handoff fills {fills}; slot names work too)"
        return None

    def _fits(self, target: YamlFile, section: str, kind: type) -> bool:
        if target.fits(section, kind):
            return True
        shape = "list" if kind is list else "mapping"
        self._report(CONFLICT, target.rel, f"`{section}:` is not a {shape}; nothing added to it")
        return False

    # training data --------------------------------------------------------------------------------

    def _plan_data(self, domain: Dict[str, Any]) -> None:
        data_dir = self.project.data
        examples: Dict[str, Set[str]] = {}
        flows: List[_Flow] = []
        for path in _yaml_files(data_dir):
            rel = relative_path(self.root, path)
            try:
                data = _read_plain(path, self.root)
            except ProjectError as e:
                self._report(NOTE, rel, f"skipped: {e}")
                continue
            if not isinstance(data, dict):
                continue
            for item in data.get("nlu") or []:
                if isinstance(item, dict) and item.get("intent"):
                    examples.setdefault(str(item["intent"]), set()).update(
                        _normalized(example) for example in _examples(item.get("examples"))
                    )
            flows.extend(_flows(data, rel))
        self._plan_nlu(data_dir, examples)
        self._plan_rules(data_dir, flows, domain)

    def _plan_nlu(self, data_dir: Path, examples: Dict[str, Set[str]]) -> None:
        template = package_template(NLU_TEMPLATE)
        target = YamlFile(self.root, data_dir / NLU_FILE, header=template.header(), default_offset=0)
        items = []
        for index, item in enumerate(template.data["nlu"]):
            intent = str(item["intent"])
            if examples.get(intent):
                continue
            taken = {example: other for other, known in examples.items() for example in known}
            kept: List[str] = []
            dropped: List[str] = []
            for example in _examples(item["examples"]):
                (dropped if _normalized(example) in taken else kept).append(example)
            value = detached_copy(item)
            value["examples"] = LiteralScalarString("".join(f"- {example}\n" for example in kept))
            items.append(Item(value, template.item_comments("nlu", index)))
            self._report(ADDED, target.rel, f"{len(kept)} examples of intent {intent}")
            if dropped:
                listing = ", ".join(f"{example!r} ({taken[_normalized(example)]})" for example in dropped)
                self._report(NOTE, target.rel, f"left out examples your data gives other intents: {listing}")
        self._add_data(target, "nlu", items)

    def _plan_rules(self, data_dir: Path, flows: List[_Flow], domain: Dict[str, Any]) -> None:
        template = package_template(RULES_TEMPLATE)
        target = YamlFile(self.root, data_dir / RULES_FILE, header=template.header(), default_offset=0)
        items = []
        for index, (intent, action) in enumerate(_handoff_rules()):
            handled, clashing = False, []
            for flow in flows:
                for answer in _answers(flow, intent):
                    if answer == action:
                        handled = handled or flow.loop is None
                    elif answer is not None:
                        clashing.append((flow, answer))
            for flow, answer in clashing:
                self._report(
                    CONFLICT,
                    flow.file,
                    f"{flow.kind} {flow.name!r} answers intent {intent} with {answer}; the handoff needs {action} "
                    "(no rule added: change yours by hand)",
                )
            if handled or clashing:
                continue
            items.append(Item(detached_copy(template.data["rules"][index]), template.item_comments("rules", index)))
            self._report(ADDED, target.rel, f"rule: intent {intent} runs {action}")
        self._add_data(target, "rules", items)
        self._note_forms(flows, domain)

    def _add_data(self, target: YamlFile, section: str, items: List[Item]) -> None:
        if not items:
            return
        if target.old is None:
            target.add_entries(None, [Entry("version", DoubleQuotedScalarString("3.1"))])
        if self._fits(target, section, list):
            target.add_items(section, items, spaced=True)
        self._finish(target)

    def _note_forms(self, flows: List[_Flow], domain: Dict[str, Any]) -> None:
        """A visitor asking for a person while a form runs needs a rule naming the form: init cannot write it."""
        intent, action = _handoff_rules()[0]
        covered = {flow.loop for flow in flows if flow.loop and action in _answers(flow, intent)}
        for form in domain["forms"]:
            if form in covered:
                continue
            self._report(
                NOTE,
                relative_path(self.root, self.project.domain) + ("/" if self.project.domain_is_directory else ""),
                f"form {form}: to hand off while it runs, add a rule with `condition: [active_loop: {form}]` and steps "
                f"`intent: {intent}`, `action: action_deactivate_loop`, `active_loop: null`, `action: {action}`",
            )

    # config.yml -----------------------------------------------------------------------------------

    def _plan_config(self) -> None:
        target = YamlFile(self.root, self.project.config)
        policies = target.section("policies")
        if isinstance(policies, list) and any(isinstance(p, Mapping) and str(p.get("name")) in POLICY_NAMES for p in policies):
            return
        if not self._fits(target, "policies", list):
            return
        if policies:
            target.add_items("policies", [Item({"name": POLICY})], first=True)
            self._report(ADDED, target.rel, f"policy {POLICY} (first)")
        else:
            items = [Item({"name": POLICY})] + [Item(dict(policy)) for policy in RASA_DEFAULT_POLICIES]
            target.add_items("policies", items)
            self._report(ADDED, target.rel, f"policy {POLICY}")
            defaults = ", ".join(policy["name"] for policy in RASA_DEFAULT_POLICIES)
            self._report(
                ADDED,
                target.rel,
                f"Rasa's default policies ({defaults}): `policies:` was empty, so Rasa used them; "
                "naming HandoffPolicy alone would have dropped them",
            )
        self._finish(target)

    # credentials.yml ------------------------------------------------------------------------------

    def _plan_credentials(self) -> None:
        target = YamlFile(self.root, self.project.credentials)
        channels = {str(key): value for key, value in target.data.items()}
        ours = next((key for key in channels if _extends(self.root, key, SOCKETIO_CHANNEL_NAMES)), None)
        our_path = DEFAULT_SOCKETIO_PATH
        if ours is not None and isinstance(channels[ours], Mapping):
            our_path = str(channels[ours].get("socketio_path") or DEFAULT_SOCKETIO_PATH)
        clash = None
        for key in channels:
            if key in RASA_SOCKETIO_NAMES:
                settings = channels[key] if isinstance(channels[key], Mapping) else {}
                if str(settings.get("socketio_path") or DEFAULT_SOCKETIO_PATH) == our_path:
                    clash = key
        entries = []
        if clash is not None:
            channel = ours or SOCKETIO_CHANNEL
            self._report(
                CONFLICT,
                target.rel,
                f"Rasa's `{clash}:` channel and {channel} both serve the socket at {our_path}: remove `{clash}:` "
                f"({channel} speaks the same protocol to the widget) or give one of them another `socketio_path`"
                + ("" if ours else f"; {SOCKETIO_CHANNEL} not added"),
            )
        elif ours is None:
            entries.append(
                Entry(
                    SOCKETIO_CHANNEL,
                    {"user_message_evt": "user_uttered", "bot_message_evt": "bot_uttered", "session_persistence": True},
                    ["# The website widget, with the Flex handoff (Rasa's socket.io protocol)."],
                )
            )
            self._report(ADDED, target.rel, f"channel {SOCKETIO_CHANNEL}")
        if not any(_extends(self.root, key, REST_CHANNEL_NAMES) for key in channels):
            entries.append(
                Entry(
                    REST_CHANNEL,
                    {},
                    ["# REST with the Flex handoff: POST /webhooks/handoff_rest/webhook."],
                )
            )
            self._report(ADDED, target.rel, f"channel {REST_CHANNEL}")
        target.add_entries(None, entries)
        self._finish(target)

    # endpoints.yml --------------------------------------------------------------------------------

    def _plan_endpoints(self) -> None:
        target = YamlFile(self.root, self.project.endpoints)
        if target.section("action_endpoint"):
            return
        url = Entry("url", DoubleQuotedScalarString(ACTION_ENDPOINT_URL))
        comment = ["# The action server, where the handoff actions run."]
        if target.has("action_endpoint"):
            target.add_entries("action_endpoint", [url])
        else:
            target.add_entries(None, [Entry("action_endpoint", {url.key: url.value}, comment)])
        self._report(ADDED, target.rel, f"action_endpoint {ACTION_ENDPOINT_URL}")
        self._finish(target)

    # the action package ---------------------------------------------------------------------------

    def _plan_actions(self) -> None:
        base = self.root.joinpath(*self.project.actions.split("."))
        single = base.with_suffix(".py")
        if single.is_file() and not (base / "__init__.py").is_file():  # Python prefers the package
            module, sources = single, [single]
        else:
            module = base / "__init__.py"
            sources = sorted(base.rglob("*.py")) if base.is_dir() else []
        rel = relative_path(self.root, module)
        for source in sources:
            try:
                tree = ast.parse(source.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError) as e:
                self._report(
                    CONFLICT, relative_path(self.root, source), f"cannot be read as Python ({e}); add `{ACTION_IMPORT}` by hand"
                )
                return
            if _imports_handoff_actions(tree):
                return
        old = read_user_file(module) if module.is_file() else None
        text = old or ""
        newline = "\r\n" if "\r\n" in text else "\n"
        if text and not text.endswith("\n"):
            text += newline
        if text.strip():
            text += newline
        text += "# The Flex handoff's actions (rasa-flex-handoff)." + newline + ACTION_IMPORT + newline
        self.changes.append(FileChange(module, rel, old, text))
        self._report(ADDED, rel, "import of the handoff actions" + (" (new file)" if old is None else ""))


def _imports_handoff_actions(tree: ast.AST) -> bool:
    """Whether a module imports `rasa_flex_handoff.actions` (which registers the handoff actions with rasa-sdk)."""
    target = f"{PACKAGE}.actions"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            if node.module == target or (node.module or "").startswith(target + "."):
                return True
            if node.module == PACKAGE and any(alias.name == "actions" for alias in node.names):
                return True
        if isinstance(node, ast.Import) and any(
            alias.name == target or alias.name.startswith(target + ".") for alias in node.names
        ):
            return True
    return False
