"""Offline checks of the Dockerfile, .dockerignore, docker-compose.yml and .env.example."""

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

RunTool = Callable[..., subprocess.CompletedProcess[str]]
Instruction = tuple[str, str]


def parse_dockerfile(text: str) -> list[Instruction]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            keyword, _, args = pending.partition(" ")
            instructions.append((keyword.upper(), " ".join(args.split())))
            pending = ""
    return instructions


def hadolint(run_tool: RunTool, dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return run_tool("hadolint", "--no-color", "--failure-threshold", "warning", dockerfile)


def compose_schema_check(run_tool: RunTool, path: Path) -> subprocess.CompletedProcess[str]:
    return run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", path)


@pytest.fixture(scope="module")
def dockerfile(root: Path) -> list[Instruction]:
    return parse_dockerfile((root / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def stages(dockerfile: list[Instruction]) -> list[list[Instruction]]:
    starts = [i for i, (kw, _) in enumerate(dockerfile) if kw == "FROM"]
    return [dockerfile[a:b] for a, b in zip(starts, [*starts[1:], len(dockerfile)], strict=True)]


@pytest.fixture(scope="module")
def runtime(stages: list[list[Instruction]]) -> list[Instruction]:
    return stages[-1]


@pytest.fixture(scope="module")
def services(root: Path) -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]
    return services


def args_of(stage: list[Instruction], keyword: str) -> list[str]:
    return [args for kw, args in stage if kw == keyword]


def test_dockerfile_passes_hadolint_at_warning_threshold(run_tool: RunTool, root: Path) -> None:
    result = hadolint(run_tool, root / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_on_latest_base_unpinned_apt_and_sudo(
    run_tool: RunTool, root: Path, tmp_path: Path
) -> None:
    original = (root / "Dockerfile").read_text()
    text = original.replace("FROM ${BASE_IMAGE} AS runtime", "FROM python:latest AS runtime")
    text += "RUN apt-get update && apt-get install -y gcc && sudo rm -rf /tmp/x\n"
    (tmp_path / "Dockerfile").write_text(text)
    result = hadolint(run_tool, tmp_path / "Dockerfile")
    assert result.returncode != 0
    for code in ("DL3007", "DL3008", "DL3004"):
        assert code in result.stdout, result.stdout


def test_compose_file_matches_the_compose_specification(run_tool: RunTool, root: Path) -> None:
    result = compose_schema_check(run_tool, root / "docker-compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("service", "key", "value"),
    [
        ("backend", "restart_policy", "always"),  # unknown key
        ("backend", "cap_drop", "ALL"),  # a string where a list is required
        ("db", "ports", {"5433": 5432}),  # a mapping where a list is required
    ],
)
def test_schema_check_fails_on_a_broken_compose_file(
    run_tool: RunTool, root: Path, tmp_path: Path, service: str, key: str, value: object
) -> None:
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    compose["services"][service][key] = value
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(compose))
    result = compose_schema_check(run_tool, broken)
    assert result.returncode != 0, result.stdout


def test_every_base_image_is_pinned_to_a_patch_tag(
    dockerfile: list[Instruction], stages: list[list[Instruction]]
) -> None:
    assert len(stages) >= 2, "build and runtime must be separate stages"
    base = dockerfile[0]
    assert base[0] == "ARG", "BASE_IMAGE is declared before the first FROM"
    name, _, image = base[1].partition("=")
    assert name == "BASE_IMAGE"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image
    for stage in stages:
        assert stage[0][1].split()[0] == "${BASE_IMAGE}", stage[0]


def test_runtime_copies_only_the_venv_and_installs_nothing(runtime: list[Instruction]) -> None:
    assert args_of(runtime, "COPY") == ["--from=builder /opt/venv /opt/venv"]
    for run in args_of(runtime, "RUN"):
        assert not re.search(r"apt-get|apk |gcc|build-essential|pip install", run), run


def test_dependencies_come_from_the_constraints_file(stages: list[list[Instruction]]) -> None:
    builder = " && ".join(args_of(stages[0], "RUN"))
    assert "pip wheel --no-cache-dir --no-deps -w /wheels ." in builder
    constrained = r"/opt/venv/bin/pip install .*-c requirements/constraints\.txt /wheels/\*\.whl"
    assert re.search(constrained, builder)


def test_runtime_runs_as_app_with_uid_and_gid_10001(runtime: list[Instruction]) -> None:
    assert args_of(runtime, "USER")[-1] in {"app", "app:app", "10001", "10001:10001"}
    setup = " ".join(args_of(runtime, "RUN"))
    assert re.search(r"groupadd .*--gid 10001 app\b", setup)
    assert re.search(r"useradd .*--uid 10001 .*--gid app\b.* app$", setup)


def test_runtime_exposes_5000_and_runs_cme_serve(runtime: list[Instruction]) -> None:
    assert args_of(runtime, "EXPOSE") == ["5000"]
    assert json.loads(args_of(runtime, "CMD")[-1]) == ["cme", "serve"]
    env = " ".join(args_of(runtime, "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env


def test_healthcheck_uses_python_urllib_not_curl_or_wget(runtime: list[Instruction]) -> None:
    (healthcheck,) = args_of(runtime, "HEALTHCHECK")
    assert "urllib" in healthcheck
    assert "/health" in healthcheck
    assert not re.search(r"\b(curl|wget)\b", healthcheck)


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command_follows_the_health_endpoint_on_port_from_env(
    runtime: list[Instruction], status: int, healthy: bool
) -> None:
    command = json.loads(args_of(runtime, "HEALTHCHECK")[0].split(" CMD ", 1)[1])
    assert command[0] == "python"
    handler = type("Handler", (_Health,), {"status": status})
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        env = {**os.environ, "PORT": str(server.server_address[1])}
        probe = [sys.executable, *command[1:]]
        result = subprocess.run(probe, env=env, capture_output=True, timeout=10)
        server.shutdown()
    assert (result.returncode == 0) is healthy, result.stderr


def test_no_remote_add_and_no_secret_in_env_or_arg(dockerfile: list[Instruction]) -> None:
    for keyword, args in dockerfile:
        if keyword == "ADD":
            assert not re.search(r"https?://|git@", args), args
        if keyword in {"ENV", "ARG"}:
            names = re.findall(r"(?:^|\s)([A-Za-z_]\w*)(?==|\s|$)", args)
            assert not [n for n in names if re.search(r"PASS|SECRET|KEY|TOKEN", n, re.I)], args


def test_dockerignore_keeps_tests_git_venvs_databases_and_secrets_out(
    root: Path, dockerfile: list[Instruction]
) -> None:
    lines = (root / ".dockerignore").read_text().splitlines()
    patterns = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    required = {"tests", ".git", ".venv*", ".env", "**/*.db", "**/*.sqlite*", "bench", "infra"}
    assert required <= patterns, required - patterns
    # What the Dockerfile copies from the context must not be ignored.
    sources = [
        src
        for kw, args in dockerfile
        if kw == "COPY" and not args.startswith("--from")
        for src in args.split()[:-1]
    ]
    for src in sources:
        ignored = [p for p in patterns if fnmatch(src.rstrip("/"), p.removeprefix("**/"))]
        assert not ignored, f"{src} is ignored by {ignored}"


def test_db_pass_and_api_key_are_required(root: Path, services: dict[str, Any]) -> None:
    text = (root / "docker-compose.yml").read_text()
    # Every use must be the required form, or one default would make DB_PASS optional.
    assert set(re.findall(r"\$\{DB_PASS[^}]*\}", text)) == {"${DB_PASS:?set DB_PASS}"}
    assert services["db"]["environment"]["POSTGRES_PASSWORD"] == "${DB_PASS:?set DB_PASS}"
    assert services["backend"]["environment"]["API_KEY"] == "${API_KEY:?set API_KEY}"


def test_db_is_pinned_postgres_15_on_port_5433_with_a_volume(services: dict[str, Any]) -> None:
    db = services["db"]
    assert re.fullmatch(r"postgres:15\.\d+(-\w+)?", db["image"])
    assert any(str(port).endswith("5433:5432") for port in db["ports"])
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(volume.split(":")[0] == "db-data" for volume in db["volumes"])


def test_migrate_runs_once_after_db_is_healthy(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["cme", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert migrate["image"] == services["backend"]["image"]


def test_backend_starts_after_migration_and_is_hardened(services: dict[str, Any]) -> None:
    backend = services["backend"]
    assert backend["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert backend["build"]["context"] == "."
    assert backend["restart"] == "unless-stopped"
    assert backend["read_only"] is True
    assert "/tmp" in backend["tmpfs"]
    assert "no-new-privileges:true" in backend["security_opt"]
    assert backend["cap_drop"] == ["ALL"]
    # In-flight requests get SHUTDOWN_GRACE_SECONDS (20) after SIGTERM before Docker kills.
    assert int(backend["stop_grace_period"].removesuffix("s")) > 20
    assert any(str(port).endswith(":5000") for port in backend["ports"])
    assert backend["environment"]["DB_HOST"] == "db"
    test = " ".join(backend["healthcheck"]["test"])
    assert "urllib" in test
    assert not re.search(r"\b(curl|wget)\b", test)


def test_env_example_names_every_compose_variable_and_holds_no_secret(root: Path) -> None:
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", (root / "docker-compose.yml").read_text()))
    lines = (root / ".env.example").read_text().splitlines()
    example = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert used == set(example)
    assert example["DB_PASS"] == ""
    assert example["API_KEY"] == ""


def test_the_stand_in_base_script_is_shellcheck_clean(run_tool: RunTool, root: Path) -> None:
    result = run_tool("shellcheck", root / "scripts/container-base.sh")
    assert result.returncode == 0, result.stdout
