"""A Rasa 3.6 bot project as the handoff sees it: what the handoff needs from it, what it lacks, and adding that.

Two kinds of callers:

- `rasa-flex-handoff init` and `check` (`cli.py`): `find_project`, `plan_setup`, then `Plan.apply()`
  or `Plan.diff()`. Additions are spliced into the user's YAML text (checked by parsing the result;
  ruamel.yaml's round-trip dump when a file's layout does not allow that), so every comment,
  blank line and entry the user wrote stays byte for byte. An entry the user already has is never
  replaced: a definition the handoff cannot work with is reported as a conflict.
- the running bot: `missing_from_domain` and `check_domain` on the domain Rasa loaded (the policy
  at `rasa train`, the channels when the Rasa server starts, the actions on the domain rasa-sdk
  receives), so a bot missing a part gets an error naming it instead of a handoff that does nothing.

Everything the handoff needs in a domain is in the package's `domain.yml` fragment (with the
default wording of every visitor-facing text); the training data it adds is in `templates/`.
No Rasa import here: the action server (rasa-sdk only) imports this module too.
"""

from __future__ import annotations

import ast
import difflib
import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString

if TYPE_CHECKING:
    _SetupErrorBase = Exception
else:
    try:  # Rasa prints its own exceptions as one line, without a traceback.
        from rasa.shared.exceptions import RasaException as _SetupErrorBase
    except ImportError:  # the action server: rasa-sdk only
        _SetupErrorBase = Exception

PACKAGE = "rasa_flex_handoff"
FRAGMENT = "domain.yml"
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

# Slots init adds but the handoff works without (it only reads them).
OPTIONAL_SLOTS = frozenset({"visitor_name"})

ADDED = "added"
NOTE = "note"
CONFLICT = "conflict"


class HandoffSetupError(_SetupErrorBase):
    """The bot lacks something the handoff needs; the message names all of it on one line."""


class ProjectError(Exception):
    """The directory is not a Rasa project init can work on, or one of its files cannot be read."""


# --- the package's fragment and templates ---------------------------------------------------------------


def _resource_text(name: str) -> str:
    files = getattr(resources, "files", None)
    if files is None:  # pragma: no cover - Python 3.8
        return (Path(__file__).parent / name).read_text(encoding="utf-8")
    text: str = files(PACKAGE).joinpath(name).read_text(encoding="utf-8")
    return text


def _round_trip() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True  # type: ignore[assignment]  # ruamel declares it None
    return yaml


def _load(text: str, where: str) -> Any:
    try:
        return _round_trip().load(text)
    except YAMLError as e:
        raise ProjectError(f"{where} is not valid YAML: {' '.join(str(e).split())}") from e


def _plain(node: Any) -> Any:
    """Builtin types only (for comparing what files say)."""
    if isinstance(node, Mapping):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(item) for item in node]
    if isinstance(node, str):
        return str(node)
    return node


