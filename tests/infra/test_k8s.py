"""Offline checks of infra/k8s: rendering, schemas, checkov, and the decisions in the manifests."""

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

RunTool = Callable[..., subprocess.CompletedProcess[str]]
Doc = dict[str, Any]
OVERLAYS = ("dev", "prod")
SCHEMAS = Path("tests/infra/schemas")
SCHEMA = SCHEMAS / "podmonitoring.json"
PROXY_IMAGE = re.compile(r"gcr\.io/cloud-sql-connectors/cloud-sql-proxy:\d+\.\d+\.\d+")
# The kinds checkov has checks for; its report names them KIND.NAMESPACE.NAME.
CHECKED_KINDS = {"Deployment", "Job", "CronJob", "Service", "ServiceAccount", "ConfigMap"}
# The prod overlay's HTTPS entry point: custom resources of the Gateway API and of GKE, unknown to
# kubernetes-validate, each checked against the schema kept for it in tests/infra/schemas.
GATEWAY_KINDS = {
    "Gateway": "gateway.json",
    "HTTPRoute": "httproute.json",
    "HealthCheckPolicy": "healthcheckpolicy.json",
    "GCPBackendPolicy": "gcpbackendpolicy.json",
    "GCPGatewayPolicy": "gcpgatewaypolicy.json",
}
# Google's load-balancer ranges: health checks, and the GFE proxies of the global external
# Application Load Balancer (for zonal NEG backends the proxy ranges are the health-check ranges).
GOOGLE_LB_RANGES = ["35.191.0.0/16", "130.211.0.0/22"]
LONGEST_POLL_SECONDS = 30  # the change feed's largest `wait`


def render(run_tool: RunTool, overlay: Path) -> str:
    result = run_tool("kubectl", "kustomize", overlay)
    assert result.returncode == 0, result.stderr
    return result.stdout


