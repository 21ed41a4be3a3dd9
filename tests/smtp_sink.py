"""A local SMTP server for tests: it accepts mail and writes each message to a file, nothing more.

`python -m tests.smtp_sink --port N --dir D [--user U --password P] [--fail-rcpt] [--cert C --key K [--implicit-tls]]`

It speaks what a mail client needs (RFC 5321): EHLO/HELO, AUTH PLAIN and LOGIN (required
when `--user` is given; a wrong user or password is 535), MAIL, RCPT (550 for every recipient
with `--fail-rcpt`), DATA with dot-unstuffing, RSET, NOOP, QUIT; with a certificate, STARTTLS
(or TLS from the first byte with `--implicit-tls`). Each accepted message is written
atomically as `<n>.eml` (the bytes as received) next to `<n>.json` (its envelope), so a test
never reads half a message. Prints one "smtp_sink ready" line when it listens.

`start_smtp_sink` runs it as a real process for a test and reads back what it received.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import email.policy
import json
import os
import re
import ssl
import sys
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote

MAX_LINE = 4096  # a command line (RFC 5321 allows 512; a DATA line 1000)
MAX_MESSAGE = 10 * 1024 * 1024
NAME = "smtp-sink"
_ADDRESS = re.compile(r"^(FROM|TO):\s*<([^<>]*)>(?:\s+.*)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Config:
    directory: Path
    user: Optional[str] = None
    password: Optional[str] = None
    fail_rcpt: bool = False
    tls: Optional[ssl.SSLContext] = None
    implicit_tls: bool = False


class Mailbox:
    """The directory the messages go to, numbered in the order they were accepted."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        taken = [int(p.stem) for p in directory.glob("*.eml") if p.stem.isdigit()]
        self.next = max(taken, default=0) + 1

    def store(self, data: bytes, envelope: Dict[str, Any]) -> int:
        number, self.next = self.next, self.next + 1
        for suffix, content in ((".json", json.dumps(envelope).encode()), (".eml", data)):  # the envelope first
            temporary = self.directory / f".{number}{suffix}.part"
            temporary.write_bytes(content)
            os.replace(temporary, self.directory / f"{number}{suffix}")
        return number


