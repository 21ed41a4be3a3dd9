"""Custom actions for the Northwind support assistant (rasa-sdk action server).

The handoff actions come from the plugin, imported here exactly as any bot imports them.
"""

from rasa_flex_handoff.actions import ActionEndHandoff, ActionHandoffToAgent, ActionRelayToAgent

__all__ = ["ActionEndHandoff", "ActionHandoffToAgent", "ActionRelayToAgent"]
