"""Rasa input channels that hand website chats to Twilio Flex agents and back."""
