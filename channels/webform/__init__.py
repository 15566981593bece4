"""The public web form (`/support`)."""
