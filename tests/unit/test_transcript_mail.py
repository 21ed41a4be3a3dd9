"""The transcript by email, in-process: which turns it holds, the message a visitor receives, and the settings.

Delivery through a real SMTP server process is in tests/handoff/test_transcript_send.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any, Dict, List, Tuple
from zoneinfo import ZoneInfo

import pytest
from rasa.shared.core.events import BotUttered, SessionStarted, SlotSet, UserUttered

from rasa_flex_handoff import after_chat, chat_state, handoff, transcript_mail
from rasa_flex_handoff.flex.chats import FlexChat
from rasa_flex_handoff.flex_events import FlexEvent
from rasa_flex_handoff.settings import SettingsError, settings_from_env
from rasa_flex_handoff.transcript_mail import SmtpSettings, SmtpUrlError, compose, masked, smtp_settings, valid_email
from tests.unit import sessions
from tests.unit.test_settings import REAL

WHEN = datetime(2026, 3, 2, 15, 4, 5, tzinfo=UTC)
LINES: List[Dict[str, Any]] = [
    {"from": "visitor", "text": "where is my order?", "timestamp": "2026-03-02T14:58:00Z"},
    {"from": "bot", "text": "Let me get you a person.", "timestamp": "2026-03-02T14:58:01Z"},
    {"from": "system", "text": "Alice joined the chat.", "timestamp": "2026-03-02T14:59:00Z"},
    {"from": "agent", "name": "Alice", "text": "Hi, I'm Alice", "timestamp": "2026-03-02T14:59:30Z"},
    {"from": "visitor", "text": "invoice.pdf", "file": "invoice.pdf", "timestamp": "2026-03-02T15:00:00Z"},
    {"from": "system", "text": "The chat has ended.", "timestamp": None},
]


def parts(message: EmailMessage) -> Tuple[str, str]:
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    return str(plain.get_content()), str(html.get_content())


class Tags(HTMLParser):
    """Every tag and attribute of an HTML document, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: List[str] = []
        self.attributes: List[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Any]]) -> None:
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]

    def handle_data(self, data: str) -> None:
        self.text += data


