"""Adding entries to a user's YAML file by splicing them into its text.

`rasa-flex-handoff init` adds what the handoff needs to a bot's domain, config, credentials,
endpoints and training data; `YamlFile` collects those additions and writes them into the file's
text, so every comment, blank line and entry the user wrote stays byte for byte (checked by parsing
the result; ruamel.yaml's round-trip dump when a file's layout does not allow that).

A module of its own because this text surgery is independent of what the handoff adds: `bot_project`
decides what to add, this module how to write it. No Rasa import here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError


class ProjectError(Exception):
    """The directory is not a Rasa project init can work on, or one of its files cannot be read."""


# --- reading YAML -------------------------------------------------------------------------------------


def _round_trip() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True  # type: ignore[assignment]  # ruamel declares it None
    return yaml


def load_round_trip(text: str, where: str) -> Any:
    try:
        return _round_trip().load(text)
    except YAMLError as e:
        raise ProjectError(f"{where} is not valid YAML: {' '.join(str(e).split())}") from e


def plain_data(node: Any) -> Any:
    """Builtin types only (for comparing what files say)."""
    if isinstance(node, Mapping):
        return {str(key): plain_data(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [plain_data(item) for item in node]
    if isinstance(node, str):
        return str(node)
    return node


def detached_copy(node: Any) -> Any:
    """Plain containers, keeping scalar styles (quotes, literal blocks) but none of the source's comments."""
    if isinstance(node, Mapping):
        return {str(key): detached_copy(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [detached_copy(item) for item in node]
    return node


def read_user_file(path: Path) -> str:
    """A file's text with its own line endings (written back as they were)."""
    with path.open(encoding="utf-8", newline="") as f:
        return f.read()


def relative_path(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


# --- splicing additions into a YAML file ----------------------------------------------------------------


@dataclass
class Entry:
    key: str
    value: Any
    comments: List[str] = field(default_factory=list)


@dataclass
class Item:
    value: Any
    comments: List[str] = field(default_factory=list)


@dataclass
class _MapOp:
    section: Optional[str]  # None: top-level keys
    entries: List[Entry]
    comments: List[str] = field(default_factory=list)  # above the section, when it is created


@dataclass
class _SeqOp:
    section: str
    items: List[Item]
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


class YamlFile:
    """Additions to one YAML file (a mapping at the top), written into its text."""

    def __init__(self, root: Path, path: Path, header: Sequence[str] = (), default_offset: int = 2) -> None:
        self.path = path
        self.default_offset = default_offset  # for a file that shows no style of its own
        self.rel = relative_path(root, path)
        self.old: Optional[str] = read_user_file(path) if path.is_file() else None
        self.text = self.old or ""
        self.lines = self.text.splitlines(keepends=True)
        data = load_round_trip(self.text, self.rel)
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

    def add_entries(self, section: Optional[str], entries: List[Entry], comments: Sequence[str] = ()) -> None:
        if section is None:  # top-level keys: each its own paragraph
            self.ops.extend(_MapOp(None, [entry]) for entry in entries)
        elif entries:
            self.ops.append(_MapOp(section, entries, list(comments)))

    def add_items(
        self, section: str, items: List[Item], first: bool = False, comments: Sequence[str] = (), spaced: bool = False
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
            if plain_data(load_round_trip(text, self.rel)) == expected:
                return text
        except (_CannotSplice, ProjectError):  # a layout the splice does not handle: ruamel.yaml's round trip
            pass
        text = self._dumped()
        self.rewritten = True
        if plain_data(load_round_trip(text, self.rel)) != expected:  # pragma: no cover - a bug, never a user's file
            raise RuntimeError(f"could not add the handoff's entries to {self.rel}")
        return text

    def _expected(self) -> Any:
        data = plain_data(self.data)
        for op in self.ops:
            if isinstance(op, _MapOp):
                target = data
                if op.section is not None:
                    if data.get(op.section) is None:
                        data[op.section] = {}
                    target = data[op.section]
                target.update({entry.key: plain_data(entry.value) for entry in op.entries})
            else:
                items = [plain_data(item.value) for item in op.items]
                current = data.get(op.section) or []
                data[op.section] = items + current if op.first else current + items
        return data

    def _dumped(self) -> str:
        """ruamel.yaml's round trip: keeps comments and order, may re-indent."""
        data = load_round_trip(self.text, self.rel) or CommentedMap()
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
    def _entries_text(entries: Sequence[Entry], indent: int, offset: int) -> str:
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
