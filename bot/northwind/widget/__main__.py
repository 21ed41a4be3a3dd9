"""`python -m northwind.widget --port 8000 --rasa-url http://127.0.0.1:5005`: serve the demo shop page with the widget."""

from __future__ import annotations

import argparse
import logging

from northwind.widget.server import create_app


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m northwind.widget", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--rasa-url", default="http://127.0.0.1:5005", help="Rasa server the widget connects to")
    parser.add_argument(
        "--history-url",
        default=None,
        help="history endpoint template ({serverUrl}, {session_id}); default: the widget's built-in one",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    app = create_app(args.rasa_url, args.history_url)
    print(f"Shop page with the chat widget: http://{args.host}:{args.port}/ (Rasa at {args.rasa_url})", flush=True)
    app.run(host=args.host, port=args.port, workers=1, access_log=False, motd=False)


if __name__ == "__main__":
    main()
