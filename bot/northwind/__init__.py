"""Rasa to Twilio Flex handoff: Twilio client, handoff logic, Flex sandbox and widget assets."""
