"""Custom actions for the Northwind support assistant (rasa-sdk action server)."""
