"""`router migrate` against an unsuitable server: the message alone, no traceback."""

from __future__ import annotations

import pytest

from router import cli, db


def test_router_migrate_names_a_missing_extension_without_a_traceback(database: str, monkeypatch, capsys) -> None:
    """`db.migrate` raises `UnsuitableServer` with a clear, actionable message, but nothing on the way
    catches it: `router migrate` (cli.cmd_migrate), `router serve --workers N` (cli._supervise catches
    only DATABASE_DOWN_ERRORS) and `router serve` (the lifespan) all die with a Python traceback — the
    operator has to dig the message out of it, and the exit status is a crash's. The CLI should print
    the message alone and exit with a non-zero status (like check-config's problems)."""
    pending = (9999, "9999_needs_extension.sql", "CREATE EXTENSION router_review_missing_extension;")
    bundled = db.migration_files()
    monkeypatch.setattr(db, "migration_files", lambda: [*bundled, pending])
    monkeypatch.setenv("DATABASE_URL", database)
    try:
        status = cli.main(["migrate"])
    except db.UnsuitableServer as exc:
        pytest.fail(f"router migrate crashed with a traceback: {exc!r}")
    assert status != 0
    assert "router_review_missing_extension is not available on this server" in capsys.readouterr().err
