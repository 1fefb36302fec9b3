"""A real PostgreSQL server for the tests, started by them.

`GITRELEASE_TEST_PG_URL` points the tests at a server of the operator's own (its database
must allow CREATE DATABASE); otherwise the `pgserver` wheel (real PostgreSQL binaries from
PyPI, installed by the test extra) starts one in a temporary folder, once per test worker,
in about a second. Each test that asks for `pg_url` gets a database of its own, dropped
afterwards. Nothing is skipped: if no server can be had, the tests that need one fail,
saying why.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator

import pytest

__all__ = ["pg_server", "pg_url"]


def _with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead (a libpq URL or key=value string)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo(**{**conninfo_to_dict(url), "dbname": name})


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a server's maintenance database."""
    given = os.environ.get("GITRELEASE_TEST_PG_URL")
    if given:
        yield given
        return
    try:
        import pgserver
    except ImportError as exc:  # never a silent skip: the test extra installs it
        raise RuntimeError("the PostgreSQL tests need the pgserver wheel (pip install -e "
                           "'.[test]') or GITRELEASE_TEST_PG_URL") from exc
    folder = tempfile.mkdtemp(prefix="gitrelease-pg-")
    server = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty database on the test server, for this test alone."""
    import psycopg

    name = f"gitrelease_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(pg_server, name)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
