"""Integration tests of the handoff with real processes."""
