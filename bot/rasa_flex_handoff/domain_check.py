"""What the handoff needs in a bot's domain, and the check that the domain has it.

Everything the handoff needs is in the package's `domain.yml` fragment (with the default wording of
every visitor-facing text); `fragment()` and `default_responses()` read it, `package_template` the package's
other YAML files (with the comments `rasa-flex-handoff init` copies). The running bot checks its
domain with `missing_from_domain` and `check_domain` (the policy at `rasa train`, the channels when
the Rasa server starts, the actions on the domain rasa-sdk receives), so a bot missing a part gets
an error naming it instead of a handoff that does nothing.

A module of its own so the running bot does not load `rasa-flex-handoff init`'s project planning.
No Rasa import here: the action server (rasa-sdk only) imports this module too. The package's YAML
files are read with ruamel.yaml's round trip (`yaml_splice.load_round_trip`), which keeps their comments.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Sequence, Set

from rasa_flex_handoff.yaml_splice import load_round_trip, plain_data

if TYPE_CHECKING:
    _SetupErrorBase = Exception
else:
    try:  # Rasa prints its own exceptions as one line, without a traceback.
        from rasa.shared.exceptions import RasaException as _SetupErrorBase
    except ImportError:  # the action server: rasa-sdk only
        _SetupErrorBase = Exception

PACKAGE = "rasa_flex_handoff"
FRAGMENT = "domain.yml"

# Slots init adds but the handoff works without (it only reads them).
OPTIONAL_SLOTS = frozenset({"visitor_name"})


class HandoffSetupError(_SetupErrorBase):
    """The bot lacks something the handoff needs; the message names all of it on one line."""


# --- the package's fragment and templates ---------------------------------------------------------------


def _resource_text(name: str) -> str:
    files = getattr(resources, "files", None)
    if files is None:  # pragma: no cover - Python 3.8
        return (Path(__file__).parent / name).read_text(encoding="utf-8")
    text: str = files(PACKAGE).joinpath(name).read_text(encoding="utf-8")
    return text


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
def package_template(name: str) -> _Template:
    text = _resource_text(name)
    return _Template(text, load_round_trip(text, f"{PACKAGE}/{name}"))


def fragment_text() -> str:
    """The package's domain fragment (`rasa_flex_handoff/domain.yml`): everything the handoff needs in a domain."""
    return package_template(FRAGMENT).text


def fragment() -> Dict[str, Any]:
    """The domain fragment as plain data."""
    data: Dict[str, Any] = plain_data(package_template(FRAGMENT).data)
    return data


def default_responses() -> Dict[str, str]:
    """The default wording of every visitor-facing text: response name -> text (from the fragment)."""
    return {name: response_texts(variations)[0] for name, variations in fragment()["responses"].items()}


def response_texts(variations: Any) -> List[str]:
    if not isinstance(variations, list):
        return []
    return [str(v["text"]) for v in variations if isinstance(v, dict) and isinstance(v.get("text"), str) and v["text"].strip()]


# --- the running bot's check ----------------------------------------------------------------------------


def entry_names(entries: Any) -> List[str]:
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
        "intent": set(entry_names(domain.get("intents"))),
        "slot": set(entry_names(domain.get("slots"))),
        "action": set(entry_names(domain.get("actions"))),
        "response": set(entry_names(domain.get("responses"))),
    }


def _required() -> Dict[str, List[str]]:
    frag = fragment()
    return {
        "intent": entry_names(frag["intents"]),
        "slot": [name for name in frag["slots"] if name not in OPTIONAL_SLOTS],
        "action": entry_names(frag["actions"]),
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
