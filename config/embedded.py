"""The embedded default database: a PostgreSQL 16 with pgvector started by the project itself.

With no ``DATABASE_URL`` the project runs its own server (the ``pgserver`` wheel bundles one) in a
git-ignored data folder under the project. It is started on first use, reused by every process
(web, worker, tests) and across restarts, and stopped by ``manage.py embedded_db stop``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import quote

logger = logging.getLogger(__name__)

DATABASE_NAME = "switchboard"


def _server(data_dir: Path):
    import warnings

    # pgserver keeps its lock file in the user's runtime dir; without XDG_RUNTIME_DIR it warns.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver  # imported lazily: production deployments never load it

    data_dir.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process, so web and worker processes share it.
    return pgserver.get_server(data_dir, cleanup_mode=None)


def socket_dir_of(data_dir: Path) -> str:
    """Where the running server listens (pgserver may pick a shorter path than the data folder)."""
    server = _server(data_dir)
    uri = server.get_uri()
    return uri.split("host=", 1)[1]


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded server and return a URL for the project's database."""
    host = socket_dir_of(data_dir)
    _ensure_database(host, DATABASE_NAME)
    return f"postgresql://postgres@/{DATABASE_NAME}?host={quote(host, safe='/')}"


def _ensure_database(host: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=host, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:
                pass  # another process created it between our check and our CREATE


def stop_embedded_database(data_dir: Path) -> bool:
    """Stop the embedded server if it runs; returns whether it was running."""
    import subprocess

    from pgserver._commands import pg_ctl

    if not (data_dir / "postmaster.pid").exists():
        return False
    # pgserver runs the server as its own system user when started by root.
    user = "pgserver" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user)
    except subprocess.CalledProcessError as exc:
        logger.warning("pg_ctl stop failed: %s", exc)
        return False
    return True


if __name__ == "__main__":  # `python -m config.embedded stop` — no Django settings needed
    import sys

    folder = Path(
        os.environ.get("SWITCHBOARD_VAR_DIR", Path(__file__).resolve().parent.parent / "var")
    )
    if sys.argv[1:] == ["stop"]:
        print("stopped" if stop_embedded_database(folder / "pgdata") else "not running")
    else:
        print("usage: python -m config.embedded stop", file=sys.stderr)
        sys.exit(2)
