"""The checks that stop a server at start instead of a handoff that silently does nothing.

- Settings (both servers): every required variable set and well formed, or one line naming
  each problem. On the Rasa server the channels raise `HandoffSetupError`, which Rasa prints as
  one line; the action server has no start hook, so the handoff actions check when rasa-sdk
  registers them (`check_action_server_start`), and import the bot's summariser there
  (`HANDOFF_SUMMARISER`: only the action server calls it, so only its image needs the bot's code).
- The bot's domain (Rasa server): once the model is loaded, every intent, slot, action and
  response the handoff needs. `rasa train` runs the same check (`HandoffPolicy`).

Once the model is loaded and checked, the server's heap is settled (`settle_loaded_model`).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from typing import Any, Mapping, Optional

from rasa_flex_handoff.domain_check import HandoffSetupError, missing_from_domain, setup_error
from rasa_flex_handoff.settings import Settings, SettingsError, overrides_from_credentials, settings_from_env


def channel_settings(credentials: Optional[Mapping[str, Any]]) -> Settings:
    """A channel's settings: the environment, overridden by its `credentials.yml` keys; or `HandoffSetupError`."""
    try:
        return settings_from_env(overrides=overrides_from_credentials(credentials))
    except SettingsError as e:
        raise HandoffSetupError(str(e)) from None


def domain_problem(agent: Any) -> Optional[str]:
    """What the loaded model's domain lacks, as one line; None when complete or no model is loaded yet."""
    domain = getattr(agent, "domain", None)
    if domain is None:
        return None
    missing = missing_from_domain(domain.as_dict())
    return str(setup_error(missing)) if missing else None


def stop_on_domain_problem(app: Any) -> None:
    """End the Rasa server with one line naming what the bot lacks.

    Sanic 21.12 logs a full traceback for anything raised in a listener and Rasa's own CLI
    never sees it, so the server process ends here, right after saying why.
    """
    problem = domain_problem(getattr(app.ctx, "agent", None))
    if problem is None:
        return
    # One line, as Rasa's CLI prints its own errors; the log handlers are flushed before the exit.
    print(f"HandoffSetupError: {problem}", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(1)


def settle_loaded_model() -> None:
    """Take the loaded model's objects out of the garbage collector's full passes (`gc.freeze`).

    A loaded Rasa model is about 630,000 Python objects (TensorFlow, the pipeline). CPython runs a
    full collection whenever enough new objects have survived, and each one walks all of them:
    0.6 to 1.2 s here, during which the server answers no one, so a busy relay gets a stall every
    few thousand messages. Frozen, they are still freed by reference counting; only cycles among
    them (an old model after a model reload) stay until the process ends.
    """
    gc.freeze()


def _registered_by_action_server() -> bool:
    """Whether rasa-sdk's action server is importing the bot's actions right now (its only start hook)."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "register_package" and code.co_filename.replace(os.sep, "/").endswith("rasa_sdk/executor.py"):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def check_action_server_start() -> None:
    """Stop an action server that registers the handoff actions without the settings they need.

    Only when rasa-sdk's server is loading them: importing the actions elsewhere (a bot's unit
    tests, a notebook) stays side-effect free.
    """
    if not _registered_by_action_server():
        return
    from rasa_flex_handoff.summariser import SummariserError, load  # the bot's summariser: the action server calls it

    try:
        settings = settings_from_env()
        if settings.summariser:
            load(settings.summariser)
    except SettingsError as e:
        print(f"SettingsError: {e}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except SummariserError as e:
        print(f"SettingsError: Flex handoff settings: {e} (see the README)", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