def _detached(node: Any) -> Any:
    """Plain containers, keeping scalar styles (quotes, literal blocks) but none of the source's comments."""
    if isinstance(node, Mapping):
        return {str(key): _detached(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_detached(item) for item in node]
    return node


@dataclass(frozen=True)
class _Template:
    """A YAML file of the package, with the comments written above its entries."""

    text: str
    data: Any

    @property
    def lines(self) -> List[str]:
        return self.text.splitlines()

    def comments_above(self, line: int) -> List[str]:
        """The comment lines directly above `line` (no blank line between), stripped of indentation."""
        lines = self.lines
        found: List[str] = []
        index = line - 1
        while index >= 0 and lines[index].strip().startswith("#"):
            found.insert(0, lines[index].strip())
            index -= 1
        return found

    def header(self) -> List[str]:
        """The comment lines a file starts with."""
        found = []
        for line in self.lines:
            if not line.strip().startswith("#"):
                break
            found.append(line.strip())
        return found

    def key_comments(self, section: str, key: str) -> List[str]:
        return self.comments_above(self.data[section].lc.key(key)[0])

    def item_comments(self, section: str, index: int) -> List[str]:
        return self.comments_above(self.data[section].lc.item(index)[0])

    def section_comments(self, section: str) -> List[str]:
        comments = self.comments_above(self.data.lc.key(section)[0])
        return [] if comments == self.header() else comments


@functools.lru_cache
def _template(name: str) -> _Template:
    text = _resource_text(name)
    return _Template(text, _load(text, f"{PACKAGE}/{name}"))


def fragment_text() -> str:
    """The package's domain fragment (`rasa_flex_handoff/domain.yml`): everything the handoff needs in a domain."""
    return _template(FRAGMENT).text


def fragment() -> Dict[str, Any]:
    """The domain fragment as plain data."""
    data: Dict[str, Any] = _plain(_template(FRAGMENT).data)
    return data


def default_responses() -> Dict[str, str]:
    """The default wording of every visitor-facing text: response name -> text (from the fragment)."""
    return {name: _texts(variations)[0] for name, variations in fragment()["responses"].items()}


@functools.lru_cache
def _handoff_rules() -> Tuple[Tuple[str, str], ...]:
    """(intent, action) of each rule in the rules template."""
    pairs = []
    for rule in _plain(_template(RULES_TEMPLATE).data)["rules"]:
        steps = rule["steps"]
        pairs.append((steps[0]["intent"], steps[1]["action"]))
    return tuple(pairs)


# --- the running bot's check ----------------------------------------------------------------------------


def _names(entries: Any) -> List[str]:
    """Names in a domain list whose entries are names or {name: properties} (intents, actions)."""
    if isinstance(entries, Mapping):
        return [str(key) for key in entries]
    names: List[str] = []
    for entry in entries or []:
        if isinstance(entry, Mapping):
            names.extend(str(key) for key in entry)
        elif entry is not None:
            names.append(str(entry))
    return names


def _domain_names(domain: Mapping[str, Any]) -> Dict[str, Set[str]]:
    return {
        "intent": set(_names(domain.get("intents"))),
        "slot": set(_names(domain.get("slots"))),
        "action": set(_names(domain.get("actions"))),
        "response": set(_names(domain.get("responses"))),
    }


def _required() -> Dict[str, List[str]]:
    frag = fragment()
    return {
        "intent": _names(frag["intents"]),
        "slot": [name for name in frag["slots"] if name not in OPTIONAL_SLOTS],
        "action": _names(frag["actions"]),
        "response": list(frag["responses"]),
    }


def missing_from_domain(domain: Mapping[str, Any]) -> List[str]:
    """What the handoff needs that a domain (its dict form: Rasa's `Domain.as_dict()`, or the domain
    rasa-sdk actions receive) lacks, as "slot handoff_status", "response utter_bot_back", ...; empty when complete."""
    have = _domain_names(domain)
    return [f"{kind} {name}" for kind, names in _required().items() for name in names if name not in have[kind]]


def setup_error(missing: Sequence[str]) -> HandoffSetupError:
    """The exception naming everything missing, on one line."""
    by_kind: Dict[str, List[str]] = {}
    for entry in missing:
        kind, _, name = entry.partition(" ")
        by_kind.setdefault(kind, []).append(name)
    parts = "; ".join(f"{kind}{'s' if len(names) > 1 else ''} {', '.join(names)}" for kind, names in by_kind.items())
    return HandoffSetupError(
        f"The bot's domain lacks what {PACKAGE} needs: {parts}. Run `rasa-flex-handoff init` in the bot's "
        f"project (or copy them from {PACKAGE}/{FRAGMENT}) and train again."
    )


def check_domain(domain: Any) -> None:
    """Raise `HandoffSetupError` naming everything the handoff needs that `domain` lacks.

    `domain` is a Rasa `Domain` (anything with `as_dict()`) or a domain dict.
    """
    data = domain.as_dict() if hasattr(domain, "as_dict") else domain
    missing = missing_from_domain(data if isinstance(data, Mapping) else {})
    if missing:
        raise setup_error(missing)


# --- splicing additions into a YAML file ----------------------------------------------------------------


@dataclass
class _Entry:
    key: str
    value: Any
    comments: List[str] = field(default_factory=list)


@dataclass
class _Item:
    value: Any
    comments: List[str] = field(default_factory=list)


@dataclass
class _MapOp:
    section: Optional[str]  # None: top-level keys
    entries: List[_Entry]
    comments: List[str] = field(default_factory=list)  # above the section, when it is created


@dataclass
class _SeqOp:
    section: str
    items: List[_Item]
    first: bool = False
    comments: List[str] = field(default_factory=list)
    spaced: bool = False  # a blank line between items (NLU intents, rules)


_Op = Union[_MapOp, _SeqOp]


class _CannotSplice(Exception):
    pass


_KEY_ONLY = re.compile(r"^[^\s#-][^#]*?:\s*(#.*)?$")  # a top-level key without a value on its line
_KEY_LINE = re.compile(r"^\s*[^\s#-][^#]*?:\s*(#.*)?$")  # any key without a value on its line
_DASH = re.compile(r"^(\s*)-(\s|$)")


def _dump(value: Any, offset: int) -> List[str]:
    yaml = YAML()
    yaml.indent(mapping=2, sequence=offset + 2, offset=offset)
    yaml.width = 4096  # type: ignore[assignment]
    out = StringIO()
    yaml.dump(value, out)
    return out.getvalue().splitlines(keepends=True)


def _indented(lines: Iterable[str], indent: int) -> str:
    return "".join((" " * indent + line) if line.strip() else line for line in lines)


def _comment_lines(comments: Sequence[str], indent: int) -> str:
    return "".join(" " * indent + comment + "\n" for comment in comments)


class _YamlFile:
    """Additions to one YAML file (a mapping at the top), written into its text."""

    def __init__(self, root: Path, path: Path, header: Sequence[str] = (), default_offset: int = 2) -> None:
        self.path = path
        self.default_offset = default_offset  # for a file that shows no style of its own
        self.rel = _relative(root, path)
        self.old: Optional[str] = _read(path) if path.is_file() else None
        self.text = self.old or ""
        self.lines = self.text.splitlines(keepends=True)
        data = _load(self.text, self.rel)
        if data is None:
            data = CommentedMap()
        if not isinstance(data, CommentedMap):
            raise ProjectError(f"{self.rel} does not hold a YAML mapping")
        self.data = data
        self.header = list(header) if self.old is None else []
        self.ops: List[_Op] = []
        self.rewritten = False  # by ruamel.yaml's round trip, not spliced

    def section(self, name: str) -> Any:
        return self.data.get(name)

    def has(self, name: str) -> bool:
        return name in self.data

    def fits(self, name: str, kind: type) -> bool:
        """Whether a section is absent, empty or of the given kind (dict or list), so entries can be added."""
        value = self.data.get(name)
        return value is None or isinstance(value, kind)

    def add_entries(self, section: Optional[str], entries: List[_Entry], comments: Sequence[str] = ()) -> None:
        if section is None:  # top-level keys: each its own paragraph
            self.ops.extend(_MapOp(None, [entry]) for entry in entries)
        elif entries:
            self.ops.append(_MapOp(section, entries, list(comments)))

    def add_items(
        self, section: str, items: List[_Item], first: bool = False, comments: Sequence[str] = (), spaced: bool = False
    ) -> None:
        if items:
            self.ops.append(_SeqOp(section, items, first, list(comments), spaced))

    # The text with the additions --------------------------------------------------------------------

    def new_text(self) -> str:
        if not self.ops:
            return self.text
        expected = self._expected()
        try:
            text = self._spliced()
            if _plain(_load(text, self.rel)) == expected:
                return text
        except (_CannotSplice, ProjectError):  # a layout the splice does not handle: ruamel.yaml's round trip
            pass
        text = self._dumped()
        self.rewritten = True
        if _plain(_load(text, self.rel)) != expected:  # pragma: no cover - a bug, never a user's file
            raise RuntimeError(f"could not add the handoff's entries to {self.rel}")
        return text

    def _expected(self) -> Any:
        data = _plain(self.data)
        for op in self.ops:
            if isinstance(op, _MapOp):
                target = data
                if op.section is not None:
                    if data.get(op.section) is None:
                        data[op.section] = {}
                    target = data[op.section]
                target.update({entry.key: _plain(entry.value) for entry in op.entries})
            else:
                items = [_plain(item.value) for item in op.items]
                current = data.get(op.section) or []
                data[op.section] = items + current if op.first else current + items
        return data

    def _dumped(self) -> str:
        """ruamel.yaml's round trip: keeps comments and order, may re-indent."""
        data = _load(self.text, self.rel) or CommentedMap()
        for op in self.ops:
            if isinstance(op, _MapOp):
                target = data
                if op.section is not None:
                    if data.get(op.section) is None:
                        data[op.section] = CommentedMap()
                    target = data[op.section]
                for entry in op.entries:
                    target[entry.key] = entry.value
            else:
                if data.get(op.section) is None:
                    data[op.section] = CommentedSeq()
                for index, item in enumerate(op.items):
                    if op.first:
                        data[op.section].insert(index, item.value)
                    else:
                        data[op.section].append(item.value)
        yaml = _round_trip()
        yaml.indent(mapping=2, sequence=4, offset=2)
        yaml.width = 4096  # type: ignore[assignment]
        out = StringIO()
        yaml.dump(data, out)
        text = "".join(f"{line}\n" for line in self.header) + out.getvalue()
        return text.replace("\n", "\r\n") if "\r\n" in self.text else text

    def _spliced(self) -> str:
        first_key_line = self.data.lc.key(next(iter(self.data)))[0] if self.data else 0
        for index, line in enumerate(self.lines):
            if index > first_key_line and re.match(r"^(---|\.\.\.)(\s|$)", line):
                raise _CannotSplice  # several documents
        newline = "\r\n" if "\r\n" in self.text else "\n"  # the file's own line endings
        insertions = [(line, text.replace("\n", newline), separate) for line, text, separate in map(self._insertion, self.ops)]
        # At one position (the end of the file), the last section's own additions go before new sections.
        insertions.sort(key=lambda insertion: insertion[2])
        at_end = len(self.lines)
        out: List[str] = [f"{line}\n" for line in self.header]

        def emit(index: int) -> None:
            for position, text, separate in insertions:
                if position != index:
                    continue
                if out and not out[-1].endswith("\n"):
                    out[-1] += newline
                if separate and out and out[-1].strip():
                    out.append(newline)
                out.append(text)

        for index, line in enumerate(self.lines):
            emit(index)
            out.append(line)
        emit(at_end)
        return "".join(out)

    def _insertion(self, op: _Op) -> Tuple[int, str, bool]:
        """(line to insert before, text, whether a blank line should separate it from what is above)."""
        end = len(self.lines)
        if op.section is None:
            assert isinstance(op, _MapOp)
            return end, self._entries_text(op.entries, 0, self._offset(0, end)), True
        style = self._offset(0, end)
        if op.section not in self.data:
            body = self._entries_text(op.entries, 2, style) if isinstance(op, _MapOp) else self._items_text(op, style, style)
            return end, _comment_lines(op.comments, 0) + f"{op.section}:\n" + body, True
        node = self.data[op.section]
        key_line = self.data.lc.key(op.section)[0]
        if node is None:
            if not _KEY_ONLY.match(self.lines[key_line].rstrip("\r\n")):
                raise _CannotSplice  # `section: ~` or `section: null`
            body = self._entries_text(op.entries, 2, style) if isinstance(op, _MapOp) else self._items_text(op, style, style)
            return key_line + 1, body, False
        if not node or node.fa.flow_style():
            raise _CannotSplice
        section_end = self._section_end(op.section, key_line)
        style = self._offset(key_line, section_end)
        if isinstance(op, _MapOp):
            if not isinstance(node, CommentedMap):
                raise _CannotSplice
            column = node.lc.key(next(iter(node)))[1]
            return section_end, self._entries_text(op.entries, column, style), False
        if not isinstance(node, CommentedSeq):
            raise _CannotSplice
        first_line = node.lc.item(0)[0]
        dash = _DASH.match(self.lines[first_line])
        if dash is None:
            raise _CannotSplice
        text = self._items_text(op, len(dash.group(1)), style)
        if not op.first:
            return section_end, text, op.spaced
        position = first_line
        while position - 1 > key_line and self.lines[position - 1].strip().startswith("#"):
            position -= 1  # above the first item's own comment
        return position, text, False

    def _section_end(self, section: str, key_line: int) -> int:
        """The line after the last one holding the section's content (its trailing comments and blank lines excluded)."""
        keys = list(self.data)
        following = keys[keys.index(section) + 1 :]
        end = self.data.lc.key(following[0])[0] if following else len(self.lines)
        while end - 1 > key_line and (not self.lines[end - 1].strip() or self.lines[end - 1].lstrip().startswith("#")):
            end -= 1
        return end

    def _offset(self, start: int, end: int) -> int:
        """How far this file indents a block sequence's dashes from their key (0 or 2): first in the section, else anywhere."""
        for low, high in ((start, end), (0, len(self.lines))):
            for index in range(low, high):
                line = self.lines[index].rstrip("\r\n")
                if not _KEY_LINE.match(line):
                    continue
                indent = len(line) - len(line.lstrip(" "))
                following = next(
                    (text for text in self.lines[index + 1 : high] if text.strip() and not text.lstrip().startswith("#")), ""
                )
                dash = _DASH.match(following)
                if dash and len(dash.group(1)) - indent in (0, 2):
                    return len(dash.group(1)) - indent
        return self.default_offset

    @staticmethod
    def _entries_text(entries: Sequence[_Entry], indent: int, offset: int) -> str:
        parts = []
        for entry in entries:
            parts.append(_comment_lines(entry.comments, indent))
            parts.append(_indented(_dump({entry.key: entry.value}, offset), indent))
        return "".join(parts)

    @staticmethod
    def _items_text(op: _SeqOp, dash_column: int, offset: int) -> str:
        parts = []
        for index, item in enumerate(op.items):
            lines = _dump([item.value], offset)
            if op.spaced and index:
                parts.append("\n")
            parts.append(_comment_lines(item.comments, dash_column))
            parts.append(_indented((line[offset:] if line.startswith(" " * offset) else line for line in lines), dash_column))
        return "".join(parts)


def _read(path: Path) -> str:
    """A file's text with its own line endings (written back as they were)."""
    with path.open(encoding="utf-8", newline="") as f:
        return f.read()


def _relative(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


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
    return _plain(_load(path.read_text(encoding="utf-8"), _relative(root, path)))


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


def _texts(variations: Any) -> List[str]:
    if not isinstance(variations, list):
        return []
    return [str(v["text"]) for v in variations if isinstance(v, dict) and isinstance(v.get("text"), str) and v["text"].strip()]


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

    def _finish(self, target: _YamlFile) -> None:
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
        project, frag, template = self.project, fragment(), _template(FRAGMENT)
        files = _yaml_files(project.domain)
        if project.domain_is_directory:
            path = project.domain / DOMAIN_DIR_FILE
            target = _YamlFile(self.root, path, header=template.header())
            if target.old is None:
                target.add_entries(None, [_Entry("version", DoubleQuotedScalarString("3.1"))])
        else:
            target = _YamlFile(self.root, project.domain)
        user = _merged_domain(files, self.root)
        where = target.rel  # what is added goes there; what the user wrote may be in any file of a directory
        theirs = _relative(self.root, project.domain) + ("/" if project.domain_is_directory else "")

        intents = set(_names(user["intents"]))
        missing_intents = [(i, name) for i, name in enumerate(_names(frag["intents"])) if name not in intents]
        if missing_intents and self._fits(target, "intents", list):
            target.add_items("intents", [_Item(name, template.item_comments("intents", i)) for i, name in missing_intents])
            for _, name in missing_intents:
                self._report(ADDED, where, f"intent {name}")

        slot_entries = []
        for name, definition in frag["slots"].items():
            have = user["slots"].get(name)
            if name not in user["slots"]:
                slot_entries.append(_Entry(name, _detached(template.data["slots"][name]), template.key_comments("slots", name)))
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

        actions = set(_names(user["actions"]))
        missing_actions = [(i, name) for i, name in enumerate(_names(frag["actions"])) if name not in actions]
        if missing_actions and self._fits(target, "actions", list):
            target.add_items("actions", [_Item(name, template.item_comments("actions", i)) for i, name in missing_actions])
            for _, name in missing_actions:
                self._report(ADDED, where, f"action {name}")

        fillers = set(user["slots"]) | set(frag["slots"])
        response_entries = []
        for name, variations in frag["responses"].items():
            if name not in user["responses"]:
                response_entries.append(
                    _Entry(name, _detached(template.data["responses"][name]), template.key_comments("responses", name))
                )
                self._report(ADDED, where, f"response {name}")
                continue
            have = user["responses"][name]
            if _texts(have) == _texts(variations):
                continue
            problem = self._response_problem(have, _texts(variations), fillers)
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
        texts = _texts(variations)
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

    def _fits(self, target: _YamlFile, section: str, kind: type) -> bool:
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
            rel = _relative(self.root, path)
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
        template = _template(NLU_TEMPLATE)
        target = _YamlFile(self.root, data_dir / NLU_FILE, header=template.header(), default_offset=0)
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
            value = _detached(item)
            value["examples"] = LiteralScalarString("".join(f"- {example}\n" for example in kept))
            items.append(_Item(value, template.item_comments("nlu", index)))
            self._report(ADDED, target.rel, f"{len(kept)} examples of intent {intent}")
            if dropped:
                listing = ", ".join(f"{example!r} ({taken[_normalized(example)]})" for example in dropped)
                self._report(NOTE, target.rel, f"left out examples your data gives other intents: {listing}")
        self._add_data(target, "nlu", items)

    def _plan_rules(self, data_dir: Path, flows: List[_Flow], domain: Dict[str, Any]) -> None:
        template = _template(RULES_TEMPLATE)
        target = _YamlFile(self.root, data_dir / RULES_FILE, header=template.header(), default_offset=0)
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
            items.append(_Item(_detached(template.data["rules"][index]), template.item_comments("rules", index)))
            self._report(ADDED, target.rel, f"rule: intent {intent} runs {action}")
        self._add_data(target, "rules", items)
        self._note_forms(flows, domain)

    def _add_data(self, target: _YamlFile, section: str, items: List[_Item]) -> None:
        if not items:
            return
        if target.old is None:
            target.add_entries(None, [_Entry("version", DoubleQuotedScalarString("3.1"))])
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
                _relative(self.root, self.project.domain) + ("/" if self.project.domain_is_directory else ""),
                f"form {form}: to hand off while it runs, add a rule with `condition: [active_loop: {form}]` and steps "
                f"`intent: {intent}`, `action: action_deactivate_loop`, `active_loop: null`, `action: {action}`",
            )

    # config.yml -----------------------------------------------------------------------------------

    def _plan_config(self) -> None:
        target = _YamlFile(self.root, self.project.config)
        policies = target.section("policies")
        if isinstance(policies, list) and any(isinstance(p, Mapping) and str(p.get("name")) in POLICY_NAMES for p in policies):
            return
        if not self._fits(target, "policies", list):
            return
        if policies:
            target.add_items("policies", [_Item({"name": POLICY})], first=True)
            self._report(ADDED, target.rel, f"policy {POLICY} (first)")
        else:
            items = [_Item({"name": POLICY})] + [_Item(dict(policy)) for policy in RASA_DEFAULT_POLICIES]
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
        target = _YamlFile(self.root, self.project.credentials)
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
                _Entry(
                    SOCKETIO_CHANNEL,
                    {"user_message_evt": "user_uttered", "bot_message_evt": "bot_uttered", "session_persistence": True},
                    ["# The website widget, with the Flex handoff (Rasa's socket.io protocol)."],
                )
            )
            self._report(ADDED, target.rel, f"channel {SOCKETIO_CHANNEL}")
        if not any(_extends(self.root, key, REST_CHANNEL_NAMES) for key in channels):
            entries.append(
                _Entry(
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
        target = _YamlFile(self.root, self.project.endpoints)
        if target.section("action_endpoint"):
            return
        url = _Entry("url", DoubleQuotedScalarString(ACTION_ENDPOINT_URL))
        comment = ["# The action server, where the handoff actions run."]
        if target.has("action_endpoint"):
            target.add_entries("action_endpoint", [url])
        else:
            target.add_entries(None, [_Entry("action_endpoint", {url.key: url.value}, comment)])
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
        rel = _relative(self.root, module)
        for source in sources:
            try:
                tree = ast.parse(source.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError) as e:
                self._report(
                    CONFLICT, _relative(self.root, source), f"cannot be read as Python ({e}); add `{ACTION_IMPORT}` by hand"
                )
                return
            if _imports_handoff_actions(tree):
                return
        old = _read(module) if module.is_file() else None
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