class Session:
    """One client connection: the SMTP dialogue, a transaction at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: Config, mailbox: Mailbox) -> None:
        self.reader, self.writer, self.config, self.mailbox = reader, writer, config, mailbox
        self.tls = config.implicit_tls
        self.greeted = False
        self.authenticated: Optional[str] = None
        self.reset()

    def reset(self) -> None:
        self.mail_from: Optional[str] = None
        self.rcpt_to: List[str] = []

    async def reply(self, code: int, *lines: str) -> None:
        lines = lines or ("OK",)
        text = "".join(f"{code}{'-' if i < len(lines) - 1 else ' '}{line}\r\n" for i, line in enumerate(lines))
        self.writer.write(text.encode())
        await self.writer.drain()

    async def line(self) -> Optional[bytes]:
        """The next line without its line ending; None at the end of the connection; ValueError when too long."""
        try:
            raw = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            raise ValueError("line too long") from None
        return raw.rstrip(b"\r\n")

    async def run(self) -> None:
        await self.reply(220, f"{NAME} ESMTP ready")
        while True:
            try:
                raw = await self.line()
            except ValueError:
                await self.reply(500, "5.5.6 Line too long")
                return
            if raw is None:
                return
            verb, _, argument = raw.decode("utf-8", "replace").strip().partition(" ")
            handler = getattr(self, f"do_{verb.upper()}", None) if verb.isalpha() else None
            if handler is None:
                await self.reply(500, "5.5.2 Command not recognised")
            elif await handler(argument.strip()) is False:
                return

    async def do_EHLO(self, argument: str) -> None:
        if not argument:
            await self.reply(501, "5.5.4 Say who you are")
            return
        self.greeted = True
        self.reset()
        lines = [f"{NAME} greets {argument}", "8BITMIME", "PIPELINING", f"SIZE {MAX_MESSAGE}"]
        if self.config.tls is not None and not self.tls:
            lines.append("STARTTLS")
        if self.config.user is not None:
            lines.append("AUTH PLAIN LOGIN")
        await self.reply(250, *lines, "HELP")

    async def do_HELO(self, argument: str) -> None:
        if not argument:
            await self.reply(501, "5.5.4 Say who you are")
            return
        self.greeted = True
        self.reset()
        await self.reply(250, f"{NAME} greets {argument}")

    async def do_STARTTLS(self, argument: str) -> None:
        if self.config.tls is None or self.tls:
            await self.reply(502, "5.5.1 STARTTLS not available")
            return
        await self.reply(220, "2.0.0 Ready to start TLS")
        await self.writer.start_tls(self.config.tls)
        # RFC 3207: everything learnt before the handshake is forgotten.
        self.tls, self.greeted, self.authenticated = True, False, None
        self.reset()

    async def do_AUTH(self, argument: str) -> None:
        if self.config.user is None:
            await self.reply(502, "5.5.1 AUTH not available")
            return
        if self.authenticated is not None:
            await self.reply(503, "5.5.1 Already authenticated")
            return
        mechanism, _, initial = argument.partition(" ")
        try:
            if mechanism.upper() == "PLAIN":
                response = initial or await self.challenge("")
                if response is None:
                    return
                parts = base64.b64decode(response, validate=True).split(b"\0")
                if len(parts) != 3:
                    raise ValueError("PLAIN takes authzid, authcid and password")
                user, password = parts[1], parts[2]
            elif mechanism.upper() == "LOGIN":
                given = initial or await self.challenge("VXNlcm5hbWU6")  # "Username:"
                if given is None:
                    return
                user = base64.b64decode(given, validate=True)
                answer = await self.challenge("UGFzc3dvcmQ6")  # "Password:"
                if answer is None:
                    return
                password = base64.b64decode(answer, validate=True)
            else:
                await self.reply(504, "5.5.4 Unrecognised authentication mechanism")
                return
        except (ValueError, binascii.Error):
            await self.reply(501, "5.5.2 Cannot decode the response")
            return
        if user.decode("utf-8", "replace") == self.config.user and password.decode("utf-8", "replace") == self.config.password:
            self.authenticated = self.config.user
            await self.reply(235, "2.7.0 Authentication successful")
        else:
            await self.reply(535, "5.7.8 Authentication credentials invalid")

    async def challenge(self, prompt: str) -> Optional[str]:
        """Ask for the next AUTH step; None (already answered 501) when the client cancels with "*"."""
        await self.reply(334, prompt)
        answer = await self.line()
        text = (answer or b"*").decode("ascii", "replace").strip()
        if text == "*":
            await self.reply(501, "5.7.0 Authentication cancelled")
            return None
        return text

    async def do_MAIL(self, argument: str) -> None:
        if not self.greeted:
            await self.reply(503, "5.5.1 Say EHLO first")
        elif self.config.tls is not None and not self.tls:
            await self.reply(530, "5.7.0 Must issue a STARTTLS command first")
        elif self.config.user is not None and self.authenticated is None:
            await self.reply(530, "5.7.0 Authentication required")
        elif self.mail_from is not None:
            await self.reply(503, "5.5.1 Nested MAIL command")
        elif not (found := _ADDRESS.match(argument)) or found.group(1).upper() != "FROM":
            await self.reply(501, "5.5.4 Syntax: MAIL FROM:<address>")
        else:
            self.mail_from = found.group(2)
            await self.reply(250, "2.1.0 Sender OK")

    async def do_RCPT(self, argument: str) -> None:
        if self.mail_from is None:
            await self.reply(503, "5.5.1 Need MAIL before RCPT")
        elif not (found := _ADDRESS.match(argument)) or found.group(1).upper() != "TO" or not found.group(2):
            await self.reply(501, "5.5.4 Syntax: RCPT TO:<address>")
        elif self.config.fail_rcpt:
            await self.reply(550, "5.1.1 Mailbox unavailable")
        else:
            self.rcpt_to.append(found.group(2))
            await self.reply(250, "2.1.5 Recipient OK")

    async def do_DATA(self, argument: str) -> None:
        if self.mail_from is None or not self.rcpt_to:
            await self.reply(503 if self.mail_from is None else 554, "5.5.1 Need MAIL and RCPT before DATA")
            return
        await self.reply(354, "End data with <CR><LF>.<CR><LF>")
        lines: List[bytes] = []
        size = 0
        while True:
            try:
                raw = await self.line()
            except ValueError:
                await self.reply(500, "5.5.6 Line too long")
                return
            if raw is None:
                return
            if raw == b".":
                break
            if raw.startswith(b"."):
                raw = raw[1:]  # RFC 5321 4.5.2: the client doubled a leading dot
            size += len(raw) + 2
            if size <= MAX_MESSAGE:
                lines.append(raw)
        if size > MAX_MESSAGE:
            await self.reply(552, "5.3.4 Message too big")
        else:
            envelope = {"mail_from": self.mail_from, "rcpt_to": self.rcpt_to, "auth": self.authenticated, "tls": self.tls}
            number = self.mailbox.store(b"\r\n".join(lines) + b"\r\n", envelope)
            print(f"accepted message {number} ({size} bytes)", flush=True)
            await self.reply(250, f"2.0.0 OK queued as {number}")
        self.reset()

    async def do_RSET(self, argument: str) -> None:
        self.reset()
        await self.reply(250, "2.0.0 Reset")

    async def do_NOOP(self, argument: str) -> None:
        await self.reply(250, "2.0.0 OK")

    async def do_VRFY(self, argument: str) -> None:
        await self.reply(252, "2.5.2 Cannot VRFY user")

    async def do_QUIT(self, argument: str) -> bool:
        await self.reply(221, "2.0.0 Bye")
        return False


async def serve(host: str, port: int, config: Config) -> None:
    mailbox = Mailbox(config.directory)

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await Session(reader, writer, config, mailbox).run()
        except (ConnectionError, ssl.SSLError) as e:
            print(f"connection ended: {type(e).__name__}", flush=True)
        finally:
            writer.close()

    server = await asyncio.start_server(connected, host, port, limit=MAX_LINE, ssl=config.tls if config.implicit_tls else None)
    print(f"smtp_sink ready on {host}:{port} (pid {os.getpid()})", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.smtp_sink", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="where each accepted message is written as <n>.eml")
    parser.add_argument("--user", help="require AUTH PLAIN/LOGIN with this user")
    parser.add_argument("--password", default="")
    parser.add_argument("--fail-rcpt", action="store_true", help="refuse every recipient (550)")
    parser.add_argument("--cert", type=Path, help="PEM certificate: offer STARTTLS (and require it before MAIL)")
    parser.add_argument("--key", type=Path, help="its PEM private key")
    parser.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte (smtps) instead of STARTTLS")
    args = parser.parse_args(argv)
    if (args.cert is None) != (args.key is None) or (args.implicit_tls and args.cert is None):
        parser.error("--cert and --key go together, and --implicit-tls needs them")
    context = None
    if args.cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    config = Config(args.dir, args.user, args.password if args.user else None, args.fail_rcpt, context, args.implicit_tls)
    try:
        asyncio.run(serve(args.host, args.port, config))
    except KeyboardInterrupt:
        pass


# --- The harness tests use ----------------------------------------------------------------------


@dataclass
class SmtpSink:
    """A running sink process: its URL (for HANDOFF_SMTP_URL) and the messages it accepted."""

    host: str
    port: int
    directory: Path
    process: Any  # northwind.processes.ServerProcess
    user: Optional[str] = None
    password: Optional[str] = None
    tls: Optional[str] = None  # None, "starttls" or "implicit"

    @property
    def url(self) -> str:
        """smtp://, smtp+starttls:// or smtps://, with the credentials URL-encoded."""
        scheme = {None: "smtp", "starttls": "smtp+starttls", "implicit": "smtps"}[self.tls]
        login = f"{quote(self.user, safe='')}:{quote(self.password or '', safe='')}@" if self.user is not None else ""
        return f"{scheme}://{login}{self.host}:{self.port}"

    def _numbers(self) -> List[int]:
        return sorted(int(p.stem) for p in self.directory.glob("*.eml") if p.stem.isdigit())

    def messages(self) -> List[EmailMessage]:
        """Every accepted message so far, parsed, in the order accepted."""
        parser = BytesParser(policy=email.policy.default)
        return [parser.parsebytes((self.directory / f"{n}.eml").read_bytes()) for n in self._numbers()]

    def envelopes(self) -> List[Dict[str, Any]]:
        """Each message's envelope: mail_from, rcpt_to, auth (the user who logged in, or None), tls."""
        return [json.loads((self.directory / f"{n}.json").read_text()) for n in self._numbers()]

    def wait_for(self, count: int, timeout: float = 10) -> List[EmailMessage]:
        """The messages once there are at least `count` of them."""
        from northwind.processes import wait_for

        wait_for(lambda: len(self._numbers()) >= count, timeout, f"{count} message(s) at the SMTP sink")
        return self.messages()

    def stop(self) -> None:
        self.process.stop()


