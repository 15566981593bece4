"""Email: MIME parsing, the SMTP intake handler, and outbound mail through the relay."""
