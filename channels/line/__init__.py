"""LINE Messaging API: webhook in; reply (free, within about a minute) or push out."""
