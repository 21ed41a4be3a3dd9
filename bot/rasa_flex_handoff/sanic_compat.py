"""Make Sanic 21.12 websockets work on Python 3.11, where `asyncio.wait` no longer accepts coroutines; and close them quietly.

Sanic 21.12's `WebsocketImplProtocol.recv`/`recv_burst` hand `asyncio.wait` a bare coroutine.
Python 3.11 raises TypeError there, so every websocket is closed right after it opens and
socket.io clients silently fall back to long-polling. Rasa 3.6 pins `sanic<21.13`, so we
give that module an `asyncio` whose `wait` turns coroutines into tasks first.
"""

from __future__ import annotations

import asyncio
import sys
import types
from typing import Any, Coroutine, Iterable


def _wait(aws: Iterable[Any], *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
    return asyncio.wait([asyncio.ensure_future(a) for a in aws], *args, **kwargs)


def needs_patch() -> bool:
    """True when the running interpreter and Sanic combination has the bug."""
    import sanic

    return sys.version_info >= (3, 11) and sanic.__version__.startswith("21.12")


def apply() -> bool:
    """Patch Sanic's websocket module once; returns whether a patch is in effect."""
    from sanic.server.websockets import impl

    if getattr(vars(impl)["asyncio"], "_handoff_patched", False):
        return True
    if not needs_patch():
        return False
    shim = types.ModuleType("asyncio")
    shim.__dict__.update(asyncio.__dict__)
    shim.__dict__.update(wait=_wait, _handoff_patched=True)
    vars(impl)["asyncio"] = shim  # the module reads its global `asyncio` at call time
    return True


def answer_closed_websockets(engineio_server: Any) -> None:
    """Have engine.io's route answer a request whose websocket has closed, so Sanic logs no error.

    python-engineio's Sanic route returns None once a websocket it took over ends; Sanic 21.12
    takes that for a broken handler and logs `ServerError: Invalid response type None` with a
    traceback at ERROR, once per visitor who leaves. The connection is finished by then; an empty
    response tells Sanic so. Patched on the instance before `attach` registers the route.
    """
    from sanic import response

    handle = engineio_server.handle_request

    async def handle_request(*args: Any, **kwargs: Any) -> Any:
        answer = await handle(*args, **kwargs)
        return response.empty() if answer is None else answer

    engineio_server.handle_request = handle_request