def read_html(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


# --- compose ------------------------------------------------------------------------------------


def test_the_transcript_is_plain_text_with_the_same_as_html_and_the_headers_of_a_reply_to_a_request() -> None:
    message = compose(LINES, "jane@example.com", "help@northwind.example", bot_name="Nori", company="Northwind", when=WHEN)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Subject"] == "Your chat transcript from Northwind"
    assert message["To"] == "jane@example.com"
    assert message["From"] == "Northwind <help@northwind.example>"
    assert parsedate_to_datetime(message["Date"]) == WHEN
    assert message["Message-ID"].startswith("<") and message["Message-ID"].endswith("@northwind.example>")
    assert message["Auto-Submitted"] == "auto-generated"
    plain, html = parts(message)
    said = [
        "[14:58] You: where is my order?",
        "[14:58] Nori: Let me get you a person.",
        "[14:59] * Alice joined the chat.",
        "[14:59] Alice (agent): Hi, I'm Alice",
        "[15:00] You: [file] invoice.pdf",
        "* The chat has ended.",
    ]
    assert [line for line in plain.splitlines() if line in said] == said  # all of them, in order
    assert plain.startswith("Your chat with Northwind (times in UTC)\n\n--- 2026-03-02 ---\n")
    text = read_html(html).text
    positions = [
        text.index(words) for words in ("where is my order?", "Let me get you", "Alice joined", "Hi, I'm Alice", "invoice.pdf")
    ]
    assert positions == sorted(positions)
    assert "Alice (agent)" in text and "Nori" in text


def test_the_sender_keeps_its_own_name_and_the_subject_has_a_default() -> None:
    message = compose(LINES, "jane@example.com", "Northwind Support <help@northwind.example>", when=WHEN)
    assert message["From"] == "Northwind Support <help@northwind.example>"
    assert message["Subject"] == transcript_mail.SUBJECT
    assert compose([], "jane@example.com", "help@northwind.example", when=WHEN)["From"] == "Assistant <help@northwind.example>"


def test_html_shows_what_was_said_as_text_and_loads_nothing() -> None:
    hostile = [
        {"from": "visitor", "text": '<script>alert(1)</script> & <img src="https://evil.example/x.png">', "timestamp": None},
        {"from": "agent", "name": "<b>Eve</b>", "text": '<a href="https://evil.example">click</a>\nline two', "timestamp": None},
        {"from": "visitor", "text": "x", "file": '"><img src=x onerror=alert(1)>.pdf', "timestamp": None},
    ]
    message = compose(hostile, "jane@example.com", "help@northwind.example", company="<i>Northwind</i>", when=WHEN)
    plain, html = parts(message)
    tags = read_html(html)
    assert set(tags.tags) <= {"html", "head", "meta", "title", "body", "h1", "p", "table", "tr", "td", "strong", "br"}
    assert set(tags.attributes) <= {"charset", "style", "colspan", "role", "cellspacing", "cellpadding"}
    assert "url(" not in html and "http" not in html.replace("https://evil.example", "")
    assert '<script>alert(1)</script> & <img src="https://evil.example/x.png">' in tags.text
    assert '<a href="https://evil.example">click</a>' in tags.text and "<b>Eve</b> (agent)" in tags.text
    assert '"><img src=x onerror=alert(1)>.pdf' in tags.text
    assert "<i>Northwind</i>" in tags.text
    # The plain part is the words as said, a multi-line turn indented under its speaker.
    assert '<b>Eve</b> (agent): <a href="https://evil.example">click</a>\n        line two' in plain


def test_times_are_shown_in_the_zone_given_and_a_new_day_is_marked() -> None:
    lines = [
        {"from": "visitor", "text": "late question", "timestamp": "2026-03-02T22:59:00Z"},
        {"from": "agent", "name": "Bob", "text": "early answer", "timestamp": "2026-03-02T23:01:00Z"},
    ]
    plain, html = parts(compose(lines, "jane@example.com", "help@northwind.example", when=WHEN, zone=ZoneInfo("Europe/Berlin")))
    assert "(times in Europe/Berlin)" in plain
    assert "--- 2026-03-02 ---\n[23:59] You: late question\n--- 2026-03-03 ---\n[00:01] Bob (agent): early answer" in plain
    assert "2026-03-03" in html and "Times in Europe/Berlin" in html


def test_a_header_cannot_be_given_a_second_line() -> None:
    message = compose(LINES, "jane@example.com", "help@northwind.example", company="Northwind\r\nBcc: all@example.com", when=WHEN)
    assert message["Bcc"] is None
    assert message["Subject"] == "Your chat transcript from Northwind Bcc: all@example.com"
    assert "\nBcc:" not in message.as_string()


def test_plain_transcript_lines_without_names_still_read_well() -> None:
    plain, _ = parts(compose(handoff.transcript(sessions.handed_off().events), "jane@example.com", "help@example.com", when=WHEN))
    assert "You: where is NW-12345?" in plain and "Assistant: NW-12345 shipped with DHL." in plain
    assert "Agent: alice: Let me check" in plain  # handoff.transcript's agent text carries the name


# --- Which turns: handoff.chat_transcript --------------------------------------------------------


def closed_chat() -> Any:
    """`sessions.handed_off()` closed by the agent, with the first after-chat question asked in the new session."""
    tracker = sessions.handed_off()
    close = FlexEvent("onConversationStateUpdated", "CH1", None, None, "", None, None, None, None, True)
    steps = chat_state.on_flex_event(tracker.events, tracker.current_slot_values(), close, after=after_chat.FollowUp(survey=True))
    sessions.record(tracker, steps)
    return tracker


def said(lines: List[Dict[str, Any]]) -> List[Tuple[str, str]]:
    return [(line["from"], line["text"]) for line in lines]


def test_the_transcript_is_the_visit_that_led_to_the_chat_and_the_chat_to_its_end() -> None:
    tracker = closed_chat()
    lines = handoff.chat_transcript(tracker.events)
    assert said(lines) == [
        ("visitor", "hello"),
        ("bot", "Hey! How are you?"),
        ("visitor", "where is NW-12345?"),
        ("bot", "NW-12345 shipped with DHL."),
        # "/talk_to_agent" was a button: not something the visitor wrote
        ("system", "<utter_handoff_connecting>"),
        ("visitor", "my parcel never arrived"),
        ("agent", "Let me check"),  # the agent's own words; the name apart
        ("system", "<utter_handoff_agent_ended>"),
        # not the bot being back, nor the after-chat question
    ]
    assert lines[6]["name"] == "alice"
    assert all(line["timestamp"] for line in lines)


def test_the_transcript_leaves_out_earlier_visits_queue_updates_and_later_chats_unless_asked_for() -> None:
    tracker = closed_chat()
    earlier = [SessionStarted(), UserUttered("a visit last week", {"name": "greet"}), BotUttered("welcome back")]
    events = earlier + list(tracker.events)
    # While waiting: place-in-line notices (one every few seconds) are no part of the transcript.
    at = next(i for i, e in enumerate(events) if isinstance(e, SlotSet) and e.key == handoff.CHANNEL_SLOT)
    events.insert(
        at + 1, BotUttered("<utter_handoff_queue>", metadata=handoff.handoff_metadata("system", event="queue", position=2))
    )
    lines = handoff.chat_transcript(events)
    assert said(lines)[0] == ("visitor", "hello") and ("bot", "welcome back") not in said(lines)
    assert "<utter_handoff_queue>" not in [text for _, text in said(lines)]
    # A second chat later: the latest by default, the first when named.
    second = FlexChat("conversations", "CH2", "visitor-identity", "IS1")
    events += [
        SessionStarted(),
        UserUttered("one more thing", {"name": "talk_to_agent"}),
        *[SlotSet(name, value) for name, value in handoff.start_slots(second).items()],
        BotUttered("Bob: Hello again", metadata=handoff.handoff_metadata("agent", agent="Bob")),  # no body: the name is taken off
    ]
    assert said(handoff.chat_transcript(events)) == [("visitor", "one more thing"), ("agent", "Hello again")]
    assert said(handoff.chat_transcript(events, "CH1")) == said(lines)
    assert handoff.chat_transcript(events, "CH9") == []


def test_files_are_named_and_an_after_chat_session_alone_holds_no_chat() -> None:
    chat = FlexChat("conversations", "CH3", "id", "IS1")
    attachment = {"filename": "invoice.pdf", "content_type": "application/pdf", "size": 10, "media_sid": "ME1"}
    events = [
        SessionStarted(),
        *[SlotSet(name, value) for name, value in handoff.start_slots(chat).items()],
        UserUttered(
            "invoice.pdf", {"name": "handoff_relay"}, metadata={"handoff": {"relayed_to": "CH3", "attachment": attachment}}
        ),
        BotUttered(
            "Alice: photo.png", metadata=handoff.handoff_metadata("agent", agent="Alice", attachment={"filename": "photo.png"})
        ),
    ]
    lines = handoff.chat_transcript(events)
    assert [(line["from"], line.get("name"), line["text"], line.get("file")) for line in lines] == [
        ("visitor", None, "invoice.pdf", "invoice.pdf"),
        ("agent", "Alice", "photo.png", "photo.png"),
    ]
    # What a tracker store that splits sessions at SessionStarted (SQL, Mongo) gives an action after the
    # chat ended: the after-chat session only, where the chat's sid is kept set but no handoff began.
    events = list(closed_chat().events)
    after = events[max(i for i, e in enumerate(events) if isinstance(e, SessionStarted)) :]
    assert [e.key for e in after if isinstance(e, SlotSet) and e.value == "CH1"] == [handoff.CHANNEL_SLOT]
    assert handoff.chat_transcript([*after, UserUttered("5", {"name": "handoff_rating"})]) == []


# --- What the visitor types, what the bot says back --------------------------------------------


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("jane@example.com", "jane@example.com"),
        ("  Jane.Doe+chat@Example.COM ", "Jane.Doe+chat@example.com"),
        ("it's jane@example.com.", "jane@example.com"),
        ("<jane@example.com>", "jane@example.com"),
        ("jane@example.com or jane@example.com", "jane@example.com"),
        ("jane@bücher.de", "jane@xn--bcher-kva.de"),
        ("o'brien@mail.example.co.uk", "o'brien@mail.example.co.uk"),
        ("jane@example.com and joe@example.com", None),
        ("jane@localhost", None),
        ("jane@127.0.0.1", None),
        ("jane@-example.com", None),
        ("jane..doe@example.com", None),
        (".jane@example.com", None),
        ("jäne@example.com", None),
        ("jane@exa_mple.com", None),
        ("@example.com", None),
        ("jane@", None),
        ("/handoff_skip", None),
        ("", None),
        ("a" * 65 + "@example.com", None),
        ("jane@" + "a" * 250 + ".com", None),
    ],
)
def test_an_email_address_is_taken_from_what_the_visitor_typed(text: str, address: Any) -> None:
    assert valid_email(text) == address


