"""The chat transcript by email: the SMTP settings, the message, and its delivery.

Offered after an agent chat only when `HANDOFF_SMTP_URL` is set. `compose` is pure (lines in,
an `EmailMessage` out) so what the visitor receives is tested without a mail server; `send`
is the one place that talks SMTP. Which turns make the transcript is decided on the events
(`handoff.chat_transcript`): the agent chat and the bot conversation that led to it.

Nothing here logs, and `TranscriptError` says what went wrong without an address or a word of
the conversation, so a caller may log it as it is.
"""

from __future__ import annotations

import asyncio
import html
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from typing import Any, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import unquote, urlsplit

SUBJECT = "Your chat transcript"

# How the mail is sent, by HANDOFF_SMTP_URL's scheme, and each one's default port.
PLAIN = "plain"  # smtp://: no TLS (a relay on the same host or network)
STARTTLS = "starttls"  # smtp+starttls://: upgraded with STARTTLS, refused when the server does not offer it
SSL = "ssl"  # smtps://: TLS from the first byte
SCHEMES = {"smtp": PLAIN, "smtp+starttls": STARTTLS, "smtps": SSL}
DEFAULT_PORTS = {PLAIN: 25, STARTTLS: 587, SSL: 465}


class TranscriptError(Exception):
    """The transcript could not be sent; `reason` is safe to log (no address, no message text)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SmtpUrlError(ValueError):
    """HANDOFF_SMTP_URL or HANDOFF_EMAIL_FROM is malformed; the message names the variable, never the password."""


@dataclass(frozen=True)
class SmtpSettings:
    """Where and as whom transcripts are sent: HANDOFF_SMTP_URL and HANDOFF_EMAIL_FROM."""

    host: str
    port: int
    security: str = PLAIN  # PLAIN, STARTTLS or SSL
    sender: str = ""  # the From address, maybe with a display name: "Northwind <help@northwind.example>"
    user: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)  # never in a repr, a log or an error


# --- Settings -------------------------------------------------------------------------------------


def smtp_url_problem(value: str) -> Optional[str]:
    """What is wrong with a HANDOFF_SMTP_URL value, or None (settings.py's check; it never repeats the value)."""
    try:
        _parse_url(value)
    except SmtpUrlError as e:
        return str(e)
    return None


def sender_problem(value: str) -> Optional[str]:
    """What is wrong with a HANDOFF_EMAIL_FROM value, or None."""
    return None if _sender(value) else 'expected an email address, e.g. help@example.com or "Help <help@example.com>"'


def smtp_settings(url: str, sender: str) -> SmtpSettings:
    """HANDOFF_SMTP_URL and HANDOFF_EMAIL_FROM as settings; `SmtpUrlError` naming the variable when one is malformed.

    `smtp://[user[:password]@]host[:port]`: user and password URL-encoded (`p%40ss` for `p@ss`);
    the port defaults to 25 (smtp://), 587 (smtp+starttls://) or 465 (smtps://).
    """
    try:
        host, port, security, user, password = _parse_url(url)
    except SmtpUrlError as e:
        raise SmtpUrlError(f"HANDOFF_SMTP_URL: {e}") from None
    found = _sender(sender)
    if found is None:
        raise SmtpUrlError(f"HANDOFF_EMAIL_FROM: {sender_problem(sender)}")
    return SmtpSettings(host=host, port=port, security=security, sender=found, user=user, password=password)


def _parse_url(value: str) -> Tuple[str, int, str, Optional[str], Optional[str]]:
    parts = urlsplit(value.strip())
    security = SCHEMES.get(parts.scheme.lower())
    if security is None:
        raise SmtpUrlError("expected smtp://, smtps:// or smtp+starttls://, e.g. smtp+starttls://user:password@mail.example.com")
    if not parts.hostname:
        raise SmtpUrlError("expected a host, e.g. smtp://mail.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise SmtpUrlError("expected nothing after the host and port")
    try:
        port = parts.port
    except ValueError:
        raise SmtpUrlError("expected a port number from 1 to 65535") from None
    if port == 0:
        raise SmtpUrlError("expected a port number from 1 to 65535")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not user:
        raise SmtpUrlError("expected a user name with the password")
    return parts.hostname, port or DEFAULT_PORTS[security], security, user, password


def _sender(value: str) -> Optional[str]:
    """HANDOFF_EMAIL_FROM normalised ("Name <address>" or the address), or None when it is not one address."""
    if "\n" in value or "\r" in value:
        return None
    found = getaddresses([value.strip()])
    if len(found) != 1:
        return None
    name, address = found[0]
    checked = _address(address)
    if checked is None:
        return None
    return str(Address(display_name=name, addr_spec=checked)) if name else checked


# --- What the visitor types -----------------------------------------------------------------------

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"^{_ATEXT}(?:\.{_ATEXT})*$")
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_OPENING = "<([{\"'"  # around an address in a sentence; a dot before it is no typo to fix
_CLOSING = ">)]}\"'.,;:!?"


def valid_email(text: str) -> Optional[str]:
    """The email address a visitor typed, normalised (domain in lower case, IDNA-encoded), or None.

    The answer may be just the address or a sentence with one in it ("it's jane@example.com.");
    two different addresses, or none, are None: the bot asks again rather than guess. Local
    parts are plain ASCII dot-atoms (no quoted strings, no SMTPUTF8), domains have at least two
    labels and a non-numeric top level, so what is accepted is what any SMTP server takes.
    """
    found = {checked for word in text.split() if "@" in word and (checked := _address(word.lstrip(_OPENING).rstrip(_CLOSING)))}
    return found.pop() if len(found) == 1 else None


def _address(text: str) -> Optional[str]:
    local, at, domain = text.rpartition("@")
    if not at or not local or len(local) > 64 or not _LOCAL.match(local):
        return None
    try:
        domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return None
    address = f"{local}@{domain}"
    return address if len(address) <= 254 else None


def masked(email: str) -> str:
    """An address as the bot says it back, enough to spot a typo and no more: "j***@example.com"."""
    local, at, domain = email.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


# --- The message ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Turn:
    when: Optional[datetime]
    who: str  # "" for a notice of the chat ("Alice joined the chat")
    kind: str  # visitor, bot, agent or system
    text: str
    file: Optional[str]


def compose(
    lines: Sequence[Mapping[str, Any]],
    to: str,
    sender: str,
    *,
    bot_name: str = "Assistant",
    company: Optional[str] = None,
    when: Optional[datetime] = None,
    zone: tzinfo = UTC,
    subject: Optional[str] = None,
) -> EmailMessage:
    """The transcript email: a plain-text part and the same as simple HTML (escaped, nothing remote).

    `lines` are `handoff.chat_transcript(events)` (or `handoff.transcript`): dicts with `from`
    (visitor, bot, agent, system), `text`, `timestamp` (ISO 8601 or None), and optionally `name`
    (the agent's, shown as "Alice (agent)") and `file` (a file's name, shown as a file, not as
    words). `to` is a checked address (`valid_email`), `sender` HANDOFF_EMAIL_FROM (the From,
    named `company` or `bot_name` when it has no name of its own). `when` is the Date header
    (default now); times in the body are shown in `zone` and say which zone that is.
    """
    when = when or datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("when must be timezone-aware")
    turns = [_turn(line, bot_name, zone) for line in lines]
    title = f"Your chat with {_one_line(company)}" if company else "Your chat"
    subject = _one_line(subject or (f"{SUBJECT} from {company}" if company else SUBJECT))
    zone_name = _zone_name(zone, when)

    message = EmailMessage()
    name, address = parseaddr(sender)
    message["From"] = Address(display_name=_one_line(name or company or bot_name), addr_spec=address)
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(when)
    message["Message-ID"] = make_msgid("transcript", domain=address.rpartition("@")[2] or None)
    # Sent on request, but by a machine: no vacation replies (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(_plain(title, turns, zone_name, when.astimezone(zone)), cte="quoted-printable")
    message.add_alternative(
        _html(subject, title, turns, zone_name, when.astimezone(zone)), subtype="html", cte="quoted-printable"
    )
    return message


def _turn(line: Mapping[str, Any], bot_name: str, zone: tzinfo) -> _Turn:
    kind = str(line.get("from") or "bot")
    name = str(line.get("name") or "").strip()
    who = {"visitor": "You", "bot": bot_name, "system": ""}.get(kind)
    if who is None:
        kind, who = "agent", f"{name} (agent)" if name else "Agent"
    file = line.get("file")
    return _Turn(_time(line.get("timestamp"), zone), who, kind, str(line.get("text") or ""), str(file) if file else None)


def _time(value: Any, zone: tzinfo) -> Optional[datetime]:
    try:
        if isinstance(value, datetime):
            stamp = value
        elif isinstance(value, (int, float)):
            stamp = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str) and value:
            stamp = datetime.fromisoformat(value)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).astimezone(zone)


