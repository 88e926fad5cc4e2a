"""The compose monitoring profile and the Grafana dashboard, checked on a real Prometheus."""

import copy
import itertools
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import Any

import hcl2
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.server import CME, free_port, running_cme

RunTool = Callable[..., subprocess.CompletedProcess[str]]
Doc = dict[str, Any]

COMPOSE = Path("docker-compose.yml")
GRAFANA = Path("infra/grafana")
DASHBOARD = GRAFANA / "dashboards" / "cme.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "cme.yml"
RULES = Path("infra/prometheus")
PROMETHEUS_CONFIG = RULES / "prometheus.yml"
MONITORING = {"prometheus", "grafana"}
API_KEY = "grafana-test-key-0123456789abcdef"

# Each chart of the Cloud Monitoring dashboard (local.dashboard_charts in monitoring.tf) and the
# Grafana panel that shows the same records. A chart or a panel missing here fails the test.
COUNTERPARTS = {
    "Requests per second by route": "Requests per second by route",
    "5xx ratio": "5xx ratio",
    "p50 latency by route (s)": "p50 latency by route (s)",
    "p99 latency by route (s)": "p99 latency by route (s)",
    "Pods ready vs HPA desired and maximum": "Pods ready vs HPA desired and maximum",
    "CPU cores per pod (app container)": "CPU cores per pod (app container)",
    "Memory per pod (app container, bytes)": "Memory per pod (app container, bytes)",
    "Database pool connections by state": "Database pool connections by state",
    "Cloud SQL connections": "Cloud SQL connections",
    "Cloud SQL CPU utilization": "Cloud SQL CPU utilization",
    "Reservations per second by outcome": "Reservations per second by outcome",
    "Units held by reservations": "Units held by reservations",
    "Webhook deliveries by outcome": "Webhook deliveries by outcome",
    "Webhook delivery lag": "Webhook delivery lag",
    "Webhook endpoints by status": "Webhook endpoints by status",
}
# The panels with no data outside Google Cloud (docs/operations/monitoring.md says so): every
# other panel has a query on the series the compose stack produces.
CLOUD_ONLY = {"Cloud SQL connections", "Cloud SQL CPU utilization"}
# The panels with no data until a webhook endpoint is registered: the lag gauge has one series
# per active endpoint and none without.
NEEDS_A_WEBHOOK = {"Webhook delivery lag"}
# What cme exports only once a sweep has read it off the database (every 15 s, the first 15 s
# after start): the endpoints by status, 0 each without a webhook.
AFTER_A_SWEEP = {"webhook_endpoints"}
# What Prometheus itself records for every scrape target.
PROMETHEUS_SERIES = {"up"}

# What Grafana's alert list panel reads (public/app/plugins/panel/alertlist/module.tsx).
ALERTLIST_OPTIONS = {
    "viewMode",
    "groupMode",
    "groupBy",
    "maxItems",
    "sortOrder",
    "dashboardAlerts",
    "alertName",
    "alertInstanceLabelFilter",
    "datasource",
    "folder",
    "showInactiveAlerts",
    "stateFilter",
}
ALERT_STATES = {"firing", "pending", "recovering", "noData", "normal", "error"}
PANEL_TYPES = {"timeseries", "alertlist"}
GRID_COLUMNS = 24
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "group_left"}
PROMQL_KEYWORDS |= {"group_right", "by", "without", "on", "ignoring"}


def load(root: Path, path: Path) -> Doc:
    doc: Doc = yaml.safe_load((root / path).read_text())
    return doc


def unique_keys(pairs: list[tuple[str, Any]]) -> Doc:
    keys = [key for key, _ in pairs]
    duplicates = {key for key in keys if keys.count(key) > 1}
    assert not duplicates, f"duplicate keys {duplicates}: Grafana keeps only the last"
    return dict(pairs)


@pytest.fixture(scope="module")
def compose(root: Path) -> Doc:
    return load(root, COMPOSE)


@pytest.fixture(scope="module")
def dashboard(root: Path) -> Doc:
    doc: Doc = json.loads((root / DASHBOARD).read_text(), object_pairs_hook=unique_keys)
    return doc


@pytest.fixture(scope="module")
def datasource(root: Path) -> Doc:
    (source,) = load(root, DATASOURCES)["datasources"]
    return source