def test_the_address_said_back_shows_only_its_first_letter_and_domain() -> None:
    assert masked("jane.doe@example.com") == "j***@example.com"
    assert masked("j@example.com") == "j***@example.com"
    assert masked("not an address") == "***"


# --- HANDOFF_SMTP_URL and HANDOFF_EMAIL_FROM ---------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpSettings("mail.example.com", 25, "plain", "help@example.com")),
        ("smtps://mail.example.com", SmtpSettings("mail.example.com", 465, "ssl", "help@example.com")),
        ("smtp+starttls://mail.example.com/", SmtpSettings("mail.example.com", 587, "starttls", "help@example.com")),
        ("SMTP://relay:2525", SmtpSettings("relay", 2525, "plain", "help@example.com")),
        ("smtp://[::1]:25", SmtpSettings("::1", 25, "plain", "help@example.com")),
        (
            "smtp+starttls://apikey%40example.com:p%3A%40ss%2Fw%25rd@smtp.example.com:2587",
            SmtpSettings("smtp.example.com", 2587, "starttls", "help@example.com", "apikey@example.com", "p:@ss/w%rd"),
        ),
        ("smtp://user@mail.example.com", SmtpSettings("mail.example.com", 25, "plain", "help@example.com", "user", None)),
    ],
)
def test_the_smtp_url_says_how_where_and_as_whom(url: str, expected: SmtpSettings) -> None:
    assert smtp_settings(url, "help@example.com") == expected