def _zone_name(zone: tzinfo, when: datetime) -> str:
    key = getattr(zone, "key", None)  # ZoneInfo: "Europe/Berlin"
    return str(key) if key else when.astimezone(zone).tzname() or "UTC"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _said(turn: _Turn) -> str:
    return f"[file] {turn.file}" if turn.file else turn.text


def _days(turns: Sequence[_Turn]) -> List[Tuple[Optional[date], _Turn]]:
    """Each turn with the day to print before it (None: same day as the turn before)."""
    shown: Optional[date] = None
    found: List[Tuple[Optional[date], _Turn]] = []
    for turn in turns:
        day = turn.when.date() if turn.when else None
        found.append((day if day and day != shown else None, turn))
        shown = day or shown
    return found


def _plain(title: str, turns: Sequence[_Turn], zone_name: str, sent: datetime) -> str:
    out = [f"{title} (times in {zone_name})", ""]
    for day, turn in _days(turns):
        if day:
            out.append(f"--- {day.isoformat()} ---")
        stamp = f"[{turn.when:%H:%M}] " if turn.when else ""
        text = _said(turn).replace("\r\n", "\n").replace("\n", "\n        ")
        out.append(f"{stamp}* {text}" if turn.kind == "system" else f"{stamp}{turn.who}: {text}")
    if not turns:
        out.append("(no messages)")
    out += ["", f"Sent {sent:%Y-%m-%d %H:%M} ({zone_name}) because you asked for this transcript at the end of the chat."]
    return "\n".join(out) + "\n"


