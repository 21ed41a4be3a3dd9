"""The transcript delivered through a real SMTP server process (tests/smtp_sink.py), and what `send` says when it is not.

No Rasa stack: `compose` and `send` as the after-chat action calls them, against the sink
started as a process on a free port, plain, with AUTH, with STARTTLS and with TLS on connect.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import smtplib
import socket
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rasa_flex_handoff.transcript_mail import SmtpSettings, TranscriptError, compose, send, smtp_settings
from tests.smtp_sink import SmtpSink, start_smtp_sink

SENDER = "Northwind <help@northwind.example>"
VISITOR = "jane@example.com"
USER, PASSWORD = "apikey@northwind.example", "p:ss w%rd@1"
LINES: List[Dict[str, Any]] = [
    {"from": "visitor", "text": "where is my order?", "timestamp": "2026-03-02T14:58:00Z"},
    {"from": "agent", "name": "Alice", "text": "It ships today.\n.\n.a line that starts with a dot", "timestamp": None},
    {"from": "visitor", "text": "Grüße & <thanks>", "timestamp": None},
]


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
    server = start_smtp_sink(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def auth_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    server = start_smtp_sink(tmp_path, user=USER, password=PASSWORD)
    yield server
    server.stop()


def settings(url: str) -> SmtpSettings:
    return smtp_settings(url, SENDER)


def deliver(url: str, timeout: float = 5) -> None:
    asyncio.run(send(compose(LINES, VISITOR, SENDER, bot_name="Nori", company="Northwind"), settings(url), timeout))


def refused(url: str, timeout: float = 5) -> str:
    with pytest.raises(TranscriptError) as failed:
        deliver(url, timeout)
    reason = failed.value.reason
    for private in (VISITOR, "help@northwind.example", USER, PASSWORD, "where is my order", "Alice"):
        assert private not in reason, reason  # safe to log
    return reason


def test_the_transcript_arrives_as_composed(sink: SmtpSink) -> None:
    deliver(sink.url)
    [message] = sink.wait_for(1)
    assert message["To"] == VISITOR and message["From"] == SENDER
    assert message["Subject"] == "Your chat transcript from Northwind"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    text = plain.get_content().replace("\r\n", "\n")  # stored as received, with CRLF
    assert "You: where is my order?" in text and "You: Grüße & <thanks>" in text
    # Lines of a dot alone or starting with one come back as sent (the client doubles, the server undoubles them).
    assert "Alice (agent): It ships today.\n        .\n        .a line that starts with a dot" in text
    assert "Grüße &amp; &lt;thanks&gt;" in html.get_content()
    assert sink.envelopes() == [{"mail_from": "help@northwind.example", "rcpt_to": [VISITOR], "auth": None, "tls": False}]


def test_the_sink_unstuffs_dots_and_speaks_helo_rset_noop_and_auth_login(auth_sink: SmtpSink) -> None:
    with smtplib.SMTP(auth_sink.host, auth_sink.port, timeout=5) as client:
        assert client.helo("tester")[0] == 250
        assert client.noop()[0] == 250
        assert client.docmd("MAIL", "FROM:<a@example.com>")[0] == 530  # HELO'd, but not logged in
        client.ehlo()
        client.user, client.password = USER, PASSWORD
        assert client.auth("LOGIN", client.auth_login)[0] == 235
        assert client.docmd("MAIL", "FROM:<a@example.com>")[0] == 250
        assert client.rset()[0] == 250
        assert client.docmd("RCPT", "TO:<b@example.com>")[0] == 503  # the reset forgot the sender
        client.sendmail("a@example.com", ["b@example.com"], b"Subject: dots\r\n\r\n.\r\n..two\r\nend\r\n")
    [message] = auth_sink.wait_for(1)
    assert message.get_content().replace("\r\n", "\n") == ".\n..two\nend\n"
    assert auth_sink.envelopes()[0]["auth"] == USER


def test_a_login_is_sent_when_the_url_has_credentials(auth_sink: SmtpSink) -> None:
    assert "%40" in auth_sink.url and "%3A" in auth_sink.url  # URL-encoded, as HANDOFF_SMTP_URL takes them
    deliver(auth_sink.url)
    auth_sink.wait_for(1)
    assert auth_sink.envelopes()[0]["auth"] == USER


def test_a_wrong_password_or_none_is_refused(auth_sink: SmtpSink) -> None:
    wrong = auth_sink.url.replace("%401", "%402")
    assert wrong != auth_sink.url
    assert "rejected the user name or password (535)" in refused(wrong)
    assert "(530)" in refused(auth_sink.url.replace(auth_sink.url.split("//")[1].split("@")[0] + "@", ""))  # no login at all
    assert auth_sink.messages() == []


def test_credentials_for_a_server_without_auth_are_an_error(sink: SmtpSink) -> None:
    assert "does not offer AUTH" in refused(sink.url.replace("//", f"//someone:{PASSWORD.replace('%', '%25')}@"))
    assert sink.messages() == []


def test_a_refused_recipient_is_an_error(tmp_path: Path) -> None:
    server = start_smtp_sink(tmp_path, fail_rcpt=True)
    try:
        assert "refused the recipient (550)" in refused(server.url)
    finally:
        server.stop()


def test_a_server_gone_is_an_error_at_once(sink: SmtpSink) -> None:
    sink.stop()
    started = time.monotonic()
    assert "could not reach the SMTP server" in refused(sink.url, timeout=5)
    assert time.monotonic() - started < 2


def test_a_server_that_never_answers_is_an_error_within_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        reason = refused(f"smtp://127.0.0.1:{silent.getsockname()[1]}", timeout=1)
        elapsed = time.monotonic() - started
    assert "did not answer within 1 s" in reason
    assert 0.9 < elapsed < 2


def test_a_server_too_slow_to_ever_finish_is_hung_up_on_at_the_timeout() -> None:
    """Each step answers in time (a greeting line every 0.2 s, for 4 s): only the whole delivery's timeout ends it, at 1 s."""
    hung_up = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def drip() -> None:
            connection, _ = listener.accept()
            with connection:
                try:
                    for _ in range(20):
                        connection.sendall(b"220-please hold\r\n")
                        time.sleep(0.2)
                except OSError:
                    hung_up.set()

        dripping = threading.Thread(target=drip, daemon=True)
        dripping.start()

        async def attempt() -> Tuple[str, float]:
            started = time.monotonic()
            with pytest.raises(TranscriptError) as failed:
                await send(compose(LINES, VISITOR, SENDER), settings(f"smtp://127.0.0.1:{listener.getsockname()[1]}"), 1)
            return failed.value.reason, time.monotonic() - started

        started = time.monotonic()
        reason, elapsed = asyncio.run(attempt())  # it returns once the sending thread is done too
        finished = time.monotonic() - started
        dripping.join(5)
    assert "did not answer within 1 s" in reason
    assert 0.9 < elapsed < 2
    assert hung_up.is_set() and finished < 2.5  # the thread did not hold on until the server gave up


