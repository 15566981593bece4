"""Live chat: the widget's wire protocol, its visitor tokens, and the widget itself (`static/`)."""
