"""The `cme` command's own messages: version, and a refusal that says what to do."""

import socket
from importlib.metadata import version

import pytest

from cme_entrypoints.cli import _missing_database_hint, main


def test_cme_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"cme {version('cme')}\n"


def test_cme_token_without_a_secret_says_once_which_variable_to_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("JWT_SECRET", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_PUBLIC_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["token", "--subject", "dev"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("cme token: set JWT_SECRET")
    assert "cme: cme" not in error


def test_a_port_in_use_is_one_line_naming_it_and_how_to_change_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--host", "127.0.0.1", "--port", str(port)]) == 1
    error = capsys.readouterr().err
    assert error == (
        f"cme: port {port} on 127.0.0.1 is already in use; "
        "serve on another with PORT=N or --port N\n"
    )


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        ('FATAL:  database "shop" does not exist', 'CREATE DATABASE "shop" OWNER "app";'),
        ('FATAL:  role "app" does not exist', "CREATE ROLE \"app\" LOGIN PASSWORD '...';"),
        ("Connection refused", None),
    ],
)
def test_cme_migrate_says_how_to_create_a_missing_database_or_role(
    error: str, hint: str | None
) -> None:
    found = _missing_database_hint("postgresql://app:pw@127.0.0.1:5432/shop", error)
    if hint is None:
        assert found is None
    else:
        assert found is not None
        assert hint in found
