"""The `cme` command's own messages: version, and a refusal that says what to do."""

import os
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from cme_entrypoints.cli import main
from cme_entrypoints.database_commands import _missing_database_hint
from cme_entrypoints.settings import Settings


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
    settings = Settings(database_url="postgresql://app:pw@127.0.0.1:5432/shop")
    found = _missing_database_hint(settings, error)
    if hint is None:
        assert found is None
    else:
        assert found is not None
        assert hint in found


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A shell environment of its own, in an empty working folder: what main() sets stays here."""
    environ = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
    monkeypatch.setattr(os, "environ", environ)
    monkeypatch.chdir(tmp_path)
    return environ


def test_a_sqlite_url_with_two_slashes_is_one_line_showing_the_two_forms(
    shell: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    shell["DATABASE_URL"] = "sqlite://relative.db"
    assert main(["migrate"]) == 2
    assert capsys.readouterr().err == (
        "cme: configuration error: DATABASE_URL names a SQLite file after three slashes: "
        "sqlite:///relative/path.db or sqlite:////absolute/path.db\n"
    )


def test_migrate_names_the_missing_folder_of_a_sqlite_file(
    shell: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shell["DATABASE_URL"] = "sqlite:///missing/dir/x.db"
    assert main(["migrate"]) == 1
    err = capsys.readouterr().err
    assert f"cme: the folder {tmp_path}/missing/dir does not exist: create it first\n" in err


def test_migrate_names_the_absolute_path_of_the_file_it_migrated(
    shell: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shell["DATABSE_URL"] = "postgresql://mistyped@db/cme"  # so the default file is used
    assert main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert out.endswith(f"cme: the schema of the SQLite file {tmp_path}/var/cme.db is up to date\n")


def test_dotenv_in_the_working_folder_is_read_and_the_shell_wins(
    shell: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".env").write_text(
        "# as docker compose reads it\nDATABASE_URL=sqlite:///from-dotenv.db\nLOG_LEVEL=WARNING\n"
    )
    assert main(["migrate"]) == 0
    assert f"the SQLite file {tmp_path}/from-dotenv.db is up to date" in capsys.readouterr().out
    assert shell["LOG_LEVEL"] == "WARNING"
    shell.pop("DATABASE_URL")
    shell["DATABASE_URL"] = "sqlite:///from-shell.db"
    assert main(["migrate"]) == 0
    assert f"the SQLite file {tmp_path}/from-shell.db is up to date" in capsys.readouterr().out


@pytest.mark.parametrize("workers", ["0", "100", "two"])
def test_serve_workers_takes_the_range_web_concurrency_has(
    workers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", workers])
    assert exited.value.code == 2
    assert "--workers: must be an integer from 1 to 64" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "named"), [([], "HOST"), (["--host", "x.invalid"], "--host")])
def test_a_host_that_does_not_resolve_is_one_line_naming_the_setting(
    shell: dict[str, str], args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shell["HOST"] = "no-such-host.invalid"
    assert main(["serve", "--port", "5999", *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"cme: {named} '")
    assert "is not a name this machine can resolve" in err


def test_cme_openapi_into_a_pipe_closed_early_ends_without_a_traceback() -> None:
    cme = Path(sys.executable).with_name("cme")
    process = subprocess.Popen([cme, "openapi"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stderr is not None
    assert process.stdout.read(1) == b"{"
    process.stdout.close()  # as `head` does once it has its lines
    err = process.stderr.read()
    process.wait(timeout=30)
    assert err == b""