@pytest.fixture(scope="module")
def records(root: Path) -> dict[str, str]:
    rules = load(root, RULES / "dashboard.yml")["groups"][0]["rules"]
    return {rule["record"]: rule["expr"] for rule in rules}


@pytest.fixture(scope="module")
def alerts(root: Path) -> set[str]:
    return {rule["alert"] for rule in load(root, RULES / "alerts.yml")["groups"][0]["rules"]}


def cloud_charts(root: Path) -> list[tuple[str, list[str]]]:
    with (root / "infra" / "terraform" / "monitoring.tf").open() as handle:
        doc = hcl2.load(handle)
    locals_ = {k: v for block in doc["locals"] for k, v in block.items()}
    return [
        (chart["title"].strip('"'), [r.strip('"') for r in chart["records"]])
        for chart in locals_["dashboard_charts"]
    ]


def charts(dashboard: Doc) -> dict[str, Doc]:
    return {p["title"]: p for p in dashboard["panels"] if p["type"] == "timeseries"}


def expressions(dashboard: Doc) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


# ---------------------------------------------------------------------------------------------
# docker-compose.yml


def compose_schema_check(run_tool: RunTool, path: Path) -> subprocess.CompletedProcess[str]:
    return run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", path)


def test_the_compose_file_with_the_monitoring_profile_matches_the_specification(
    run_tool: RunTool, root: Path
) -> None:
    result = compose_schema_check(run_tool, root / COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("service", "key", "value"),
    [
        ("grafana", "profiles", "monitoring"),  # a string where a list is required
        ("prometheus", "healthcheck", {"test": {"CMD": "wget"}}),  # a mapping for the command
        ("grafana", "depends_on", {"prometheus": {"condition": "healthy"}}),  # unknown condition
    ],
)
def test_the_schema_check_fails_on_a_broken_monitoring_service(
    run_tool: RunTool, compose: Doc, tmp_path: Path, service: str, key: str, value: object
) -> None:
    broken = copy.deepcopy(compose)
    broken["services"][service][key] = value
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = compose_schema_check(run_tool, path)
    assert result.returncode != 0, result.stdout


def profile_problems(compose: Doc) -> list[str]:
    services: Doc = compose["services"]
    problems = [f"no service {name}" for name in sorted(MONITORING - set(services))]
    for name, service in services.items():
        profiles = service.get("profiles")
        if name in MONITORING and profiles != ["monitoring"]:
            problems.append(f"{name} has profiles {profiles}, not only monitoring")
        if name in MONITORING:
            continue
        if profiles is not None:
            problems.append(f"{name} has profiles {profiles}: `docker compose up` would change")
        # A default service needing a monitoring one would start it without the profile.
        problems += [
            f"{name} depends on {dependency}"
            for dependency in service.get("depends_on", {})
            if dependency in MONITORING
        ]
    return problems


def test_prometheus_and_grafana_start_only_with_the_monitoring_profile(compose: Doc) -> None:
    assert profile_problems(compose) == []
    default = {name for name, s in compose["services"].items() if "profiles" not in s}
    assert default == {"db", "migrate", "backend"}


Breakage = Callable[[Doc], object]


def broken_copy(doc: Doc, breakage: Breakage) -> Doc:
    broken = copy.deepcopy(doc)
    breakage(broken)
    return broken


def reported(problems: list[str], expected: str) -> bool:
    """Whether the check failed for the reason the test broke, not some other."""
    return any(expected in problem for problem in problems)


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda c: c["services"]["grafana"].pop("profiles"), "grafana has profiles None"),
        (
            lambda c: c["services"]["prometheus"].update(profiles=["monitoring", "debug"]),
            "prometheus has profiles",
        ),
        (lambda c: c["services"]["backend"].update(profiles=["monitoring"]), "backend has"),
        (
            lambda c: c["services"]["backend"]["depends_on"].update(prometheus={}),
            "backend depends on prometheus",
        ),
        (lambda c: c["services"].pop("prometheus"), "no service prometheus"),
    ],
)
def test_the_profile_check_fails_on_a_service_in_the_wrong_profile(
    compose: Doc, breakage: Breakage, expected: str
) -> None:
    assert reported(profile_problems(broken_copy(compose, breakage)), expected)


