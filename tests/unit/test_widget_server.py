"""The demo shop server's page rendering (python -m northwind.widget)."""

from __future__ import annotations

from northwind.widget import WIDGET_JS
from northwind.widget.server import render_shop_page


def test_shop_page_points_the_widget_at_rasa():
    page = render_shop_page("http://127.0.0.1:5005/")
    assert 'src="/static/widget.js"' in page
    assert 'data-server-url="http://127.0.0.1:5005"' in page
    assert 'data-history-url=""' in page  # the widget's default
    assert "{{" not in page


def test_injected_urls_cannot_break_out_of_the_attribute():
    page = render_shop_page('http://x"><script>alert(1)</script>', history_url="{serverUrl}/h/{session_id}")
    assert "<script>alert(1)</script>" not in page
    assert 'data-server-url="http://x&quot;&gt;&lt;script&gt;' in page
    assert 'data-history-url="{serverUrl}/h/{session_id}"' in page


def test_the_bundle_is_checked_in():
    assert WIDGET_JS.is_file() and WIDGET_JS.stat().st_size > 10_000
    assert "HandoffWidget" in WIDGET_JS.read_text(encoding="utf-8")
