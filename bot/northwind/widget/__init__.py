"""The website chat widget (static/widget.js, built from src/) and the demo shop page that embeds it."""

from pathlib import Path

WIDGET_DIR = Path(__file__).resolve().parent
WIDGET_JS = WIDGET_DIR / "static" / "widget.js"
SHOP_DIR = WIDGET_DIR / "shop"
