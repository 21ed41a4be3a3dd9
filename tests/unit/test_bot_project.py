"""`rasa-flex-handoff init` / `check` on copies of Rasa's own `rasa init` project, and the domain check the running bot does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import rasa
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.core.domain import Domain
from rasa.shared.exceptions import RasaException
from ruamel.yaml import YAML

import rasa_flex_handoff
from rasa_flex_handoff import bot_project
from rasa_flex_handoff.bot_project import find_project, plan_setup
from rasa_flex_handoff.cli import main
from rasa_flex_handoff.domain_check import (
    HandoffSetupError,
    check_domain,
    default_responses,
    fragment,
    fragment_text,
    missing_from_domain,
)
from rasa_flex_handoff.policy import HandoffPolicy

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
RASA_INIT_PROJECT = Path(rasa.__file__).parent / "cli" / "initial_project"
USER_COMMENT = "# Our support bot: keep this comment."


def snapshot(directory: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def load(path: Path) -> Dict:
    return YAML(typ="safe").load(path.read_text())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def is_subsequence(original: List[str], changed: List[str]) -> bool:
    """Every original line is still there, in the same order (additions only)."""
    remaining = iter(changed)
    return all(any(line == other for other in remaining) for line in original)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """What `rasa init` writes, plus a comment of the user's own in the domain."""
    directory = tmp_path / "bot"
    shutil.copytree(RASA_INIT_PROJECT, directory, ignore=shutil.ignore_patterns("__pycache__"))
    domain = directory / "domain.yml"
    domain.write_text(domain.read_text().replace("intents:\n", f"{USER_COMMENT}\nintents:\n", 1))
    return directory


@pytest.fixture
def domain_dir_project(project: Path) -> Path:
    """The same project with its domain split into a directory."""
    data = load(project / "domain.yml")
    (project / "domain.yml").unlink()
    (project / "domain").mkdir()
    (project / "domain" / "intents.yml").write_text(
        f'version: "3.1"\n{USER_COMMENT}\nintents:\n' + "".join(f"  - {intent}\n" for intent in data["intents"])
    )
    responses = {"version": "3.1", "responses": data["responses"], "session_config": data["session_config"]}
    with (project / "domain" / "responses.yml").open("w") as f:
        YAML().dump(responses, f)
    return project


