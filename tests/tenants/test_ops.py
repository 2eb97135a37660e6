import subprocess
import sys

import pytest
from django.db import connection


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["X-Request-Id"].startswith("req_")


def test_request_id_is_echoed_when_well_formed(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-Id"] == "abc-123"
    assert client.get("/healthz", HTTP_X_REQUEST_ID="bad id!")["X-Request-Id"] != "bad id!"


def test_readyz_ok(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_readyz_503_when_database_is_down(client):
    """Point the connection at a socket directory where no server listens."""
    original = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["HOST"] = "/nonexistent-socket-dir"
    connection.settings_dict["PORT"] = ""
    connection.settings_dict["OPTIONS"] = {
        k: v for k, v in original["OPTIONS"].items() if k != "pool"
    }
    try:
        response = client.get("/readyz")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(original)
    assert response.status_code == 503
    assert response.json()["checks"]["database"] != "ok"


def _settings_error(env: dict) -> str:
    code = "import config.settings"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    return result.stderr


def test_production_refuses_default_secret_key():
    err = _settings_error({"DATABASE_URL": "postgresql://u@localhost/x"})
    assert "SECRET_KEY" in err


def test_unusable_value_is_a_clear_startup_error():
    err = _settings_error(
        {"DEBUG": "maybe", "DATABASE_URL": "postgresql://u@localhost/x", "SECRET_KEY": "x" * 40}
    )
    assert "DEBUG='maybe' is not a boolean" in err


def test_bad_database_url_is_a_clear_startup_error():
    err = _settings_error({"DATABASE_URL": "mysql://u@localhost/x", "SECRET_KEY": "x" * 40})
    assert "DATABASE_URL must be a postgresql://" in err


def test_system_checks_pass():
    from django.core.management import call_command

    call_command("check", fail_level="WARNING")