def test_the_password_never_shows_in_a_repr() -> None:
    settings = smtp_settings("smtps://user:hunter2@mail.example.com", "help@example.com")
    assert settings.password == "hunter2" and "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://mail.example.com", "expected smtp://, smtps:// or smtp+starttls://"),
        ("mail.example.com:25", "expected smtp://, smtps:// or smtp+starttls://"),
        ("smtp://", "expected a host"),
        ("smtp://user:hunter2@", "expected a host"),
        ("smtp://user:hunter2@mail.example.com:99999", "expected a port number"),
        ("smtp://user:hunter2@mail.example.com:0", "expected a port number"),
        ("smtp://user:hunter2@mail.example.com:smtp", "expected a port number"),
        ("smtp://mail.example.com/inbox", "expected nothing after the host and port"),
        ("smtp://mail.example.com?tls=1", "expected nothing after the host and port"),
        ("smtp://:hunter2@mail.example.com", "expected a user name with the password"),
    ],
)
def test_a_malformed_smtp_url_fails_naming_the_variable_and_never_the_password(url: str, problem: str) -> None:
    with pytest.raises(SmtpUrlError) as failed:
        smtp_settings(url, "help@example.com")
    assert str(failed.value).startswith("HANDOFF_SMTP_URL: " + problem)
    assert "hunter2" not in str(failed.value)
    with pytest.raises(SettingsError) as at_start:
        settings_from_env({**REAL, "HANDOFF_SMTP_URL": url, "HANDOFF_EMAIL_FROM": "help@example.com"})
    assert f"malformed HANDOFF_SMTP_URL ({problem}" in str(at_start.value) and "hunter2" not in str(at_start.value)


@pytest.mark.parametrize(
    ("sender", "normalised"),
    [
        ("help@northwind.example", "help@northwind.example"),
        ("Northwind <help@Northwind.Example>", "Northwind <help@northwind.example>"),
        ('"Northwind, Support" <help@northwind.example>', '"Northwind, Support" <help@northwind.example>'),
        ("help@northwind", None),
        ("help@northwind.example, other@northwind.example", None),
        ("Northwind", None),
        ("help@northwind.example\r\nBcc: x@example.com", None),
    ],
)
def test_the_sender_is_one_address_maybe_with_a_name(sender: str, normalised: Any) -> None:
    if normalised is None:
        with pytest.raises(SmtpUrlError, match="^HANDOFF_EMAIL_FROM: expected an email address"):
            smtp_settings("smtp://mail.example.com", sender)
    else:
        assert smtp_settings("smtp://mail.example.com", sender).sender == normalised


def test_settings_offer_the_transcript_only_with_an_smtp_url_and_then_need_a_sender() -> None:
    assert settings_from_env(REAL).smtp is None
    assert settings_from_env({**REAL, "HANDOFF_EMAIL_FROM": "help@example.com"}).smtp is None
    env = {**REAL, "HANDOFF_SMTP_URL": "smtp+starttls://u:p@mail.example.com", "HANDOFF_EMAIL_FROM": "Help <help@example.com>"}
    assert settings_from_env(env).smtp == SmtpSettings("mail.example.com", 587, "starttls", "Help <help@example.com>", "u", "p")
    with pytest.raises(SettingsError) as failed:
        settings_from_env({**REAL, "HANDOFF_SMTP_URL": "smtp://mail.example.com", "HANDOFF_EMAIL_FROM": " "})
    message = str(failed.value)
    assert "missing HANDOFF_EMAIL_FROM (the transcript's From, needed with HANDOFF_SMTP_URL)" in message and "\n" not in message
    with pytest.raises(SettingsError) as both:
        settings_from_env({**REAL, "HANDOFF_SMTP_URL": "imap://x", "HANDOFF_EMAIL_FROM": "nobody"})
    assert "malformed HANDOFF_SMTP_URL (expected smtp://" in str(both.value)
    assert "HANDOFF_EMAIL_FROM (expected an email address" in str(both.value)