PINNED = re.compile(r"[a-z0-9./-]+:v?\d+\.\d+\.\d+@sha256:[0-9a-f]{64}")


def hardening_problems(compose: Doc) -> list[str]:
    problems = []
    for name, service in compose["services"].items():
        problems += [
            f"{name} publishes {port} beyond 127.0.0.1"
            for port in service.get("ports", [])
            if not str(port).startswith("127.0.0.1:")
        ]
        if name not in MONITORING:
            continue
        if not PINNED.fullmatch(service.get("image", "")):
            problems.append(f"{name}: {service.get('image')} is not pinned by version and digest")
        test = service.get("healthcheck", {}).get("test", [])
        if test[:1] != ["CMD"] or len(test) < 2:
            problems.append(f"{name} has no healthcheck command")
        if service.get("read_only") is not True:
            problems.append(f"{name} has a writable root")
        if service.get("cap_drop") != ["ALL"]:
            problems.append(f"{name} keeps Linux capabilities")
        if "no-new-privileges:true" not in service.get("security_opt", []):
            problems.append(f"{name} may gain privileges")
    return problems


def test_monitoring_images_are_pinned_checked_hardened_and_on_loopback(compose: Doc) -> None:
    assert hardening_problems(compose) == []


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda c: c["services"]["grafana"].update(ports=["3000:3000"]), "beyond 127.0.0.1"),
        (
            lambda c: c["services"]["prometheus"].update(image="prom/prometheus:v3.7.2"),
            "prometheus: prom/prometheus:v3.7.2 is not pinned",
        ),
        (
            lambda c: c["services"]["grafana"].update(image="grafana/grafana:latest"),
            "grafana: grafana/grafana:latest is not pinned",
        ),
        (lambda c: c["services"]["prometheus"].pop("healthcheck"), "prometheus has no health"),
        (lambda c: c["services"]["grafana"].pop("read_only"), "grafana has a writable root"),
        (
            lambda c: c["services"]["prometheus"].update(cap_drop=["NET_RAW"]),
            "prometheus keeps Linux capabilities",
        ),
        (lambda c: c["services"]["grafana"].pop("security_opt"), "grafana may gain privileges"),
    ],
)
def test_the_hardening_check_fails_on_a_weakened_service(
    compose: Doc, breakage: Breakage, expected: str
) -> None:
    assert reported(hardening_problems(broken_copy(compose, breakage)), expected)


