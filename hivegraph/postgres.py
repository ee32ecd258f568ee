"""Reaching a PostgreSQL server: connection options and messages that never show the password.

Shared by the PostgreSQL journal (`hivegraph.memory.journal_postgres`) and the
LangGraph checkpointer (`hivegraph.graphs.checkpoint`).
"""

from __future__ import annotations

import math
from typing import Any

from hivegraph.config import PostgresSettings
from hivegraph.errors import ConfigError


def postgres_address(postgres: PostgresSettings, *, field: str) -> str:
    """`host:port` of the DSN, for messages: never the password.

    Raises:
        ConfigError: the DSN is not a valid connection string (its text is not repeated).

    """
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(postgres.dsn.get_secret_value())
    except ProgrammingError:
        raise ConfigError(f"{field}: not a valid PostgreSQL connection string", field=field) from None
    host = params.get("host") or params.get("hostaddr") or "localhost"
    return f"{host}:{params.get('port') or 5432}"


def connection_kwargs(postgres: PostgresSettings, *, dict_rows: bool = True) -> dict[str, Any]:
    """Psycopg connection options: autocommit, no prepared statements, connect and statement timeouts."""
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.rows import dict_row

    options = conninfo_to_dict(postgres.dsn.get_secret_value()).get("options") or ""
    statement_timeout_ms = round(postgres.statement_timeout_s * 1000)
    return {
        "autocommit": True,
        "prepare_threshold": 0,
        **({"row_factory": dict_row} if dict_rows else {}),
        "connect_timeout": max(1, math.ceil(postgres.connect_timeout_s)),
        "options": f"{options} -c statement_timeout={statement_timeout_ms}".strip(),
    }


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (libpq's messages run over several)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