def start_smtp_sink(
    log_dir: Path,
    user: Optional[str] = None,
    password: Optional[str] = None,
    fail_rcpt: bool = False,
    tls: Optional[Tuple[Path, Path]] = None,
    implicit_tls: bool = False,
) -> SmtpSink:
    """Start the sink as a real process on a free port, its mail under `log_dir`; return once it listens.

    `tls` = (certificate, key) PEM files: STARTTLS (or, with `implicit_tls`, smtps) with them.
    """
    from northwind.processes import ServerProcess, free_port

    port = free_port()
    directory = log_dir / f"smtp-sink-{port}"
    args = [sys.executable, "-m", "tests.smtp_sink", "--port", str(port), "--dir", str(directory)]
    if user is not None:
        args += ["--user", user, "--password", password or ""]
    if fail_rcpt:
        args.append("--fail-rcpt")
    if tls is not None:
        args += ["--cert", str(tls[0]), "--key", str(tls[1])] + (["--implicit-tls"] if implicit_tls else [])

    def ready() -> bool:
        return process.proc is not None and f"(pid {process.proc.pid})" in process.tail()

    process = ServerProcess(f"smtp-sink-{port}", args, None, log_dir, health=ready, startup_timeout=20)
    process.start()
    mode = None if tls is None else "implicit" if implicit_tls else "starttls"
    return SmtpSink("127.0.0.1", port, directory, process, user, password, mode)


if __name__ == "__main__":
    main()