def rasa_validate(directory: Path, domain: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RASA_TELEMETRY_ENABLED": "false"}
    return subprocess.run(
        [str(VENV_BIN / "rasa"), "data", "validate", "--domain", domain, "--data", "data", "--config", "config.yml"],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )


# --- the fragment -------------------------------------------------------------------------------------


def test_fragment_is_a_rasa_domain_with_the_handoff_parts() -> None:
    domain = Domain.from_yaml(fragment_text())
    assert missing_from_domain(domain.as_dict()) == []
    assert set(domain.intents) >= {"talk_to_agent", "end_chat"}
    assert default_responses()["utter_handoff_agent_joined"] == "{agent} joined the chat."
    assert default_responses()["utter_handoff_attachment"] == "sent a file, {filename}: {url}"
    for name in ("handoff_status", "handoff_last_index"):
        assert fragment()["slots"][name] == {"type": "any", "influence_conversation": False, "mappings": [{"type": "custom"}]}


# --- init on a `rasa init` project --------------------------------------------------------------------


def test_init_adds_everything_and_keeps_what_the_user_wrote(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(project)
    code, out = run(capsys, "init", str(project))
    assert code == 0, out

    domain = Domain.load(str(project / "domain.yml"))
    assert missing_from_domain(domain.as_dict()) == []
    assert "visitor_name" in domain.as_dict()["slots"]
    assert "added     domain.yml: slot handoff_status" in out
    assert "added     domain.yml: intent talk_to_agent" in out

    # Only additions: every line the user had (their comment, rasa init's comments) is still there, in order.
    for name in ("domain.yml", "config.yml", "credentials.yml", "endpoints.yml"):
        old, new = before[name].decode().splitlines(), (project / name).read_text().splitlines()
        assert len(new) > len(old), name
        assert is_subsequence(old, new), name
    assert USER_COMMENT in (project / "domain.yml").read_text()
    assert "# The visitor asks for a person" in (project / "domain.yml").read_text()  # the fragment's comment came along

    # rasa init's policies are commented out, so Rasa used its defaults: they are written out after HandoffPolicy.
    policies = [p["name"] for p in load(project / "config.yml")["policies"]]
    assert policies == [
        "rasa_flex_handoff.HandoffPolicy",
        "MemoizationPolicy",
        "RulePolicy",
        "UnexpecTEDIntentPolicy",
        "TEDPolicy",
    ]
    assert "Rasa's default policies" in out

    credentials = load(project / "credentials.yml")
    assert credentials["rasa_flex_handoff.SocketIOInput"] == {
        "user_message_evt": "user_uttered",
        "bot_message_evt": "bot_uttered",
        "session_persistence": True,
    }
    assert credentials["rasa_flex_handoff.RestInput"] == {}
    assert "rest" in credentials and credentials["rasa"] == {"url": "http://localhost:5002/api"}
    assert load(project / "endpoints.yml")["action_endpoint"] == {"url": "http://localhost:5055/webhook"}
    assert bot_project.ACTION_IMPORT in (project / "actions" / "__init__.py").read_text()

    nlu = {item["intent"]: item["examples"] for item in load(project / "data" / "handoff_nlu.yml")["nlu"]}
    assert len(nlu["talk_to_agent"].splitlines()) >= 25 and len(nlu["end_chat"].splitlines()) >= 12
    rules = load(project / "data" / "handoff_rules.yml")["rules"]
    assert [rule["steps"] for rule in rules] == [
        [{"intent": "talk_to_agent"}, {"action": "action_handoff_to_agent"}],
        [{"intent": "end_chat"}, {"action": "action_end_handoff"}],
    ]


def test_second_run_changes_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "init", str(project))[0] == 0
    after_first = snapshot(project)
    code, out = run(capsys, "init", str(project))
    assert code == 0
    assert "Nothing needed changing." in out
    assert "added" not in out
    assert snapshot(project) == after_first
    assert run(capsys, "check", str(project)) == (0, f"{project} has everything the handoff needs.\n")


def test_dry_run_prints_the_diff_and_writes_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(project)
    code, out = run(capsys, "init", str(project), "--dry-run")
    assert code == 0
    assert snapshot(project) == before
    assert "--- a/domain.yml\n+++ b/domain.yml\n" in out
    assert "+  - talk_to_agent\n" in out
    assert "--- /dev/null\n+++ b/data/handoff_nlu.yml\n" in out
    assert "+  - name: rasa_flex_handoff.HandoffPolicy\n" in out
    assert "nothing was written" in out


def test_check_names_what_is_missing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(project)
    code, out = run(capsys, "check", str(project))
    assert code == 1
    assert "missing   domain.yml: slot handoff_status" in out
    assert "missing   config.yml: policy rasa_flex_handoff.HandoffPolicy" in out
    assert snapshot(project) == before


def test_existing_policies_get_handoff_policy_first(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = project / "config.yml"
    config.write_text(
        "recipe: default.v1\nlanguage: en\npipeline:\n- name: WhitespaceTokenizer\npolicies:\n"
        "# Tuned for our stories.\n- name: MemoizationPolicy\n  max_history: 3\n- name: RulePolicy\n"
    )
    code, out = run(capsys, "init", str(project))
    assert code == 0, out
    assert config.read_text() == (
        "recipe: default.v1\nlanguage: en\npipeline:\n- name: WhitespaceTokenizer\npolicies:\n"
        "- name: rasa_flex_handoff.HandoffPolicy\n"
        "# Tuned for our stories.\n- name: MemoizationPolicy\n  max_history: 3\n- name: RulePolicy\n"
    )
    assert "Rasa's default policies" not in out


def test_a_conflicting_response_is_reported_not_replaced(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    domain = project / "domain.yml"
    domain.write_text(
        domain.read_text().replace(
            "responses:\n",
            "responses:\n"
            '  utter_handoff_agent_joined:\n  - text: "{agent_name} ist jetzt da."\n'  # nothing fills {agent_name}
            '  utter_bot_back:\n  - text: "Wieder beim Bot."\n',  # a translation: kept, not a problem
            1,
        )
    )
    code, out = run(capsys, "init", str(project))
    assert code == 1
    assert "CONFLICT  domain.yml: response utter_handoff_agent_joined uses {agent_name}, which nothing fills" in out
    assert "note      domain.yml: response utter_bot_back: kept your wording" in out
    assert "1 conflict:" in out
    responses = load(domain)["responses"]
    assert responses["utter_handoff_agent_joined"] == [{"text": "{agent_name} ist jetzt da."}]
    assert responses["utter_bot_back"] == [{"text": "Wieder beim Bot."}]
    assert domain.read_text().count("utter_handoff_agent_joined:") == 1
    assert "utter_handoff_agent_left" in responses  # the rest was still added
    # Still reported on the next run, which changes nothing else.
    after = snapshot(project)
    code, out = run(capsys, "init", str(project))
    assert code == 1 and "CONFLICT" in out and "Nothing needed changing." in out
    assert snapshot(project) == after


def test_a_conflicting_slot_and_rule_are_reported_not_replaced(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    domain = project / "domain.yml"
    domain.write_text(domain.read_text() + "\nslots:\n  handoff_status:\n    type: text\n    mappings:\n    - type: from_text\n")
    rules = project / "data" / "rules.yml"
    rules.write_text(
        rules.read_text() + "\n- rule: no agents here\n  steps:\n  - intent: talk_to_agent\n  - action: utter_iamabot\n"
    )
    code, out = run(capsys, "init", str(project))
    assert code == 1
    assert "CONFLICT  domain.yml: slot handoff_status is defined as type text, influence_conversation true" in out
    assert "CONFLICT  data/rules.yml: rule 'no agents here' answers intent talk_to_agent with utter_iamabot" in out
    assert load(domain)["slots"]["handoff_status"] == {"type": "text", "mappings": [{"type": "from_text"}]}
    assert [rule["steps"][0] for rule in load(project / "data" / "handoff_rules.yml")["rules"]] == [{"intent": "end_chat"}]


def test_rasa_socketio_channel_is_a_conflict(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    credentials = project / "credentials.yml"
    credentials.write_text("socketio:\n  user_message_evt: user_uttered\n  bot_message_evt: bot_uttered\n")
    code, out = run(capsys, "init", str(project))
    assert code == 1
    assert "CONFLICT  credentials.yml: Rasa's `socketio:` channel and rasa_flex_handoff.SocketIOInput both serve" in out
    assert "rasa_flex_handoff.SocketIOInput" not in load(credentials)  # two sockets on /socket.io would not start
    assert "rasa_flex_handoff.RestInput" in load(credentials)

    # On another path both can run.
    credentials.write_text("socketio:\n  socketio_path: /rasa-socket\n")
    code, out = run(capsys, "init", str(project))
    assert code == 0, out
    assert "rasa_flex_handoff.SocketIOInput" in load(credentials)


def test_a_subclass_of_the_channels_counts(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "connectors").mkdir()
    (project / "connectors" / "shop.py").write_text(
        "from rasa_flex_handoff import SocketIOInput\n\n\nclass ShopSocketIOInput(SocketIOInput):\n    pass\n"
    )
    (project / "credentials.yml").write_text("connectors.shop.ShopSocketIOInput:\n  session_persistence: true\n")
    run(capsys, "init", str(project))
    assert list(load(project / "credentials.yml")) == ["connectors.shop.ShopSocketIOInput", "rasa_flex_handoff.RestInput"]


def test_action_import_anywhere_in_the_package_counts(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    actions = project / "actions" / "actions.py"
    actions.write_text(actions.read_text() + "\nfrom rasa_flex_handoff.actions import ActionHandoffToAgent\n")
    run(capsys, "init", str(project))
    assert (project / "actions" / "__init__.py").read_text() == ""


def test_an_actions_module_gets_the_import(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(project / "actions")
    (project / "my_actions.py").write_text("import os\n")
    code, out = run(capsys, "init", str(project), "--actions", "my_actions")
    assert code == 0, out
    assert (project / "my_actions.py").read_text() == (
        "import os\n\n# The Flex handoff's actions (rasa-flex-handoff).\n" + bot_project.ACTION_IMPORT + "\n"
    )
    assert not (project / "actions").exists()


def test_an_action_endpoint_is_kept(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "endpoints.yml").write_text("action_endpoint:\n  url: http://actions:5055/webhook\n")
    code, out = run(capsys, "init", str(project))
    assert code == 0, out
    assert "endpoints.yml" not in out
    assert (project / "endpoints.yml").read_text() == "action_endpoint:\n  url: http://actions:5055/webhook\n"


def test_a_domain_directory_gets_a_file_of_its_own(domain_dir_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(domain_dir_project / "domain")
    code, out = run(capsys, "init", str(domain_dir_project))
    assert code == 0, out
    assert "added     domain/handoff.yml: intent talk_to_agent" in out
    for name, content in before.items():  # the user's files are not touched
        assert (domain_dir_project / "domain" / name).read_bytes() == content
    domain = Domain.load(str(domain_dir_project / "domain"))
    assert missing_from_domain(domain.as_dict()) == []
    assert "utter_greet" in domain.responses

    after = snapshot(domain_dir_project)
    assert run(capsys, "init", str(domain_dir_project)) == (
        0,
        f"rasa-flex-handoff init {domain_dir_project}\nNothing needed changing.\n",
    )
    assert snapshot(domain_dir_project) == after


@pytest.mark.parametrize("layout", ["domain.yml", "domain"])
def test_rasa_data_validate_accepts_the_project_after_init(
    layout: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = request.getfixturevalue("project" if layout == "domain.yml" else "domain_dir_project")
    assert run(capsys, "init", str(directory))[0] == 0
    result = rasa_validate(directory, layout)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "completed with errors" not in result.stdout


def test_not_a_rasa_project_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "init", str(tmp_path))
    assert code == 2
    assert "no domain.yml or domain/ directory" in out
    assert list(tmp_path.iterdir()) == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"rasa-flex-handoff {rasa_flex_handoff.__version__}\n"
    script = subprocess.run([str(VENV_BIN / "rasa-flex-handoff"), "--version"], stdout=subprocess.PIPE, text=True, check=True)
    assert script.stdout == f"rasa-flex-handoff {rasa_flex_handoff.__version__}\n"


# --- the running bot's check --------------------------------------------------------------------------


def incomplete_domain(*without_slots: str) -> Domain:
    data = fragment()
    for slot in without_slots:
        del data["slots"][slot]
    return Domain.from_dict(data)


def test_the_check_names_a_missing_slot() -> None:
    domain = incomplete_domain("handoff_mode")
    assert missing_from_domain(domain.as_dict()) == ["slot handoff_mode"]
    with pytest.raises(HandoffSetupError) as error:
        check_domain(domain)
    message = str(error.value)
    assert "slot handoff_mode" in message and "rasa-flex-handoff init" in message
    assert "\n" not in message
    assert isinstance(error.value, RasaException)  # `rasa` prints it as one line, without a traceback
    check_domain(Domain.from_yaml(fragment_text()))  # complete: no error


def test_the_check_works_on_the_domain_dict_actions_receive() -> None:
    data = fragment()
    del data["responses"]["utter_handoff_failed"]
    data["intents"].remove("end_chat")
    data["slots"].pop("visitor_name")  # optional: the handoff only reads it
    assert missing_from_domain(data) == ["intent end_chat", "response utter_handoff_failed"]
    with pytest.raises(HandoffSetupError, match="intent end_chat; response utter_handoff_failed"):
        check_domain(data)


def test_the_check_imports_without_rasa() -> None:
    """The action server image has rasa-sdk, not Rasa."""
    code = (
        "import sys; sys.modules['rasa'] = None\n"
        "from rasa_flex_handoff.domain_check import HandoffSetupError, missing_from_domain\n"
        "assert HandoffSetupError.__bases__ == (Exception,)\n"
        "print(missing_from_domain({'intents': ['talk_to_agent']})[0])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True, check=True
    )
    assert result.stdout == "intent end_chat\n"


def test_training_a_bot_that_lacks_a_part_fails_naming_it(tmp_path: Path) -> None:
    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), "test")
    policy = HandoffPolicy.create(HandoffPolicy.get_default_config(), storage, Resource("p1"), context)
    with pytest.raises(HandoffSetupError, match="slots handoff_status, handoff_last_index"):
        policy.train([], incomplete_domain("handoff_status", "handoff_last_index"))
    policy = HandoffPolicy.create(HandoffPolicy.get_default_config(), storage, Resource("p2"), context)
    assert policy.train([], Domain.from_yaml(fragment_text())) == Resource("p2")


def test_plan_api(project: Path) -> None:
    plan = plan_setup(find_project(project))
    assert not plan.complete and not plan.conflicts
    assert {change.rel for change in plan.files} >= {"domain.yml", "config.yml", "data/handoff_nlu.yml"}
    plan.apply()
    assert plan_setup(find_project(project)).complete


def test_flow_style_and_null_sections_are_still_extended(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Layouts the splice does not handle go through ruamel.yaml's round trip: comments and entries stay."""
    (project / "domain.yml").write_text(
        f'version: "3.1"\n{USER_COMMENT}\nintents: [greet, goodbye]\nresponses: {{utter_greet: [{{text: hi}}]}}\n'
        "forms:\n  address_form:\n    required_slots: []\n"
    )
    (project / "config.yml").write_text("language: en\npolicies: ~  # defaults\n")
    code, out = run(capsys, "init", str(project))
    assert code == 0, out
    domain = load(project / "domain.yml")
    assert domain["intents"] == [
        "greet",
        "goodbye",
        "talk_to_agent",
        "end_chat",
        "handoff_leave_message",
        "handoff_stay",
        "handoff_rating",
        "handoff_skip",
        "handoff_transcript",
    ]
    assert domain["responses"]["utter_greet"] == [{"text": "hi"}]
    assert USER_COMMENT in (project / "domain.yml").read_text()
    assert missing_from_domain(Domain.load(str(project / "domain.yml")).as_dict()) == []
    assert [p["name"] for p in load(project / "config.yml")["policies"]][:2] == [
        "rasa_flex_handoff.HandoffPolicy",
        "MemoizationPolicy",
    ]
    assert "note      domain.yml: form address_form: to hand off while it runs, add a rule" in out
    assert "note      domain.yml: rewritten by ruamel.yaml" in out
    after = snapshot(project)
    assert "Nothing needed changing." in run(capsys, "init", str(project))[1]
    assert snapshot(project) == after


def test_the_last_section_of_a_file_is_extended_in_place(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """New sections go after it; Windows line endings stay."""
    domain = project / "domain.yml"
    original = 'version: "3.1"\r\n# mine\r\nintents:\r\n  - greet\r\nresponses:\r\n  utter_greet:\r\n  - text: hi\r\n'
    domain.write_bytes(original.encode())
    code, out = run(capsys, "init", str(project))
    assert code == 0, out
    assert "rewritten" not in out
    text = domain.read_bytes().decode()
    assert text.startswith('version: "3.1"\r\n# mine\r\nintents:\r\n  - greet\r\n')
    assert "\n" not in text.replace("\r\n", "")
    assert text.index("utter_handoff_attachment") < text.index("\r\nslots:\r\n") < text.index("\r\nactions:\r\n")
    assert missing_from_domain(load(domain)) == []
