"""Run the Flex sandbox: `flex-sandbox [--host H] [--port N] [--db PATH | --in-memory]` (or `python -m flex_sandbox`)."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
from typing import List, Optional

from flex_sandbox.app import create_app
from flex_sandbox.credentials import DEFAULT_PORT, Credentials, credentials_from_env
from rasa_flex_handoff import sanic_compat


def shell_exports(credentials: Credentials, url: str) -> str:
    """`export` lines for a bot's processes: this sandbox's account and where its API is."""
    values = {**credentials.as_env(), "TWILIO_API_BASE": url}
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in values.items())


def main(argv: Optional[List[str]] = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="flex-sandbox", description="Local, wire-compatible Twilio Flex sandbox")
    parser.add_argument("--host", default=os.environ.get("FLEX_SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("FLEX_SANDBOX_PORT") or DEFAULT_PORT),
        help=f"default: FLEX_SANDBOX_PORT or {DEFAULT_PORT}",
    )
    parser.add_argument(
        "--db",
        default=os.environ.get("FLEX_SANDBOX_DB") or os.path.join("var", "flex-sandbox.db"),
        help="SQLite file (default: FLEX_SANDBOX_DB or var/flex-sandbox.db in the current directory)",
    )
    parser.add_argument("--in-memory", action="store_true", help="keep state in memory only (tests)")
    parser.add_argument("--log-level", default=os.environ.get("FLEX_SANDBOX_LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--env",
        action="store_true",
        help='print the shell exports that point a bot at this sandbox (eval "$(flex-sandbox --env)") and exit',
    )
    args = parser.parse_args(argv)
    if args.env:
        print(shell_exports(credentials_from_env(), f"http://{args.host}:{args.port}"))
        return
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sanic_compat.apply()
    try:
        app = create_app(credentials_from_env(), None if args.in_memory else args.db)
    except ValueError as e:  # a malformed setting (e.g. FLEX_SANDBOX_MEDIA_MAX_BYTES): say which, no traceback
        parser.exit(2, f"flex-sandbox: {e}\n")
    logging.getLogger("flex_sandbox").info(
        "Flex sandbox on http://%s:%d (agent desktop /agent), state %s",
        args.host,
        args.port,
        "in memory" if args.in_memory else args.db,
    )
    app.run(host=args.host, port=args.port, workers=1, access_log=False, motd=False)


if __name__ == "__main__":
    main()