_STYLE = {
    "visitor": "color:#1a1a1a",
    "bot": "color:#1a1a1a",
    "agent": "color:#1a1a1a",
    "system": "color:#6b6b6b;font-style:italic",
}


def _html(subject: str, title: str, turns: Sequence[_Turn], zone_name: str, sent: datetime) -> str:
    def esc(text: str) -> str:
        return html.escape(text, quote=True).replace("\r\n", "\n").replace("\n", "<br>")

    rows: List[str] = []
    for day, turn in _days(turns):
        if day:
            rows.append(
                f'<tr><td colspan="2" style="padding:12px 0 4px;color:#6b6b6b;font-size:12px">{day.isoformat()}</td></tr>'
            )
        stamp = f"{turn.when:%H:%M}" if turn.when else ""
        said = f"&#128206; {esc(turn.file)}" if turn.file else esc(turn.text)
        who = "" if turn.kind == "system" else f"<strong>{esc(turn.who)}</strong><br>"
        rows.append(
            '<tr><td style="padding:4px 12px 4px 0;color:#6b6b6b;font-size:12px;vertical-align:top;white-space:nowrap">'
            f'{stamp}</td><td style="padding:4px 0;{_STYLE.get(turn.kind, "")}">{who}{said}</td></tr>'
        )
    if not turns:
        rows.append('<tr><td colspan="2">(no messages)</td></tr>')
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{esc(subject)}</title></head>\n"
        '<body style="margin:0;padding:16px;font-family:Arial,Helvetica,sans-serif;font-size:14px;line-height:1.4">\n'
        f'<h1 style="font-size:18px;margin:0 0 4px">{esc(title)}</h1>\n'
        f'<p style="margin:0 0 12px;color:#6b6b6b;font-size:12px">Times in {esc(zone_name)}</p>\n'
        '<table role="presentation" cellspacing="0" cellpadding="0" style="border-collapse:collapse">\n'
        + "\n".join(rows)
        + "\n</table>\n"
        f'<p style="margin:16px 0 0;color:#6b6b6b;font-size:12px">Sent {sent:%Y-%m-%d %H:%M} ({esc(zone_name)}) '
        "because you asked for this transcript at the end of the chat.</p>\n</body></html>\n"
    )


