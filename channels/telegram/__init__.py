"""Telegram Bot API: webhook in, `sendMessage` out."""