# --- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp-sink test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "smtps"])
def test_tls_as_the_scheme_says_with_the_certificate_checked(
    tmp_path: Path, certificate: Tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, implicit: bool
) -> None:
    server = start_smtp_sink(tmp_path, user=USER, password=PASSWORD, tls=certificate, implicit_tls=implicit)
    try:
        assert server.url.startswith("smtps://" if implicit else "smtp+starttls://")
        # Not trusted yet: the certificate is checked, nothing is sent.
        assert "CERTIFICATE_VERIFY_FAILED" in refused(server.url)
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # what ssl.create_default_context() trusts
        deliver(server.url)
        server.wait_for(1)
        assert server.envelopes()[0]["tls"] is True and server.envelopes()[0]["auth"] == USER
        # Plain smtp:// to a server that wants TLS first: it says so, and nothing is sent in the clear.
        if not implicit:
            assert "(530)" in refused(server.url.replace("smtp+starttls://", "smtp://"))
    finally:
        server.stop()
    assert len(server.messages()) == 1


def test_starttls_is_never_skipped_when_the_server_does_not_offer_it(sink: SmtpSink) -> None:
    assert "does not offer STARTTLS" in refused(sink.url.replace("smtp://", "smtp+starttls://"))
    assert "TLS with the SMTP server" in refused(sink.url.replace("smtp://", "smtps://"))
    assert sink.messages() == []
