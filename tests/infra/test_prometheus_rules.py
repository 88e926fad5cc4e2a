"""Every PromQL expression in infra/ is evaluated by `promtool test rules` on synthetic series."""

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import hcl2
import pytest
import yaml

RunTool = Callable[..., subprocess.CompletedProcess[str]]
RULES = Path("infra/prometheus")
ALERTS = RULES / "alerts.yml"
DASHBOARD = RULES / "dashboard.yml"


def rules(root: Path, name: Path) -> list[dict[str, str]]:
    rule_list: list[dict[str, str]] = yaml.safe_load((root / name).read_text())["groups"][0][
        "rules"
    ]
    return rule_list


def test_promtool_passes_every_rule_test(root: Path, run_tool: RunTool) -> None:
    checked = run_tool("promtool", "check", "rules", ALERTS, DASHBOARD, cwd=root)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run_tool("promtool", "test", "rules", "tests.yml", cwd=root / RULES)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_shown_firing_and_quiet_and_every_chart_is_evaluated(root: Path) -> None:
    tests = yaml.safe_load((root / RULES / "tests.yml").read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    alerts = {rule["alert"] for rule in rules(root, ALERTS)}
    assert firing == alerts
    assert quiet == alerts
    evaluated = {e["expr"] for test in tests for e in test.get("promql_expr_test", [])}
    assert evaluated == {rule["record"] for rule in rules(root, DASHBOARD)}


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("> 14.4 * 0.001)", "> 14.4 * 0.1)"),  # an alert that can no longer fire
        ('status=~"5.."}[1h]', 'status=~"4.."}[1h]'),  # the wrong series
        ("[5m]))) > 1", "[5m])) > 1"),  # a syntax error
    ],
)
def test_a_broken_expression_fails_the_rule_tests(
    root: Path, run_tool: RunTool, tmp_path: Path, old: str, new: str
) -> None:
    broken = tmp_path / "prometheus"
    shutil.copytree(root / RULES, broken)
    text = (broken / "alerts.yml").read_text()
    assert old in text
    (broken / "alerts.yml").write_text(text.replace(old, new, 1))
    tested = run_tool("promtool", "test", "rules", "tests.yml", cwd=broken)
    assert tested.returncode != 0


def test_terraform_holds_no_promql_of_its_own(root: Path) -> None:
    for path in (root / "infra" / "terraform").glob("*.tf"):
        text = path.read_text()
        assert not re.search(r"\b(rate|increase|histogram_quantile|sum)\(", text), path


def test_the_dashboard_charts_every_recording_rule(root: Path) -> None:
    with (root / "infra" / "terraform" / "monitoring.tf").open() as handle:
        doc = hcl2.load(handle)
    locals_ = {k: v for block in doc["locals"] for k, v in block.items()}
    charted = {r.strip('"') for chart in locals_["dashboard_charts"] for r in chart["records"]}
    assert charted == {rule["record"] for rule in rules(root, DASHBOARD)}


def normalized(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def test_the_readme_promql_is_the_tested_promql(root: Path) -> None:
    readme = (root / "docs" / "operations" / "alerts.md").read_text()
    blocks = re.findall(r"```promql\n(.*?)```", readme, flags=re.DOTALL)
    shown = [
        line for block in blocks for line in block.splitlines() if line and not line.startswith("#")
    ]
    assert shown
    tested = {normalized(rule["expr"]) for rule in rules(root, ALERTS) + rules(root, DASHBOARD)}
    for expr in shown:
        assert normalized(expr) in tested, expr
