"""The generic integration channel (`POST /api/v1/messages`)."""