def find(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    matches = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def pod(docs: list[Doc], kind: str) -> Doc:
    spec: Doc = find(docs, kind)["spec"]["template"]["spec"]
    return spec


def container(pod_spec: Doc, name: str) -> Doc:
    return next(c for c in pod_spec["containers"] + pod_spec["initContainers"] if c["name"] == name)


def env_of(c: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in c.get("env", [])}


def labels_of(docs: list[Doc], kind: str) -> dict[str, str]:
    labels: dict[str, str] = find(docs, kind)["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def break_security(k8s_copy: Path) -> None:
    """Make the app container privileged, root and writable: checkov must object."""
    path = k8s_copy / "base" / "deployment.yaml"
    deployment = yaml.safe_load(path.read_text())
    pod_spec = deployment["spec"]["template"]["spec"]
    pod_spec["securityContext"] = {"runAsUser": 0}
    pod_spec["containers"][0]["securityContext"] = {"privileged": True, "runAsUser": 0}
    path.write_text(yaml.safe_dump(deployment))


@pytest.fixture(scope="session")
def texts(run_tool: RunTool, root: Path) -> dict[str, str]:
    return {o: render(run_tool, root / "infra/k8s/overlays" / o) for o in OVERLAYS}


@pytest.fixture(scope="session")
def docs(texts: dict[str, str]) -> dict[str, list[Doc]]:
    return {o: [d for d in yaml.safe_load_all(t) if d] for o, t in texts.items()}


@pytest.fixture(scope="session")
def prod(docs: dict[str, list[Doc]]) -> list[Doc]:
    return docs["prod"]


@pytest.fixture(scope="session")
def checkov(
    run_tool: RunTool, root: Path, texts: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Doc:
    """One checkov run over both overlays, a privileged copy and an unparseable file."""
    tmp = tmp_path_factory.mktemp("k8s")
    shutil.copytree(root / "infra/k8s", tmp / "k8s")
    break_security(tmp / "k8s")
    scan = tmp / "scan"
    scan.mkdir()
    for overlay, text in texts.items():
        (scan / f"{overlay}.yaml").write_text(text)
    (scan / "broken.yaml").write_text(render(run_tool, tmp / "k8s/overlays/prod"))
    (scan / "garbage.yaml").write_text(texts["prod"].replace("kind: Job", "kind: [Job", 1))
    args = ("-d", scan, "--framework", "kubernetes", "--skip-download", "-o", "json")
    report: Doc = json.loads(run_tool("checkov", *args).stdout)
    return report


def checkov_results(checkov: Doc, kind: str, file: str) -> list[Doc]:
    return [r for r in checkov["results"][kind] if Path(r["file_path"]).name == file]


def scanned(checkov: Doc, file: str) -> set[str]:
    kinds = ("passed_checks", "failed_checks", "skipped_checks")
    return {r["resource"] for kind in kinds for r in checkov_results(checkov, kind, file)}


def checkable(docs: list[Doc]) -> set[str]:
    return {f"{d['kind']}.cme.{d['metadata']['name']}" for d in docs if d["kind"] in CHECKED_KINDS}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_every_object_in_namespace_cme(docs: dict[str, list[Doc]], overlay: str):
    others = {"Namespace", "NetworkPolicy", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    edge = set(GATEWAY_KINDS) if overlay == "prod" else set()
    assert {d["kind"] for d in docs[overlay]} == CHECKED_KINDS | others | {"PodMonitoring"} | edge
    namespaced = [d for d in docs[overlay] if d["kind"] != "Namespace"]
    assert {d["metadata"]["namespace"] for d in namespaced} == {"cme"}
    for doc in namespaced:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "cme", doc["kind"]
        assert doc["metadata"]["labels"]["environment"] == overlay, doc["kind"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_manifests_validate_strictly_against_kubernetes_1_32(
    run_tool: RunTool, texts: dict[str, str], tmp_path: Path, overlay: str
):
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(texts[overlay])
    result = run_tool("kubernetes-validate", "--strict", "-k", "1.32.0", manifest)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_validate_rejects_an_unknown_field(
    run_tool: RunTool, texts: dict[str, str], tmp_path: Path
):
    manifest = tmp_path / "typo.yaml"
    manifest.write_text(texts["prod"].replace("readinessProbe:", "readynessProbe:", 1))
    result = run_tool("kubernetes-validate", "--strict", "-k", "1.32.0", manifest)
    assert result.returncode != 0
    assert "readynessProbe" in result.stdout + result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_podmonitoring_matches_the_schema_kept_in_the_repository(
    run_tool: RunTool, docs: dict[str, list[Doc]], tmp_path: Path, overlay: str
):
    instance = tmp_path / "podmonitoring.json"
    instance.write_text(json.dumps(find(docs[overlay], "PodMonitoring")))
    result = run_tool("check-jsonschema", "--schemafile", SCHEMA, instance)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("change", [{"interval": "30 seconds"}, {"scrapeInterval": "30s"}])
def test_podmonitoring_schema_rejects_a_bad_interval_or_an_unknown_field(
    run_tool: RunTool, prod: list[Doc], tmp_path: Path, change: dict[str, str]
):
    monitoring = json.loads(json.dumps(find(prod, "PodMonitoring")))
    monitoring["spec"]["endpoints"][0].update(change)
    instance = tmp_path / "podmonitoring.json"
    instance.write_text(json.dumps(monitoring))
    assert run_tool("check-jsonschema", "--schemafile", SCHEMA, instance).returncode != 0


def schema_check(run_tool: RunTool, tmp_path: Path, doc: Doc) -> subprocess.CompletedProcess[str]:
    instance = tmp_path / f"{doc['kind']}-{doc['metadata']['name']}.json"
    instance.write_text(json.dumps(doc))
    return run_tool(
        "check-jsonschema", "--schemafile", SCHEMAS / GATEWAY_KINDS[doc["kind"]], instance
    )


def test_every_gateway_object_matches_the_schema_kept_for_its_kind(
    run_tool: RunTool, prod: list[Doc], tmp_path: Path
):
    edge = [d for d in prod if d["kind"] in GATEWAY_KINDS]
    assert {d["kind"] for d in edge} == set(GATEWAY_KINDS)
    for doc in edge:
        result = schema_check(run_tool, tmp_path, doc)
        assert result.returncode == 0, (doc["kind"], result.stdout + result.stderr)


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    """A mutation that sets the dotted path (list indexes as numbers) to value."""

    def mutate(doc: Doc) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = doc
        for part in parents:
            node = node[part]
        node[last] = value

    return mutate


def _rename(path: str, new_key: str) -> Callable[[Doc], None]:
    """A mutation that renames the last key of the dotted path: a typo of a field name."""

    def mutate(doc: Doc) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = doc
        for part in parents:
            node = node[part]
        node[new_key] = node.pop(last)

    return mutate


# Each must be refused by the kept schema; the API server refuses each too, by the upstream CRD's
# OpenAPI schema or (the if/then cases) by its CEL rules.
BROKEN_GATEWAY_OBJECTS = [
    ("Gateway", "cme-gateway", _rename("spec.listeners.0.protocol", "protocl")),
    ("Gateway", "cme-gateway", _set("spec.listeners.0.port", 0)),
    ("Gateway", "cme-gateway", _set("spec.addresses.0.type", "NamedAdress")),
    (
        "HTTPRoute",
        "cme-task",
        _rename("spec.rules.0.filters.0.responseHeaderModifier", "requestHeaderModifier"),
    ),
    ("HTTPRoute", "cme-task", _set("spec.rules.0.backendRefs.0", {"name": "cme-task-service"})),
    ("HTTPRoute", "cme-task", _set("spec.hostnames.0", "https://api.example.com")),
    (
        "HTTPRoute",
        "cme-task-http-redirect",
        _set("spec.rules.0.filters.0.requestRedirect.statusCode", 308),
    ),
    (
        "HTTPRoute",
        "cme-task-http-redirect",
        _set("spec.rules.0.backendRefs", [{"name": "cme-task-service", "port": 5000}]),
    ),
    (
        "HealthCheckPolicy",
        "cme-task",
        _set("spec.default.config.httpHealthCheck.requestPath", "db-check"),
    ),
    ("HealthCheckPolicy", "cme-task", _set("spec.default.config.httpHealthCheck.port", 5000)),
    ("HealthCheckPolicy", "cme-task", _set("spec.default.checkIntervalSec", 0)),
    ("GCPBackendPolicy", "cme-task", _rename("spec.default.securityPolicy", "securityPolicies")),
    (
        "GCPBackendPolicy",
        "cme-task",
        _set("spec.default.connectionDraining.drainingTimeoutSec", 7200),
    ),
    ("GCPGatewayPolicy", "cme-gateway", _rename("spec.targetRef.group", "apiGroup")),
]


@pytest.mark.parametrize(("kind", "name", "mutate"), BROKEN_GATEWAY_OBJECTS)
def test_the_gateway_schemas_reject_typos_bad_values_and_broken_rules(
    run_tool: RunTool,
    prod: list[Doc],
    tmp_path: Path,
    kind: str,
    name: str,
    mutate: Callable[[Doc], None],
):
    doc = json.loads(json.dumps(find(prod, kind, name)))
    mutate(doc)
    assert schema_check(run_tool, tmp_path, doc).returncode != 0


def test_checkov_passes_both_overlays_having_scanned_every_object(
    checkov: Doc, docs: dict[str, list[Doc]]
):
    assert checkov["summary"]["parsing_errors"] == 0
    for overlay in OVERLAYS:
        assert checkov_results(checkov, "failed_checks", f"{overlay}.yaml") == []
        assert checkable(docs[overlay]) <= scanned(checkov, f"{overlay}.yaml")


def test_checkov_skips_unparseable_yaml_silently_which_the_coverage_check_catches(
    checkov: Doc, prod: list[Doc]
):
    # No parsing error and no failed check: only comparing scanned resources exposes the gap.
    assert checkov["summary"]["parsing_errors"] == 0
    assert not checkable(prod) <= scanned(checkov, "garbage.yaml")


def test_checkov_fails_a_privileged_root_writable_copy(checkov: Doc):
    failed = {r["check_id"] for r in checkov_results(checkov, "failed_checks", "broken.yaml")}
    assert {"CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_23"} <= failed


def test_every_checkov_skip_is_justified_and_used(prod: list[Doc], checkov: Doc):
    annotated = set()
    for doc in prod:
        for key, value in doc["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                check, reason = value.split("=", 1)
                assert len(reason) > 40, f"{check} needs a reason"
                annotated.add((f"{doc['kind']}.cme.{doc['metadata']['name']}", check))
    skipped = checkov_results(checkov, "skipped_checks", "prod.yaml")
    assert annotated == {(r["resource"], r["check_id"]) for r in skipped}


def test_probes_use_health_and_db_check_on_the_http_port_5000(prod: list[Doc]):
    app = container(pod(prod, "Deployment"), "app")
    assert app["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert app["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert app["readinessProbe"]["httpGet"] == {"path": "/db-check", "port": "http"}
    assert app["ports"] == [{"name": "http", "containerPort": 5000, "protocol": "TCP"}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_service_is_in_cluster_only_on_port_5000_and_selects_only_the_deployments_pods(
    docs: dict[str, list[Doc]], overlay: str
):
    services = [d["spec"] for d in docs[overlay] if d["kind"] == "Service"]
    assert [s["type"] for s in services] == ["ClusterIP"], "nothing but the Gateway is public"
    service = find(docs[overlay], "Service", "cme-task-service")["spec"]
    (port,) = service["ports"]
    assert (port["port"], port["targetPort"], port["protocol"]) == (5000, "http", "TCP")
    assert selects(service["selector"], labels_of(docs[overlay], "Deployment"))
    assert not selects(service["selector"], labels_of(docs[overlay], "Job"))


def test_the_gateway_serves_https_with_the_certificate_map_on_the_reserved_address(
    prod: list[Doc],
):
    gateway = find(prod, "Gateway", "cme-gateway")
    spec = gateway["spec"]
    assert spec["gatewayClassName"] == "gke-l7-global-external-managed"
    assert gateway["metadata"]["annotations"]["networking.gke.io/certmap"] == "cme-cert-map"
    assert spec["addresses"] == [{"type": "NamedAddress", "value": "cme-gateway-ip"}]
    listeners = {(ln["name"], ln["protocol"], ln["port"]) for ln in spec["listeners"]}
    assert listeners == {("https", "HTTPS", 443), ("http", "HTTP", 80)}
    # GKE refuses a certificate map together with certificate references.
    assert all("tls" not in ln for ln in spec["listeners"])
    assert all(ln["allowedRoutes"]["namespaces"]["from"] == "Same" for ln in spec["listeners"])
    ssl = find(prod, "GCPGatewayPolicy", "cme-gateway")["spec"]
    assert ssl["targetRef"] == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": "cme-gateway",
    }
    assert ssl["default"]["sslPolicy"] == "cme-tls12-modern"


def routes_by_listener(prod: list[Doc]) -> dict[str, Doc]:
    routes = [d for d in prod if d["kind"] == "HTTPRoute"]
    by_listener = {}
    for route in routes:
        (parent,) = route["spec"]["parentRefs"]
        assert parent["name"] == "cme-gateway"
        by_listener[parent["sectionName"]] = route["spec"]
    assert len(by_listener) == len(routes) == 2
    return by_listener


def test_https_reaches_the_service_with_hsts_and_http_only_redirects(prod: list[Doc]):
    routes = routes_by_listener(prod)
    service = find(prod, "Service", "cme-task-service")["spec"]
    (https_rule,) = routes["https"]["rules"]
    (backend,) = https_rule["backendRefs"]
    assert (backend["name"], backend["port"]) == ("cme-task-service", service["ports"][0]["port"])
    assert https_rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    (headers,) = https_rule["filters"]
    assert headers["type"] == "ResponseHeaderModifier"
    (hsts,) = headers["responseHeaderModifier"]["set"]
    assert hsts["name"] == "Strict-Transport-Security"
    max_age = re.fullmatch(r"max-age=(\d+)(; includeSubDomains)?(; preload)?", hsts["value"])
    assert max_age is not None, hsts["value"]
    assert int(max_age.group(1)) >= 31536000, "a year at least"
    (redirect_rule,) = routes["http"]["rules"]
    assert "backendRefs" not in redirect_rule, "plain HTTP reaches no pod"
    (redirect,) = redirect_rule["filters"]
    assert redirect == {
        "type": "RequestRedirect",
        "requestRedirect": {"scheme": "https", "statusCode": 301},
    }
    # Both routes answer for the one domain of the certificate (deploy.env's DOMAIN).
    assert routes["https"]["hostnames"] == routes["http"]["hostnames"] == ["api.example.com"]


def test_the_load_balancer_checks_db_check_as_readiness_does_and_sends_to_pods_directly(
    prod: list[Doc],
):
    target = {"group": "", "kind": "Service", "name": "cme-task-service"}
    check = find(prod, "HealthCheckPolicy", "cme-task")["spec"]
    assert check["targetRef"] == target
    http = check["default"]["config"]
    assert http["type"] == "HTTP"
    readiness = container(pod(prod, "Deployment"), "app")["readinessProbe"]["httpGet"]
    assert http["httpHealthCheck"] == {
        "portSpecification": "USE_SERVING_PORT",
        "requestPath": readiness["path"],
    }
    assert readiness["path"] == "/db-check"
    assert check["default"]["timeoutSec"] <= check["default"]["checkIntervalSec"]
    backend = find(prod, "GCPBackendPolicy", "cme-task")["spec"]
    assert backend["targetRef"] == target
    assert backend["default"]["securityPolicy"] == "cme-edge"
    assert backend["default"]["timeoutSec"] > LONGEST_POLL_SECONDS, (
        "a long poll must not be cut off"
    )
    app = container(pod(prod, "Deployment"), "app")
    drain = app["lifecycle"]["preStop"]["sleep"]["seconds"] + int(
        env_of(app)["SHUTDOWN_GRACE_SECONDS"]
    )
    assert backend["default"]["connectionDraining"]["drainingTimeoutSec"] >= drain
    # Container-native load balancing: the load balancer addresses pod IPs, so the Service needs
    # no node port (GKE attaches NEGs to Services that a Gateway routes to).
    assert "nodePort" not in json.dumps(find(prod, "Service", "cme-task-service"))


def test_uvicorn_trusts_x_forwarded_for_only_from_google_front_ends_and_the_gateway(
    docs: dict[str, list[Doc]],
):
    app = env_of(container(pod(docs["prod"], "Deployment"), "app"))
    trusted = app["FORWARDED_ALLOW_IPS"].split(",")
    assert trusted == [*GOOGLE_LB_RANGES, "203.0.113.10"], (
        "the ranges, then deploy.env's GATEWAY_IP"
    )
    assert "FORWARDED_ALLOW_IPS" not in env_of(container(pod(docs["dev"], "Deployment"), "app"))


def test_behind_googles_load_balancer_the_server_outlasts_its_600_s_idle_connections(
    docs: dict[str, list[Doc]],
):
    app = env_of(container(pod(docs["prod"], "Deployment"), "app"))
    assert int(app["KEEP_ALIVE_SECONDS"]) > 600


def test_pods_run_as_the_dockerfiles_uid_with_a_read_only_root(prod: list[Doc], root: Path):
    dockerfile = (root / "Dockerfile").read_text()
    uids = re.findall(r"useradd\b[^\n]*--uid[ =](\d+)|^USER (\d+)", dockerfile, re.M)
    assert uids, "the Dockerfile declares no numeric UID (useradd --uid N or USER N)"
    assert {int(u) for pair in uids for u in pair if u} == {10001}
    assert re.search(r"groupadd\b[^\n]*--gid[ =]10001|^USER \d+:10001$", dockerfile, re.M)
    for kind in ("Deployment", "Job"):
        spec = pod(prod, kind)
        ids = ("runAsUser", "runAsGroup", "fsGroup")
        assert [spec["securityContext"][k] for k in ids] == [10001, 10001, 10001]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["containers"][0]["securityContext"]["runAsUser"] == 10001
        for c in spec["containers"] + spec["initContainers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        (mount,) = (m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == "/tmp")
        assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == mount["name"])


def test_podmonitoring_scrapes_metrics_from_the_deployments_pods(prod: list[Doc]):
    spec = find(prod, "PodMonitoring")["spec"]
    assert selects(spec["selector"]["matchLabels"], labels_of(prod, "Deployment"))
    (endpoint,) = spec["endpoints"]
    assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "30s")
    assert int(endpoint["timeout"][:-1]) <= int(endpoint["interval"][:-1])
    ports = container(pod(prod, "Deployment"), "app")["ports"]
    assert endpoint["port"] in {p["name"] for p in ports}


def test_hpa_scales_the_deployment_between_2_and_4_on_the_apps_cpu(docs: dict[str, list[Doc]]):
    hpa = find(docs["prod"], "HorizontalPodAutoscaler")["spec"]
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cme-task"}
    assert hpa["scaleTargetRef"] == target
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 4)
    (metric,) = hpa["metrics"]
    resource = metric["containerResource"]
    assert (resource["name"], resource["container"]) == ("cpu", "app")
    assert resource["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60
    assert "replicas" not in find(docs["prod"], "Deployment")["spec"], "the HPA owns replicas"
    assert find(docs["dev"], "HorizontalPodAutoscaler")["spec"]["minReplicas"] == 1
    assert find(docs["prod"], "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_grace_period_covers_prestop_and_the_apps_shutdown_grace(prod: list[Doc]):
    app = container(pod(prod, "Deployment"), "app")
    pre_stop = app["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = int(env_of(app)["SHUTDOWN_GRACE_SECONDS"])
    assert pod(prod, "Deployment")["terminationGracePeriodSeconds"] >= grace + pre_stop


def test_secret_example_stays_out_of_the_build_and_covers_what_pods_read(
    prod: list[Doc], root: Path
):
    base = root / "infra/k8s/base"
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    assert "secret.yaml" not in kustomization["resources"]
    assert "Secret" not in {d["kind"] for d in prod}
    examples = list(yaml.safe_load_all((base / "secret.yaml").read_text()))
    keys = {s["metadata"]["name"]: set(s["stringData"]) for s in examples}
    assert keys["cme-db"] == {"DB_USER", "DB_PASS", "DB_NAME", "DB_HOST", "DB_PORT"}
    assert keys["api-key"] == {"API_KEY"}
    assert keys["cme-redis"] == {"REDIS_URL", "redis-ca.pem"}
    for kind in ("Deployment", "Job"):
        spec = pod(prod, kind)
        for c in spec["containers"]:
            assert {s["secretRef"]["name"] for s in c.get("envFrom", [])} <= keys.keys()
            refs = [
                e["valueFrom"]["secretKeyRef"]
                for e in c["env"]
                if "secretKeyRef" in e.get("valueFrom", {})
            ]
            assert all(ref["key"] in keys[ref["name"]] for ref in refs)
        for volume in spec["volumes"]:
            if "secret" in volume:
                items = {i["key"] for i in volume["secret"]["items"]}
                assert items <= keys[volume["secret"]["secretName"]]


def test_the_pods_share_rate_limits_through_memorystore_when_the_secret_exists(
    prod: list[Doc], root: Path
):
    spec = pod(prod, "Deployment")
    app = container(spec, "app")
    (redis_url,) = [e for e in app["env"] if e["name"] == "REDIS_URL"]
    ref = redis_url["valueFrom"]["secretKeyRef"]
    # Optional: without Memorystore (enable_redis off) the pods start, and each worker limits alone.
    assert ref == {"name": "cme-redis", "key": "REDIS_URL", "optional": True}
    (volume,) = [v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "cme-redis"]
    assert volume["secret"]["optional"] is True
    assert volume["secret"]["defaultMode"] == 0o440
    (item,) = volume["secret"]["items"]
    (mount,) = [m for m in app["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    mounted_at = f"{mount['mountPath']}/{item['path']}"
    # The URL Terraform writes names the same file: ssl_ca_certs=<redis_ca_path>.
    with (root / "infra/terraform/variables.tf").open() as tf:
        blocks = hcl2.load(tf)["variable"]
    default = {k.strip('"'): v.get("default") for b in blocks for k, v in b.items()}
    assert default["redis_ca_path"].strip('"') == mounted_at
    with (root / "infra/terraform/redis.tf").open() as tf:
        resources = hcl2.load(tf)["resource"]
    blocks = {k.strip('"'): v for r in resources for k, v in r.items()}
    url = blocks["google_secret_manager_secret_version"]['"redis_url"']["secret_data"]
    assert "ssl_cert_reqs=required&ssl_ca_certs=%s" in url
    assert "var.redis_ca_path" in url
    # The Jobs talk to PostgreSQL only.
    for kind_spec in (pod(prod, "Job"), cronjob_pod(prod)):
        assert "REDIS_URL" not in json.dumps(kind_spec)


def test_database_is_reached_through_a_native_cloud_sql_proxy_sidecar(prod: list[Doc]):
    params = find(prod, "ConfigMap")
    for kind in ("Deployment", "Job"):
        proxy = container(pod(prod, kind), "cloud-sql-proxy")
        assert proxy["restartPolicy"] == "Always", "a native sidecar"
        assert PROXY_IMAGE.fullmatch(proxy["image"])
        flags = {"--private-ip", "--structured-logs", "--port=5432", "--health-check"}
        assert flags <= set(proxy["args"])
        assert proxy["startupProbe"]["httpGet"]["path"] == "/startup"
        ref = proxy["env"][0]["valueFrom"]["configMapKeyRef"]
        assert ref["name"] == params["metadata"]["name"]
        assert ref["key"] in params["data"]
        app_env = env_of(pod(prod, kind)["containers"][0])
        assert (app_env["DB_HOST"], app_env["DB_PORT"]) == ("127.0.0.1", "5432")
    app_env = env_of(container(pod(prod, "Deployment"), "app"))
    settings = {k: app_env[k] for k in ("DB_POOL_SIZE", "LOG_FORMAT", "WEB_CONCURRENCY")}
    assert settings == {"DB_POOL_SIZE": "2", "LOG_FORMAT": "json", "WEB_CONCURRENCY": "1"}


def test_migration_job_runs_cme_migrate_with_the_apps_image(prod: list[Doc]):
    job = find(prod, "Job", "cme-migrate")["spec"]
    migrate = container(pod(prod, "Job"), "migrate")
    app = container(pod(prod, "Deployment"), "app")
    assert migrate["command"] == ["cme", "migrate"]
    assert migrate["image"] == app["image"]
    assert app["image"].startswith("REGION-docker.pkg.dev/PROJECT/cme/cme-api:")
    assert pod(prod, "Job")["restartPolicy"] == "Never"
    limits = ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished")
    assert all(job[limit] > 0 for limit in limits)


def cronjob_pod(docs: list[Doc]) -> Doc:
    spec: Doc = find(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def test_a_daily_cronjob_prunes_the_change_feed_with_the_apps_image_and_proxy(prod: list[Doc]):
    cronjob = find(prod, "CronJob", "cme-prune-changes")["spec"]
    pod_spec = cronjob_pod(prod)
    prune = container(pod_spec, "prune-changes")
    app = container(pod(prod, "Deployment"), "app")
    assert prune["command"] == ["cme", "prune-changes"]
    assert prune["image"] == app["image"]
    assert env_of(prune)["CHANGES_RETENTION_DAYS"] == "7"
    assert (env_of(prune)["DB_HOST"], env_of(prune)["DB_PORT"]) == ("127.0.0.1", "5432")
    assert {s["secretRef"]["name"] for s in prune["envFrom"]} == {"cme-db"}
    minute, hour, *every = cronjob["schedule"].split()
    assert every == ["*", "*", "*"]
    assert minute.isdigit()
    assert hour.isdigit()
    assert cronjob["concurrencyPolicy"] == "Forbid"
    assert pod_spec["restartPolicy"] == "Never"
    proxy = container(pod_spec, "cloud-sql-proxy")
    assert proxy == container(pod(prod, "Job"), "cloud-sql-proxy")
    assert pod_spec["securityContext"] == pod(prod, "Job")["securityContext"]
    assert prune["securityContext"] == container(pod(prod, "Job"), "migrate")["securityContext"]
    policy = find(prod, "NetworkPolicy", "cme-task")["spec"]
    labels = find(prod, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["metadata"]
    assert selects(policy["podSelector"]["matchLabels"], labels["labels"])
    service = find(prod, "Service")["spec"]["selector"]
    assert not selects(service, labels["labels"])


def test_network_policy_admits_the_load_balancer_and_collectors_on_5000_only(prod: list[Doc]):
    deny = find(prod, "NetworkPolicy", "default-deny")["spec"]
    assert (deny["podSelector"], deny["policyTypes"]) == ({}, ["Ingress", "Egress"])
    policy = find(prod, "NetworkPolicy", "cme-task")["spec"]
    for kind in ("Deployment", "Job"):
        assert selects(policy["podSelector"]["matchLabels"], labels_of(prod, kind))
    ingress = [port for rule in policy["ingress"] for port in rule["ports"]]
    assert ingress == [{"protocol": "TCP", "port": 5000}] * len(policy["ingress"])
    assert all(rule.get("from") for rule in policy["ingress"]), "no rule open to every source"
    sources = [peer for rule in policy["ingress"] for peer in rule["from"]]
    blocks = [peer["ipBlock"]["cidr"] for peer in sources if "ipBlock" in peer]
    assert blocks == GOOGLE_LB_RANGES
    (collectors,) = [peer["namespaceSelector"] for peer in sources if "namespaceSelector" in peer]
    (expression,) = collectors["matchExpressions"]
    assert expression["key"] == "kubernetes.io/metadata.name"
    assert set(expression["values"]) == {"gmp-system", "gke-gmp-system"}
    egress = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert egress == {53, 80, 988, 3307, 6378, 443}
    # Cloud SQL (3307) and Memorystore (6378) are reached on private addresses only.
    for rule in policy["egress"]:
        if {p["port"] for p in rule["ports"]} & {3307, 6378}:
            cidrs = {peer["ipBlock"]["cidr"] for peer in rule["to"]}
            assert cidrs == {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}


def test_deploy_env_sets_the_sql_instance_and_the_apps_google_account(
    run_tool: RunTool, root: Path, tmp_path: Path
):
    shutil.copytree(root / "infra/k8s", tmp_path / "k8s")
    overlay = tmp_path / "k8s/overlays/prod"
    email = "app@p.iam.gserviceaccount.com"
    params = (
        f"INSTANCE_CONNECTION_NAME=p:r:i\nGCP_SERVICE_ACCOUNT={email}\n"
        "DOMAIN=catalogue.example.org\nGATEWAY_IP=198.51.100.7\n"
    )
    (overlay / "deploy.env").write_text(params)
    rendered = list(yaml.safe_load_all(render(run_tool, overlay)))
    annotations = find(rendered, "ServiceAccount", "backend-sa")["metadata"]["annotations"]
    assert annotations["iam.gke.io/gcp-service-account"] == email
    assert find(rendered, "ConfigMap")["data"]["INSTANCE_CONNECTION_NAME"] == "p:r:i"
    routes = routes_by_listener(rendered)
    assert routes["https"]["hostnames"] == routes["http"]["hostnames"] == ["catalogue.example.org"]
    app = env_of(container(pod(rendered, "Deployment"), "app"))
    assert app["FORWARDED_ALLOW_IPS"] == ",".join([*GOOGLE_LB_RANGES, "198.51.100.7"])
    assert app["GOOGLE_CLOUD_PROJECT"] == "p"


def test_pool_replicas_surge_and_names_match_the_terraform_variables(prod: list[Doc], root: Path):
    with (root / "infra/terraform/variables.tf").open() as tf:
        blocks = hcl2.load(tf)["variable"]
    default = {k.strip('"'): v.get("default") for b in blocks for k, v in b.items()}
    deployment = find(prod, "Deployment")["spec"]
    app_pool = int(env_of(container(pod(prod, "Deployment"), "app"))["DB_POOL_SIZE"])
    job_pool = int(env_of(container(pod(prod, "Job"), "migrate"))["DB_POOL_SIZE"])
    prune_pool = int(env_of(container(cronjob_pod(prod), "prune-changes"))["DB_POOL_SIZE"])
    assert app_pool == default["app_db_pool_size"]
    hpa = find(prod, "HorizontalPodAutoscaler")["spec"]
    assert hpa["maxReplicas"] == default["app_max_replicas"]
    assert deployment["strategy"]["rollingUpdate"]["maxSurge"] == default["app_max_surge"]
    assert job_pool <= default["migration_job_connections"]
    assert prune_pool <= default["prune_job_connections"]
    assert default["k8s_namespace"].strip('"') == "cme"
    assert default["k8s_service_account"].strip('"') == "backend-sa"
    assert default["k8s_app_container"].strip('"') == "app"


def test_the_gateway_names_the_google_cloud_objects_terraform_makes(prod: list[Doc], root: Path):
    with (root / "infra/terraform/variables.tf").open() as tf:
        blocks = hcl2.load(tf)["variable"]
    default = {k.strip('"'): str(v.get("default")).strip('"') for b in blocks for k, v in b.items()}
    gateway = find(prod, "Gateway", "cme-gateway")
    named = {
        "certificate_map_name": gateway["metadata"]["annotations"]["networking.gke.io/certmap"],
        "gateway_address_name": gateway["spec"]["addresses"][0]["value"],
        "security_policy_name": find(prod, "GCPBackendPolicy")["spec"]["default"]["securityPolicy"],
        "ssl_policy_name": find(prod, "GCPGatewayPolicy")["spec"]["default"]["sslPolicy"],
    }
    assert named == {name: default[name] for name in named}


def test_the_app_sends_traces_to_cloud_trace_in_its_own_project(prod: list[Doc]) -> None:
    deployment = find(prod, "Deployment")
    (app,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "app"]
    env = {item["name"]: item.get("value") for item in app["env"]}
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://telemetry.googleapis.com"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert 0 < float(env["OTEL_TRACES_SAMPLER_ARG"]) <= 0.1
    # The overlay's replacement: the project part of PROJECT:REGION:INSTANCE.
    assert env["GOOGLE_CLOUD_PROJECT"] == "PROJECT"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "gcp.project_id=$(GOOGLE_CLOUD_PROJECT)"
