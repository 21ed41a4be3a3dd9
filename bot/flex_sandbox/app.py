"""The Sanic application: auth, Twilio error handling, fault injection, and every route."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from typing import List, Optional

from sanic import Sanic, response
from sanic.exceptions import MethodNotSupported, NotFound, PayloadTooLarge, SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from flex_sandbox import agent, media_rest, rest, routing_rest
from flex_sandbox.account import Account
from flex_sandbox.credentials import Credentials
from flex_sandbox.faults import Fault, Faults
from flex_sandbox.media import MediaSettings
from flex_sandbox.store import Store
from flex_sandbox.wire import HOSTS, TwilioError, error_response, reply

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


def is_twilio_path(path: str) -> bool:
    """Whether a path is part of the Twilio REST surface (`/<sub>/...`)."""
    return path.split("/", 2)[1] in HOSTS if path.count("/") >= 1 else False


def authorized(request: Request, credentials: Credentials) -> bool:
    """HTTP Basic with account SID + auth token, or API key SID + secret."""
    header = request.headers.get("authorization") or ""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return False
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    if not sep:
        return False
    pairs = [(credentials.account_sid, credentials.auth_token)]
    if credentials.api_key and credentials.api_secret:
        pairs.append((credentials.api_key, credentials.api_secret))
    return any(hmac.compare_digest(user, u) and hmac.compare_digest(password, p) for u, p in pairs)


def allowed_methods(app: Sanic, path: str) -> List[str]:
    """The methods some route serves at `path` (empty: no route has this path)."""
    found = []
    for method in sorted({m for route in app.router.routes for m in route.methods}):
        try:
            app.router.get(path, method, None)
        except SanicException:
            continue
        found.append(method)
    return found


def create_app(credentials: Credentials, db_path: Optional[str], name: str = "flex_sandbox") -> Sanic:
    """Build the sandbox server for these credentials and this database (None: in memory)."""
    app = Sanic(name)
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = 1.0
    app.config.ACCESS_LOG = False
    app.config.FALLBACK_ERROR_FORMAT = "json"
    media_settings = MediaSettings.from_env()  # before the store: a bad setting stops the start with its name
    store = Store(db_path)
    account = Account(credentials, store)
    faults = Faults()
    app.ctx.account = account
    app.ctx.faults = faults

    @app.get("/health", name="health")
    async def health(request: Request) -> HTTPResponse:
        return reply(account.summary())

    @app.get("/", name="root")
    async def root(request: Request) -> HTTPResponse:
        return response.redirect("/agent")

    rest.register(app, account)
    media_rest.register(app, account, media_settings)
    routing_rest.register(app, account)
    agent.register(app, account, faults, media_settings)

    @app.middleware("request")
    async def guard(request: Request) -> Optional[HTTPResponse]:
        path = request.path
        request.ctx.fault_after = None
        if not path.startswith("/sandbox/") and path != "/health":
            fault = faults.take(request.method, path)
            if fault is not None:
                if fault.when == "after":
                    request.ctx.fault_after = fault
                else:
                    failed = await fault.apply()
                    if failed is not None:
                        return failed
        if is_twilio_path(path) and not authorized(request, credentials):
            failed = error_response(401, 20003, "Authenticate")
            failed.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
            return failed
        return None

    @app.middleware("response")
    async def late_fault(request: Request, resp: HTTPResponse) -> Optional[HTTPResponse]:
        fault: Optional[Fault] = getattr(request.ctx, "fault_after", None)
        if fault is not None:
            request.ctx.fault_after = None
            return await fault.apply()
        return None

    @app.exception(Exception)
    async def errors(request: Request, exception: Exception) -> HTTPResponse:
        if isinstance(exception, TwilioError):
            return exception.to_response()
        if isinstance(exception, (NotFound, MethodNotSupported)) and request is not None:
            allowed = allowed_methods(app, request.path)
            if allowed:  # a known path asked with a method it does not take (Sanic says 404 when several routes share it)
                refused = error_response(405, 20004, "Method not allowed")
                refused.headers["Allow"] = ", ".join(allowed)
                return refused
        if isinstance(exception, NotFound):
            return error_response(404, 20404, f"The requested resource {request.path if request else ''} was not found")
        if isinstance(exception, MethodNotSupported):
            return error_response(405, 20004, "Method not allowed")
        if isinstance(exception, PayloadTooLarge):
            return error_response(413, 20001, f"Request body is larger than {MAX_BODY_BYTES} bytes")
        if isinstance(exception, SanicException):
            status = getattr(exception, "status_code", 400) or 400
            return error_response(status, 20001 if status < 500 else 20500, str(exception) or "Bad request")
        log.exception("unexpected error on %s %s", request.method if request else "?", request.path if request else "?")
        return error_response(500, 20500, "Internal error in the Flex sandbox")

    @app.listener("after_server_start")  # type: ignore[call-arg, arg-type]  # Sanic 21.12's overloads
    async def start_webhooks(app: Sanic, loop: object) -> None:
        await account.webhooks.start()
        account.timers.start()
        log.info("Flex sandbox ready: account %s", account.sid)

    @app.listener("before_server_stop")  # type: ignore[call-arg, arg-type]
    async def stop_webhooks(app: Sanic, loop: object) -> None:
        account.timers.stop()
        await account.webhooks.stop()

    @app.listener("after_server_stop")  # type: ignore[call-arg, arg-type]
    async def close_store(app: Sanic, loop: object) -> None:
        store.close()

    return app