# --- Delivery -------------------------------------------------------------------------------------


async def send(message: EmailMessage, smtp: SmtpSettings, timeout: float = 10.0) -> None:
    """Deliver `message` through the SMTP server; `TranscriptError` with a loggable reason when it was not accepted.

    smtplib blocks, so it runs in a thread. `timeout` bounds each network step and the whole
    delivery: a server that answers, but too slowly to ever finish, is hung up on then, which
    also ends the thread. Delivered means the server accepted it for every recipient.
    """
    opened: List[smtplib.SMTP] = []
    try:
        await asyncio.wait_for(asyncio.to_thread(_deliver, message, smtp, timeout, opened), timeout)
    except TimeoutError:
        for client in opened:
            _hang_up(client)
        raise TranscriptError(f"the SMTP server at {smtp.host}:{smtp.port} did not answer within {timeout:g} s") from None


def _hang_up(client: smtplib.SMTP) -> None:
    """End a connection another thread is blocked on: its read returns at once (a close alone would not wake it)."""
    sock = getattr(client, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone


def _deliver(message: EmailMessage, smtp: SmtpSettings, timeout: float, opened: List[smtplib.SMTP]) -> None:
    where = f"{smtp.host}:{smtp.port}"
    try:
        client: smtplib.SMTP
        if smtp.security == SSL:
            client = smtplib.SMTP_SSL(timeout=timeout, context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(timeout=timeout)
        opened.append(client)  # before connecting: `send` may have to hang up while the greeting is awaited
        with client:
            # connect() leaves the name TLS checks unset when the constructor did not connect (smtplib keeps it there).
            client._host = smtp.host  # type: ignore[attr-defined]
            client.connect(smtp.host, smtp.port)
            client.ehlo()
            if smtp.security == STARTTLS:
                if not client.has_extn("starttls"):
                    raise TranscriptError(f"the SMTP server at {where} does not offer STARTTLS (HANDOFF_SMTP_URL asks for it)")
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if smtp.user:
                client.login(smtp.user, smtp.password or "")
            refused = client.send_message(message)
        if refused:
            codes = sorted({code for code, _ in refused.values()})
            raise TranscriptError(f"the SMTP server at {where} refused a recipient ({', '.join(map(str, codes))})")
    except TranscriptError:
        raise
    except smtplib.SMTPAuthenticationError as e:
        raise TranscriptError(f"the SMTP server at {where} rejected the user name or password ({e.smtp_code})") from None
    except smtplib.SMTPNotSupportedError:
        raise TranscriptError(
            f"the SMTP server at {where} does not offer AUTH, which the user in HANDOFF_SMTP_URL needs"
        ) from None
    except smtplib.SMTPRecipientsRefused as e:
        codes = sorted({code for code, _ in e.recipients.values()})
        raise TranscriptError(f"the SMTP server at {where} refused the recipient ({', '.join(map(str, codes))})") from None
    except smtplib.SMTPSenderRefused as e:
        raise TranscriptError(f"the SMTP server at {where} refused the sender HANDOFF_EMAIL_FROM ({e.smtp_code})") from None
    except smtplib.SMTPDataError as e:
        raise TranscriptError(f"the SMTP server at {where} refused the message ({e.smtp_code})") from None
    except smtplib.SMTPResponseException as e:
        raise TranscriptError(f"the SMTP server at {where} answered {e.smtp_code}") from None
    except smtplib.SMTPServerDisconnected as e:
        if isinstance(e.__context__, TimeoutError):  # smtplib reports a read that timed out as a disconnection
            raise TranscriptError(f"the SMTP server at {where} did not answer within {timeout:g} s") from None
        raise TranscriptError(f"the SMTP server at {where} closed the connection") from None
    except ssl.SSLError as e:
        raise TranscriptError(f"TLS with the SMTP server at {where} failed ({e.reason or type(e).__name__})") from None
    except TimeoutError:  # socket.timeout too
        raise TranscriptError(f"the SMTP server at {where} did not answer within {timeout:g} s") from None
    except smtplib.SMTPException as e:
        raise TranscriptError(f"sending through the SMTP server at {where} failed ({type(e).__name__})") from None
    except OSError as e:
        raise TranscriptError(f"could not reach the SMTP server at {where} ({e.strerror or type(e).__name__})") from None
