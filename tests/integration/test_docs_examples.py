"""Every shell example of the manual's "Using the API" pages runs as written and prints what
the page shows.

The pages are read in the order mkdocs.yml's nav gives them, their ```bash and ```console blocks
in the order they come, as a reader pastes them into one terminal. The service is started as the
page's "leave it running" block says (its variables, then what `make run` does: `cme migrate`,
then `cme serve` on loopback with console logs), on a fresh database in a folder that stands for
the checkout, on a free port: the one change made to the examples is that port in the URL they
export. A console block's `$ ` lines are commands (a line ending in a backslash goes on), the lines
below each are what it must print, `...` standing for any text; a bash block's commands must
succeed. One bash process runs them all, with `set -eu`, so a failing command or an unset variable
ends the session there. Afterwards the folder holds nothing but the service's database.
"""

import doctest
import os
import re
import selectors
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.integration.server import CME, running_cme

ROOT = Path(__file__).resolve().parents[2]
SECTION = "Using the API"
DEFAULT_URL = "http://127.0.0.1:5000"  # where `make run` serves
SERVER_BLOCK = "leave it running"
COMMAND_SECONDS = 120
_FENCE = re.compile(r"^```(bash|console)([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_ASSIGNMENT = re.compile(r"([A-Z_][A-Z0-9_]*)=(\S+)")


@dataclass(frozen=True)
class Step:
    where: str  # page and line, for the failure message
    command: str
    expected: str | None  # None: a bash block, whose output the page does not show


class _Loader(yaml.SafeLoader):
    """mkdocs.yml's loader: its !!python/name tags name functions this test does not need."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def section_pages() -> list[Path]:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)
    for entry in config["nav"]:
        if isinstance(entry, dict) and SECTION in entry:
            pages = [next(iter(e.values())) if isinstance(e, dict) else e for e in entry[SECTION]]
            return [ROOT / "docs" / page for page in pages]
    raise AssertionError(f"mkdocs.yml's nav has no section {SECTION!r}")


def console_steps(where: str, text: str) -> Iterator[Step]:
    command: list[str] = []
    output: list[str] = []
    for line in text.splitlines():
        if command and not output and command[-1].endswith("\\"):
            command.append(line)
        elif line.startswith("$ "):
            if command:
                yield Step(where, "\n".join(command), "\n".join(output))
            command, output = [line[2:]], []
        elif command:
            output.append(line)
        else:
            raise AssertionError(f"{where}: console output before any command: {line!r}")
    if command:
        yield Step(where, "\n".join(command), "\n".join(output))


def blocks(pages: list[Path]) -> Iterator[tuple[str, str, str, str]]:
    """(where, language, info string, text) of every bash and console block."""
    for page in pages:
        text = page.read_text()
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            yield f"{page.relative_to(ROOT)}:{line}", match[1], match[2], match[3]


@dataclass(frozen=True)
class Session:
    server_env: dict[str, str]
    steps: list[Step]


def session(pages: list[Path]) -> Session:
    server_env: dict[str, str] | None = None
    steps: list[Step] = []
    for where, language, info, text in blocks(pages):
        if SERVER_BLOCK in info:
            assert server_env is None, f"{where}: a second block that starts the service"
            *assignments, make, run = text.split()
            assert (make, run) == ("make", "run"), f"{where}: the service starts with make run"
            server_env = {}
            for assignment in assignments:
                match = _ASSIGNMENT.fullmatch(assignment)
                assert match, f"{where}: {assignment!r} is not NAME=value"
                server_env[match[1]] = match[2]
        elif language == "console":
            steps.extend(console_steps(where, text))
        else:
            steps.append(Step(where, text.rstrip("\n"), None))
    assert server_env is not None, f"no block says how to start the service ({SERVER_BLOCK!r})"
    exports = "\n".join(step.command for step in steps)
    assert f"export CME_URL={DEFAULT_URL}" in exports, "the pages export the service's URL"
    assert f"export CME_API_KEY={server_env['API_KEY']}" in exports, "and the key it was given"
    return Session(server_env, steps)


class Shell:
    """One bash process fed one command at a time, as a terminal would be."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.marker = f"__step_done_{uuid.uuid4().hex}__"
        self.pending = b""
        self.run("set -eu")

    def run(self, command: str, timeout: float = COMMAND_SECONDS) -> str:
        """What command printed; AssertionError if the shell ended (a command failed) first."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f"{command}\nprintf '\\n{self.marker}\\n'\n".encode())
        self.process.stdin.flush()
        end = f"\n{self.marker}\n".encode()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while end not in self.pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no answer within {timeout} s")
                if not selector.select(left):
                    continue
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    status = self.process.wait()
                    printed = self.pending.decode(errors="replace")
                    raise AssertionError(f"the command failed (bash exited {status}):\n{printed}")
                self.pending += chunk
        printed, self.pending = self.pending.split(end, 1)
        return printed.decode().replace("\r", "")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def _shown(text: str) -> str:
    """Text as a page shows it: no blank lines at the end, no spaces at the ends of lines."""
    return "\n".join(line.rstrip() for line in text.rstrip("\n").splitlines()) + "\n"


def matches(expected: str, printed: str) -> bool:
    """doctest's ELLIPSIS: `...` is any text; a `...` line first or last may also be no line."""
    want, got = _shown(expected), _shown(printed)
    wants = {want}
    if want.endswith("\n...\n"):
        wants |= {w[: -len("...\n")] for w in set(wants)}
    if want.startswith("...\n"):
        wants |= {w[len("...\n") :] for w in set(wants)}
    checker = doctest.OutputChecker()
    return any(checker.check_output(w, got, doctest.ELLIPSIS) for w in wants)


def run_steps(shell: Shell, steps: list[Step]) -> None:
    for step in steps:
        try:
            printed = shell.run(step.command)
        except AssertionError as error:
            raise AssertionError(f"{step.where}: {step.command}\n{error}") from None
        if step.expected is not None and not matches(step.expected, printed):
            raise AssertionError(
                f"{step.where}: {step.command}\n--- the page shows:\n{step.expected}\n"
                f"--- it printed:\n{printed}"
            )


def terminal_env(home: Path) -> dict[str, str]:
    """A new terminal's environment: a PATH, a home, UTF-8, nothing of the test's own.

    PYTHONUNBUFFERED stands for the terminal's line buffering: through a pipe, `cme import`
    would print its summary only at exit, after the progress lines a terminal shows first."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TMPDIR": str(home)}
    env |= {"LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    if "PYTHONPATH" in os.environ:  # a checkout run against a shared venv runs its own code
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A folder standing for a fresh clone after `make run`'s install: the venv, nothing else."""
    folder = tmp_path / "checkout"
    folder.mkdir()
    (folder / ".venv").symlink_to(Path(CME).parents[1], target_is_directory=True)
    return folder


def test_every_example_of_using_the_api_runs_and_prints_what_the_page_shows(
    checkout: Path, tmp_path: Path
) -> None:
    examples = session(section_pages())
    assert len(examples.steps) > 20, "the pages hold the examples"
    env = {"LOG_FORMAT": "console", **examples.server_env}
    inherited = {k: os.environ[k] for k in ("PATH", "PYTHONPATH") if k in os.environ}
    migrated = subprocess.run(
        [CME, "migrate"], cwd=checkout, env={**inherited, **env}, capture_output=True, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr
    home = tmp_path / "home"
    home.mkdir()
    with running_cme(env, checkout, tmp_path / "cme.log") as (base_url, _):
        steps = [
            Step(s.where, s.command.replace(DEFAULT_URL, base_url), s.expected)
            for s in examples.steps
        ]
        shell = Shell(checkout, terminal_env(home))
        try:
            run_steps(shell, steps)
        finally:
            shell.close()
    left = sorted(str(p.relative_to(checkout)) for p in checkout.rglob("*"))
    written = [p for p in left if p != ".venv" and not re.fullmatch(r"var(/cme\.db.*)?", p)]
    assert written == [], "the examples wrote into the checkout"


def test_an_example_that_prints_something_else_fails(tmp_path: Path) -> None:
    shell = Shell(tmp_path, terminal_env(tmp_path))
    try:
        steps = list(console_steps("page.md:1", "$ echo 201\n201\n$ echo 500\n200\n"))
        with pytest.raises(AssertionError, match=r"(?s)page\.md:1: echo 500.*shows:\n200\n"):
            run_steps(shell, steps)
    finally:
        shell.close()


def test_an_example_whose_command_fails_ends_the_session(tmp_path: Path) -> None:
    shell = Shell(tmp_path, terminal_env(tmp_path))
    try:
        steps = [Step("page.md:3", "ID=$(false)", None), Step("page.md:4", "echo $ID", "")]
        with pytest.raises(AssertionError, match=r"page\.md:3: ID=\$\(false\)\nthe command failed"):
            run_steps(shell, steps)
    finally:
        shell.close()


def test_ellipsis_stands_for_any_text_and_nothing_else() -> None:
    assert matches(
        'HTTP/1.1 201 Created\n...\netag: "v1"\n...', 'HTTP/1.1 201 Created\nx\netag: "v1"\n'
    )
    assert not matches('HTTP/1.1 201 Created\n...\netag: "v1"', 'HTTP/1.1 409 Conflict\netag: "v1"')
    assert not matches("", "something printed where the page shows nothing")
