"""The domain and its use cases: the ingest pipeline, the stores (one writer per table group) and
the actions agents take. No HTTP, SMTP, Slack or channel imports (checked by `make lint`)."""
