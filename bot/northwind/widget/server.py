"""A tiny Sanic server for the demo shop page and the widget bundle.

GET /                  the shop page, with the Rasa server URL injected into the widget's script tag
GET /static/widget.js  the widget bundle
GET /shop/<file>       the shop page's own assets
GET /health            200 {"status": "ok"}
"""

from __future__ import annotations

import html
from typing import Optional

from sanic import Sanic, response
from sanic.request import Request

from northwind.widget import SHOP_DIR, WIDGET_JS

PLACEHOLDERS = ("{{RASA_URL}}", "{{HISTORY_URL}}")


def render_shop_page(rasa_url: str, history_url: Optional[str] = None) -> str:
    """The shop page with the widget pointed at `rasa_url` (values escaped for an HTML attribute)."""
    page = (SHOP_DIR / "index.html").read_text(encoding="utf-8")
    page = page.replace("{{RASA_URL}}", html.escape(rasa_url.rstrip("/"), quote=True))
    return page.replace("{{HISTORY_URL}}", html.escape(history_url or "", quote=True))


def create_app(rasa_url: str, history_url: Optional[str] = None, name: str = "handoff_widget_shop") -> Sanic:
    app = Sanic(name)
    app.config.ACCESS_LOG = False

    @app.get("/")
    async def shop(_: Request):
        return response.html(render_shop_page(rasa_url, history_url), headers={"Cache-Control": "no-store"})

    @app.route("/static/widget.js", methods=["GET", "HEAD"])
    async def widget_js(_: Request):
        return await response.file(
            WIDGET_JS,
            mime_type="application/javascript; charset=utf-8",
            headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
        )

    @app.get("/health")
    async def health(_: Request):
        return response.json({"status": "ok"})

    app.static("/shop", str(SHOP_DIR), name="shop_assets")
    return app