def test_grafana_lets_anyone_on_loopback_view_and_nobody_log_in(compose: Doc) -> None:
    env = compose["services"]["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    # No admin account, so no default admin/admin to change; no login to guess either.
    assert env["GF_SECURITY_DISABLE_INITIAL_ADMIN_CREATION"] == "true"
    assert env["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"
    assert env["GF_AUTH_BASIC_ENABLED"] == "false"
    assert not [key for key in env if "PASSWORD" in key]


def bind_mounts(service: Doc) -> dict[str, tuple[str, str]]:
    """Target -> (source, mode) of each host directory mounted into the container."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        if source.startswith("./"):
            mounts[target] = (source, mode[0] if mode else "rw")
    return mounts


def test_each_container_finds_its_files_where_it_reads_them(root: Path, compose: Doc) -> None:
    grafana, prometheus = compose["services"]["grafana"], compose["services"]["prometheus"]
    mounts = bind_mounts(grafana)
    assert {mode for _, mode in mounts.values()} == {"ro"}
    assert mounts["/etc/grafana/provisioning"][0] == "./infra/grafana/provisioning"
    providers = load(root, PROVIDERS)
    (provider,) = providers["providers"]
    assert (providers["apiVersion"], provider["type"]) == (1, "file")
    assert load(root, DATASOURCES)["apiVersion"] == 1
    dashboards = provider["options"]["path"]
    assert mounts[dashboards][0] == "./infra/grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards}/{DASHBOARD.name}"
    config = PurePosixPath(
        next(a for a in prometheus["command"] if a.startswith("--config.file=")).split("=", 1)[1]
    )
    assert bind_mounts(prometheus)[str(config.parent)] == (f"./{RULES}", "ro")
    assert config.name == PROMETHEUS_CONFIG.name
    for source, _ in [*mounts.values(), *bind_mounts(prometheus).values()]:
        assert (root / source).is_dir(), source


def test_prometheus_scrapes_the_compose_api_and_grafana_reads_that_prometheus(
    root: Path, compose: Doc, datasource: Doc
) -> None:
    config = load(root, PROMETHEUS_CONFIG)
    (job,) = config["scrape_configs"]
    (static,) = job["static_configs"]
    port = compose["services"]["backend"]["environment"]["PORT"]
    assert static["targets"] == [f"backend:{port}"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # Every rule selects namespace="cme", as Managed Prometheus labels the pods' series.
    assert static["labels"] == {"namespace": "cme"}
    published = compose["services"]["prometheus"]["ports"]
    assert published == ["127.0.0.1:9090:9090"]
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["type"] == "prometheus"


# ---------------------------------------------------------------------------------------------
# infra/prometheus/prometheus.yml


def test_the_prometheus_config_passes_promtool(root: Path, run_tool: RunTool) -> None:
    checked = run_tool("promtool", "check", "config", PROMETHEUS_CONFIG, cwd=root)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 rule files found" in checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("  - dashboard.yml", "  - dashboards.yml"),  # a rule file that is not there
        ("scrape_interval: 15s", "scrape_intervall: 15s"),  # an unknown setting
        ("scrape_timeout: 10s", "scrape_timeout: 20s"),  # a timeout longer than the interval
    ],
)
def test_promtool_fails_on_a_broken_prometheus_config(
    root: Path, run_tool: RunTool, tmp_path: Path, old: str, new: str
) -> None:
    broken = tmp_path / "prometheus"
    shutil.copytree(root / RULES, broken)
    text = (broken / "prometheus.yml").read_text()
    assert old in text
    (broken / "prometheus.yml").write_text(text.replace(old, new, 1))
    checked = run_tool("promtool", "check", "config", broken / "prometheus.yml")
    assert checked.returncode != 0, checked.stdout


# ---------------------------------------------------------------------------------------------
# infra/grafana: structure (no Grafana binary installs here) and counterparts


def query_problems(name: str, panel: Doc, source: Doc) -> list[str]:
    reference = {"type": "prometheus", "uid": source["uid"]}
    problems = [] if panel.get("datasource") == reference else [f"{name}: not on {reference}"]
    targets = panel.get("targets") or []
    if not targets:
        problems.append(f"{name} has no query")
    refs = [t.get("refId") for t in targets]
    if len(set(refs)) != len(refs) or not all(refs):
        problems.append(f"{name}: refIds {refs} are not unique")
    for target in targets:
        if target.get("datasource") != reference:
            problems.append(f"{name} {target.get('refId')}: not on {reference}")
        if not isinstance(target.get("expr"), str) or not target["expr"].strip():
            problems.append(f"{name} {target.get('refId')}: no PromQL")
    return problems


def alertlist_problems(name: str, panel: Doc, source: Doc) -> list[str]:
    options = panel.get("options", {})
    states = options.get("stateFilter", {})
    problems = [f"{name}: unknown option {k}" for k in sorted(set(options) - ALERTLIST_OPTIONS)]
    problems += [f"{name}: unknown state {k}" for k in sorted(set(states) - ALERT_STATES)]
    if states.get("firing") is not True:
        problems.append(f"{name} hides firing alerts")
    # The panel filters by data source name; Grafana lists that source's rules only with
    # manageAlerts on.
    if options.get("datasource") != source["name"]:
        problems.append(f"{name} lists the alerts of {options.get('datasource')!r}")
    if source.get("jsonData", {}).get("manageAlerts") is not True:
        problems.append(f"Grafana lists no alert rule of {source['name']}")
    return problems


def dashboard_problems(dashboard: Doc, source: Doc) -> list[str]:
    problems = []
    # A provisioned dashboard is found by uid; an id would clash with the database's.
    if dashboard.get("id") is not None:
        problems.append(f"id {dashboard['id']}: a provisioned dashboard has none")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", str(dashboard.get("uid"))):
        problems.append(f"uid {dashboard.get('uid')!r} is not a Grafana uid")
    for key, kind in {"title": str, "schemaVersion": int, "panels": list, "time": dict}.items():
        if not isinstance(dashboard.get(key), kind):
            problems.append(f"{key} is not a {kind.__name__}")
    panels = dashboard.get("panels") or []
    ids = [panel.get("id") for panel in panels]
    if len(set(ids)) != len(ids) or not all(isinstance(i, int) for i in ids):
        problems.append(f"panel ids {ids} are not unique integers")
    if [p.get("type") for p in panels].count("alertlist") != 1:
        problems.append("no single alert list panel")
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        name = repr(panel.get("title") or f"panel {panel.get('id')}")
        if panel.get("type") not in PANEL_TYPES:
            problems.append(f"{name}: type {panel.get('type')!r}")
        grid = panel.get("gridPos", {})
        x, y, w, h = (grid.get(k) for k in "xywh")
        if not all(isinstance(v, int) for v in (x, y, w, h)):
            problems.append(f"{name}: gridPos {grid}")
            continue
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > GRID_COLUMNS:
            problems.append(f"{name}: gridPos {grid} is outside {GRID_COLUMNS} columns")
        overlapped = {
            cells[c] for c in itertools.product(range(x, x + w), range(y, y + h)) if c in cells
        }
        problems += [f"{name} overlaps {other}" for other in sorted(overlapped)]
        cells |= dict.fromkeys(itertools.product(range(x, x + w), range(y, y + h)), name)
        if panel.get("type") == "timeseries":
            problems += query_problems(name, panel, source)
        if panel.get("type") == "alertlist":
            problems += alertlist_problems(name, panel, source)
    return problems


def test_the_dashboard_has_the_structure_grafana_loads(dashboard: Doc, datasource: Doc) -> None:
    assert dashboard_problems(dashboard, datasource) == []


def set_first(kind: str, **values: object) -> Breakage:
    return lambda d: next(p for p in d["panels"] if p["type"] == kind).update(values)


ALERTS_OF_GRAFANA = {"datasource": "grafana", "stateFilter": {"firing": True}}


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda d: d.update(id=7), "id 7"),
        (lambda d: d.update(uid="cme dashboard"), "not a Grafana uid"),
        (lambda d: d.update(schemaVersion="39"), "schemaVersion is not a int"),
        (lambda d: d["panels"][2].update(id=d["panels"][1]["id"]), "not unique integers"),
        (lambda d: d["panels"][2].update(gridPos=d["panels"][1]["gridPos"]), "overlaps"),
        (lambda d: d["panels"][3]["gridPos"].update(x=20), "outside 24 columns"),
        (set_first("timeseries", type="graph"), "type 'graph'"),
        (set_first("timeseries", datasource={"type": "prometheus", "uid": "gmp"}), "not on"),
        (set_first("timeseries", targets=[]), "has no query"),
        (lambda d: d["panels"][4]["targets"][0].update(expr=""), "A: no PromQL"),
        (lambda d: d["panels"][5]["targets"].append(d["panels"][5]["targets"][0]), "refIds"),
        (set_first("alertlist", options={"stateFilter": {"firing": False}}), "hides firing"),
        (set_first("alertlist", options=ALERTS_OF_GRAFANA), "lists the alerts of 'grafana'"),
        (set_first("alertlist", options={"alertsOnly": True}), "unknown option alertsOnly"),
        (lambda d: d["panels"].pop(0), "no single alert list panel"),
    ],
)
def test_the_structure_check_fails_on_a_broken_dashboard(
    dashboard: Doc, datasource: Doc, breakage: Breakage, expected: str
) -> None:
    assert reported(dashboard_problems(broken_copy(dashboard, breakage), datasource), expected)


def test_the_structure_check_fails_without_manage_alerts(dashboard: Doc, datasource: Doc) -> None:
    source = copy.deepcopy(datasource)
    source["jsonData"]["manageAlerts"] = False
    assert reported(dashboard_problems(dashboard, source), "Grafana lists no alert rule")


def counterpart_problems(cloud: list[tuple[str, list[str]]], dashboard: Doc) -> list[str]:
    panels = charts(dashboard)
    titles = {title for title, _ in cloud}
    problems = [f"chart {t!r} is not in COUNTERPARTS" for t in sorted(titles - set(COUNTERPARTS))]
    problems += [f"COUNTERPARTS has {t!r}, Cloud does not" for t in set(COUNTERPARTS) - titles]
    problems += [
        f"panel {t!r} has no Cloud Monitoring chart"
        for t in sorted(set(panels) - set(COUNTERPARTS.values()))
    ]
    for title, chart_records in cloud:
        panel = panels.get(COUNTERPARTS.get(title, ""))
        if panel is None:
            problems.append(f"no Grafana panel for {title!r}")
            continue
        shown = {target["expr"] for target in panel.get("targets", [])}
        problems += [
            f"{panel['title']!r} does not chart {r}" for r in chart_records if r not in shown
        ]
    return problems


def test_every_cloud_monitoring_chart_has_its_grafana_panel_and_back(
    root: Path, dashboard: Doc
) -> None:
    assert counterpart_problems(cloud_charts(root), dashboard) == []


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (
            lambda cloud, d: cloud.append(("Redis memory", ["cme:redis_memory_bytes"])),
            "chart 'Redis memory' is not in COUNTERPARTS",
        ),
        (lambda cloud, d: cloud.pop(), "COUNTERPARTS has 'Cloud SQL CPU utilization'"),
        (
            lambda cloud, d: d["panels"].append({**d["panels"][1], "id": 99, "title": "Extra"}),
            "panel 'Extra' has no Cloud Monitoring chart",
        ),
        (
            lambda cloud, d: d["panels"].remove(charts(d)["5xx ratio"]),
            "no Grafana panel for '5xx ratio'",
        ),
        (
            lambda cloud, d: charts(d)["p99 latency by route (s)"]["targets"][0].update(
                expr="cme:request_latency:p50_by_route"
            ),
            "does not chart cme:request_latency:p99_by_route",
        ),
        (
            lambda cloud, d: charts(d)["Pods ready vs HPA desired and maximum"]["targets"].pop(1),
            "does not chart cme:hpa:desired_replicas",
        ),
    ],
)
def test_the_counterpart_check_fails_on_a_chart_on_one_side_only(
    root: Path,
    dashboard: Doc,
    breakage: Callable[[list[tuple[str, list[str]]], Doc], object],
    expected: str,
) -> None:
    cloud, broken = cloud_charts(root), copy.deepcopy(dashboard)
    breakage(cloud, broken)
    assert reported(counterpart_problems(cloud, broken), expected)


def metric_names(expr: str) -> set[str]:
    """The series a PromQL expression selects by name, not its functions, labels or keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+\S+", " ", text)
    text = re.sub(r"(?<![\w:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", " ", text)
    return {
        m.group()
        for m in re.finditer(r"[A-Za-z_:][\w:]*", text)
        if m.group().lower() not in PROMQL_KEYWORDS and not text[m.end() :].lstrip().startswith("(")
    }


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("cme:http_requests:rate5m", {"cme:http_requests:rate5m"}),
        (
            'histogram_quantile(0.99, sum by (le) (rate(request_latency_seconds_bucket{le="0.3",'
            'path=~"/x{1}"}[5m]))) > 1e3',
            {"request_latency_seconds_bucket"},
        ),
        (
            "sum(rate(a_total[5m])) / on (pod) group_left (node) b offset 1h unless c",
            {"a_total", "b", "c"},
        ),
        ("sum(up) by (job) and bool 1", {"up"}),
    ],
)
def test_metric_names_reads_series_not_functions_labels_or_keywords(
    expr: str, names: set[str]
) -> None:
    assert metric_names(expr) == names


