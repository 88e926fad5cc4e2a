"""The `cme` command's own messages: version, and a refusal that says what to do."""

from importlib.metadata import version

import pytest

from cme_entrypoints.cli import main


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
