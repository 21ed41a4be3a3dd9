"""Flex sandbox: a local, wire-compatible stand-in for the Twilio Flex APIs plus an agent desktop."""