def name_problems(exprs: list[str], defined: set[str]) -> list[str]:
    problems = []
    for expr in exprs:
        names = metric_names(expr)
        if not names:
            problems.append(f"{expr}: selects no series")
        elif names - defined:
            problems.append(f"{expr}: {sorted(names - defined)} defined nowhere")
    return problems


# ---------------------------------------------------------------------------------------------
# A real Prometheus on loopback, with this repository's config and rules, scraping `cme serve`


def api(url: str, path: str, **params: str) -> Doc:
    try:
        with urllib.request.urlopen(
            f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=10
        ) as r:
            doc: Doc = json.loads(r.read())
    except urllib.error.HTTPError as error:  # a refused query: 400 with a JSON body
        doc = json.loads(error.read())
    return doc


def traffic(base_url: str, path: str, count: int) -> None:
    for _ in range(count):
        # 503s count as much as 200s here: both are series the panels read.
        with suppress(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base_url}{path}", timeout=5).close()


def eventually(check: Callable[[], list[str]], seconds: float = 30) -> list[str]:
    deadline = time.monotonic() + seconds
    while (problems := check()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return problems


@contextmanager
def running_prometheus(root: Path, workdir: Path, targets: list[str]) -> Iterator[str]:
    """Prometheus on the repository's config, changed only in its target and intervals."""
    config = load(root, PROMETHEUS_CONFIG)
    # Seconds, not the compose intervals, so that rate() has two samples within a test.
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    (job,) = config["scrape_configs"]
    (static,) = job["static_configs"]
    static["targets"] = targets
    for rule_file in config["rule_files"]:
        shutil.copy(root / RULES / rule_file, workdir / rule_file)
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.fail("prometheus is not installed: run `make tools` (Debian's prometheus)")
    url = f"http://127.0.0.1:{free_port()}"
    with (workdir / "prometheus.log").open("ab") as log:
        process = subprocess.Popen(
            [
                exe,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={url.removeprefix('http://')}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (workdir / "prometheus.log").read_text()
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "Prometheus was not ready within 20 s"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve(database_url: str, workdir: Path) -> AbstractContextManager[tuple[str, Any]]:
    return running_cme(
        {"DATABASE_URL": database_url, "API_KEY": API_KEY}, workdir, workdir / "cme.log"
    )


@pytest.fixture(scope="module")
def live(
    root: Path, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(Prometheus URL, API URL): the compose pair, on loopback and PostgreSQL."""
    workdir = tmp_path_factory.mktemp("monitoring")
    inherited = {k: os.environ[k] for k in ("PATH", "PYTHONPATH") if k in os.environ}
    migrated = subprocess.run(
        [CME, "migrate"],
        env={**inherited, "DATABASE_URL": postgres_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr
    with serve(postgres_url, workdir) as (base_url, _process):
        target = base_url.removeprefix("http://")
        with running_prometheus(root, workdir, [target]) as prometheus:
            yield prometheus, base_url


@pytest.fixture(scope="module")
def service_series(live: tuple[str, str]) -> set[str]:
    """Every series name `cme serve` exports, once it has answered some requests and its first
    webhook sweep has counted the endpoints."""
    _, base_url = live
    traffic(base_url, "/products", 3)
    names: set[str] = set()

    def check() -> list[str]:
        nonlocal names
        with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as response:
            text = response.read().decode()
        names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
        return [] if names >= AFTER_A_SWEEP else [f"no {sorted(AFTER_A_SWEEP - names)} yet"]

    assert eventually(check) == []
    return names


def test_every_panel_query_names_only_series_cme_or_the_rule_files_define(
    dashboard: Doc, records: dict[str, str], service_series: set[str]
) -> None:
    defined = service_series | set(records) | PROMETHEUS_SERIES
    assert name_problems(expressions(dashboard), defined) == []


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # A recording rule dashboard.yml does not have.
        ("cme:http_requests:rate1m", "['cme:http_requests:rate1m'] defined nowhere"),
        # A counter without its _total.
        (
            'sum by (instance) (rate(process_cpu_seconds{namespace="cme"}[5m]))',
            "['process_cpu_seconds'] defined nowhere",
        ),
        # GKE's series: only the rules of dashboard.yml may read them.
        (
            'sum(kubernetes_io:container_restart_count{namespace_name="cme"})',
            "['kubernetes_io:container_restart_count'] defined nowhere",
        ),
        ("vector(1)", "selects no series"),
    ],
)
def test_the_name_check_fails_on_a_series_nothing_defines(
    records: dict[str, str], service_series: set[str], expr: str, expected: str
) -> None:
    defined = service_series | set(records) | PROMETHEUS_SERIES
    assert reported(name_problems([expr], defined), expected)


def self_hosted(expr: str, records: dict[str, str], service_series: set[str]) -> bool:
    """Whether the compose stack produces what the expression reads (GKE's series it lacks)."""
    names = set().union(*(metric_names(records.get(n, n)) for n in metric_names(expr)))
    return names <= service_series | PROMETHEUS_SERIES


def live_query_problems(
    prometheus: str, exprs: list[str], records: dict[str, str], service_series: set[str]
) -> list[str]:
    problems = []
    for expr in exprs:
        answer = api(prometheus, "/api/v1/query", query=expr)
        if answer["status"] != "success":
            problems.append(f"{expr}: {answer.get('error')}")
        elif self_hosted(expr, records, service_series) and not answer["data"]["result"]:
            problems.append(f"{expr}: no data from the series cme exports")
    return problems


def test_every_panel_query_runs_on_prometheus_and_has_data_where_compose_has_its_series(
    live: tuple[str, str], dashboard: Doc, records: dict[str, str], service_series: set[str]
) -> None:
    prometheus, base_url = live

    def check() -> list[str]:
        traffic(base_url, "/products", 5)
        return live_query_problems(prometheus, expressions(dashboard), records, service_series)

    assert eventually(check) == []


def test_only_the_cloud_sql_panels_and_the_webhook_lag_are_empty_without_their_series(
    dashboard: Doc, records: dict[str, str], service_series: set[str]
) -> None:
    empty = {
        title
        for title, panel in charts(dashboard).items()
        if not any(self_hosted(t["expr"], records, service_series) for t in panel["targets"])
    }
    assert empty == CLOUD_ONLY | NEEDS_A_WEBHOOK


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('sum(rate(http_requests_total{namespace="cme"}[5m])', "parse error"),
        ('sum by (instance) (process_resident_memory_bytes{namespace="cmee"})', "no data"),
        ('sum(up{namespace="cme",job="api"})', "no data"),  # a job compose does not scrape
        ('cme:http_requests:rate5m{path="/product"}', "no data"),  # a route cme does not have
    ],
)
def test_the_live_check_fails_on_a_query_prometheus_refuses_or_answers_empty(
    live: tuple[str, str],
    records: dict[str, str],
    service_series: set[str],
    expr: str,
    expected: str,
) -> None:
    prometheus, _ = live
    assert reported(live_query_problems(prometheus, [expr], records, service_series), expected)


def test_prometheus_evaluates_every_alert_and_recording_rule_of_the_rule_files(
    live: tuple[str, str], alerts: set[str], records: dict[str, str]
) -> None:
    prometheus, _ = live

    def check() -> list[str]:
        rules = [r for g in api(prometheus, "/api/v1/rules")["data"]["groups"] for r in g["rules"]]
        loaded = {
            k: {r["name"] for r in rules if r["type"] == k} for k in ("alerting", "recording")
        }
        problems = [f"{r['name']}: {r['health']}" for r in rules if r["health"] != "ok"]
        if loaded["alerting"] != alerts:
            problems.append(f"alerting rules {sorted(loaded['alerting'])}")
        if loaded["recording"] != set(records):
            problems.append(f"recording rules {sorted(loaded['recording'])}")
        return problems

    assert eventually(check) == []


def test_the_compose_healthcheck_of_prometheus_asks_a_page_prometheus_serves(
    live: tuple[str, str], compose: Doc
) -> None:
    prometheus, _ = live
    test = compose["services"]["prometheus"]["healthcheck"]["test"]
    url = urllib.parse.urlsplit(test[-1])
    assert url.netloc == "127.0.0.1:9090"
    with urllib.request.urlopen(f"{prometheus}{url.path}", timeout=5) as response:
        assert response.status == 200


def test_an_outage_fires_the_alert_the_alert_list_panel_shows(
    root: Path, tmp_path: Path, dashboard: Doc, datasource: Doc
) -> None:
    """The panel lists what Prometheus' /api/v1/rules reports for the data source it names."""
    (panel,) = [p for p in dashboard["panels"] if p["type"] == "alertlist"]
    assert panel["options"]["datasource"] == datasource["name"]
    unreachable = f"postgresql://cme:unused@127.0.0.1:{free_port()}/cme"
    with serve(unreachable, tmp_path) as (base_url, _process):
        target = base_url.removeprefix("http://")
        with running_prometheus(root, tmp_path, [target]) as prometheus:

            def check() -> list[str]:
                traffic(base_url, "/products", 20)  # 503: the database is unreachable
                groups = api(prometheus, "/api/v1/rules")["data"]["groups"]
                states = {r["name"]: r.get("state") for g in groups for r in g["rules"]}
                return [] if states["error_ratio_5xx"] == "firing" else [str(states)]

            assert eventually(check) == []
