"""Run the Flex sandbox: `python -m bot.sandbox [--host H] [--port N] [--db PATH | --in-memory]`."""

from __future__ import annotations

import argparse
import logging
import os
from typing import List, Optional

from bot import sanic_compat
from bot.sandbox.app import create_app
from bot.settings import settings_from_env


def main(argv: Optional[List[str]] = None) -> None:
    """Parse the command line and serve until interrupted."""
    settings = settings_from_env()
    parser = argparse.ArgumentParser(prog="python -m bot.sandbox", description="Local, wire-compatible Twilio Flex sandbox")
    parser.add_argument("--host", default=os.environ.get("FLEX_SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=settings.sandbox_port, help="default: FLEX_SANDBOX_PORT or 4000")
    parser.add_argument("--db", default=settings.sandbox_db, help="SQLite file (default: FLEX_SANDBOX_DB or var/flex-sandbox.db)")
    parser.add_argument("--in-memory", action="store_true", help="keep state in memory only (tests)")
    parser.add_argument("--log-level", default=os.environ.get("FLEX_SANDBOX_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sanic_compat.apply()
    app = create_app(settings, None if args.in_memory else args.db)
    logging.getLogger("bot.sandbox").info(
        "Flex sandbox on http://%s:%d (agent desktop /agent), state %s",
        args.host, args.port, "in memory" if args.in_memory else args.db,
    )
    app.run(host=args.host, port=args.port, workers=1, access_log=False, motd=False)


if __name__ == "__main__":
    main()
