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
OVERLAYS = ("dev", "prod")
SCHEMA = Path("tests/infra/schemas/podmonitoring.json")
Doc = dict[str, Any]


def render(run_tool: RunTool, overlay: Path) -> str:
    result = run_tool("kubectl", "kustomize", overlay)
    assert result.returncode == 0, result.stderr
    return result.stdout


def find(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    matches = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def container(pod_spec: Doc, name: str) -> Doc:
    every = pod_spec["containers"] + pod_spec.get("initContainers", [])
    return next(c for c in every if c["name"] == name)


def env_of(c: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in c.get("env", [])}


def break_security(k8s_copy: Path) -> None:
    """Make the app container privileged, root and writable: every scanner must object."""
    path = k8s_copy / "base" / "deployment.yaml"
    deployment = yaml.safe_load(path.read_text())
    pod = deployment["spec"]["template"]["spec"]
    pod["securityContext"] = {"runAsUser": 0}
    pod["containers"][0]["securityContext"] = {"privileged": True, "runAsUser": 0}
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
def scan_dir(
    run_tool: RunTool, root: Path, texts: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The two overlays, a privileged copy and an unparseable file, for a single checkov run."""
    tmp = tmp_path_factory.mktemp("k8s")
    shutil.copytree(root / "infra/k8s", tmp / "k8s")
    break_security(tmp / "k8s")
    scan = tmp / "scan"
    scan.mkdir()
    for overlay, text in texts.items():
        (scan / f"{overlay}.yaml").write_text(text)
    (scan / "broken.yaml").write_text(render(run_tool, tmp / "k8s/overlays/prod"))
    (scan / "garbage.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: [\n")
    return scan


@pytest.fixture(scope="session")
def checkov(run_tool: RunTool, scan_dir: Path) -> Doc:
    result = run_tool(
        "checkov", "-d", scan_dir, "--framework", "kubernetes", "--skip-download", "-o", "json"
    )
    report: Doc = json.loads(result.stdout)
    return report


def checkov_results(checkov: Doc, kind: str, file: str) -> list[Doc]:
    return [r for r in checkov["results"][kind] if Path(r["file_path"]).name == file]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_every_object_in_namespace_cme(docs: dict[str, list[Doc]], overlay: str):
    kinds = {d["kind"] for d in docs[overlay]}
    assert kinds == {
        "Namespace", "ServiceAccount", "ConfigMap", "NetworkPolicy", "Deployment", "Service",
        "HorizontalPodAutoscaler", "PodDisruptionBudget", "PodMonitoring", "Job",
    }  # fmt: skip
    namespaced = [d for d in docs[overlay] if d["kind"] != "Namespace"]
    assert {d["metadata"]["namespace"] for d in namespaced} == {"cme"}


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


def test_podmonitoring_schema_rejects_a_bad_interval_and_an_unknown_field(
    run_tool: RunTool, prod: list[Doc], tmp_path: Path
):
    monitoring = find(prod, "PodMonitoring")
    endpoint = monitoring["spec"]["endpoints"][0]
    instance = tmp_path / "podmonitoring.json"
    for change in ({"interval": "30 seconds"}, {"scrapeInterval": "30s"}):
        instance.write_text(json.dumps({**monitoring, "spec": {"endpoints": [{**endpoint, **change}],
                                        "selector": monitoring["spec"]["selector"]}}))  # fmt: skip
        result = run_tool("check-jsonschema", "--schemafile", SCHEMA, instance)
        assert result.returncode != 0, change


def test_checkov_passes_both_overlays_and_parses_them(checkov: Doc):
    for overlay in OVERLAYS:
        assert checkov_results(checkov, "failed_checks", f"{overlay}.yaml") == []
        assert checkov_results(checkov, "passed_checks", f"{overlay}.yaml")
    assert [Path(p).name for p in checkov["results"]["parsing_errors"]] == ["garbage.yaml"]
    assert checkov["summary"]["parsing_errors"] == 1


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
    skipped = {(r["resource"], r["check_id"]) for r in checkov_results(checkov, "skipped_checks", "prod.yaml")}  # fmt: skip
    assert annotated == skipped


def test_probes_use_health_and_db_check_on_the_http_port(prod: list[Doc]):
    app = container(find(prod, "Deployment", "cme-task")["spec"]["template"]["spec"], "app")
    assert app["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert app["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert app["readinessProbe"]["httpGet"] == {"path": "/db-check", "port": "http"}
    assert app["ports"] == [{"name": "http", "containerPort": 5000, "protocol": "TCP"}]


def test_service_exposes_port_5000_and_selects_the_deployments_pods(prod: list[Doc]):
    service = find(prod, "Service", "cme-task-service")
    pod_labels = find(prod, "Deployment", "cme-task")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"][0]["port"] == 5000
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    job_labels = find(prod, "Job")["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= job_labels.items()


def test_pods_run_as_the_dockerfiles_uid_with_a_read_only_root(prod: list[Doc], root: Path):
    dockerfile = (root / "Dockerfile").read_text()
    uids = re.findall(r"useradd\b[^\n]*--uid[ =](\d+)|^USER (\d+)", dockerfile, re.M)
    assert uids, "Dockerfile declares no numeric UID (useradd --uid N or USER N)"
    assert {int(u) for pair in uids for u in pair if u} == {10001}
    for workload in (find(prod, "Deployment"), find(prod, "Job")):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"] + pod["initContainers"]:
            ctx = c["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"] == {"drop": ["ALL"]}
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])
        assert pod["containers"][0]["securityContext"]["runAsUser"] == 10001


def test_podmonitoring_scrapes_metrics_from_the_deployments_pods(prod: list[Doc]):
    spec = find(prod, "PodMonitoring")["spec"]
    template = find(prod, "Deployment", "cme-task")["spec"]["template"]
    assert spec["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    (endpoint,) = spec["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "30s"
    assert endpoint["port"] in {p["name"] for p in container(template["spec"], "app")["ports"]}


def test_hpa_scales_the_deployment_between_2_and_5_on_cpu(docs: dict[str, list[Doc]]):
    hpa = find(docs["prod"], "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cme-task"}  # fmt: skip
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    (metric,) = hpa["metrics"]
    assert metric["containerResource"]["name"] == "cpu"
    assert metric["containerResource"]["container"] == "app"
    assert metric["containerResource"]["target"]["averageUtilization"] == 70
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60
    assert "replicas" not in find(docs["prod"], "Deployment")["spec"], "the HPA owns replicas"
    assert find(docs["dev"], "HorizontalPodAutoscaler")["spec"]["minReplicas"] == 1
    assert find(docs["prod"], "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_grace_period_covers_prestop_and_the_apps_shutdown_grace(prod: list[Doc]):
    pod = find(prod, "Deployment")["spec"]["template"]["spec"]
    app = container(pod, "app")
    pre_stop = app["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = int(env_of(app)["SHUTDOWN_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] >= grace + pre_stop


def test_secret_example_stays_out_of_the_build_and_covers_what_pods_read(
    prod: list[Doc], root: Path
):
    base = root / "infra/k8s/base"
    assert "secret.yaml" not in yaml.safe_load((base / "kustomization.yaml").read_text())["resources"]  # fmt: skip
    assert not [d for d in prod if d["kind"] == "Secret"]
    example = {s["metadata"]["name"]: set(s["stringData"]) for s in yaml.safe_load_all((base / "secret.yaml").read_text())}  # fmt: skip
    assert example["cme-db"] == {"DB_USER", "DB_PASS", "DB_NAME", "DB_HOST", "DB_PORT"}
    assert example["api-key"] == {"API_KEY"}
    for workload in (find(prod, "Deployment"), find(prod, "Job")):
        for c in workload["spec"]["template"]["spec"]["containers"]:
            for source in c.get("envFrom", []):
                assert source["secretRef"]["name"] in example
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                assert ref is None or ref["key"] in example[ref["name"]]


def test_database_is_reached_through_a_native_cloud_sql_proxy_sidecar(prod: list[Doc]):
    params = find(prod, "ConfigMap")
    for workload in (find(prod, "Deployment"), find(prod, "Job")):
        pod = workload["spec"]["template"]["spec"]
        proxy = container(pod, "cloud-sql-proxy")
        assert proxy["restartPolicy"] == "Always"
        assert re.fullmatch(r"gcr\.io/cloud-sql-connectors/cloud-sql-proxy:\d+\.\d+\.\d+", proxy["image"])  # fmt: skip
        assert {"--private-ip", "--structured-logs", "--port=5432", "--health-check"} <= set(proxy["args"])  # fmt: skip
        assert proxy["startupProbe"]["httpGet"]["path"] == "/startup"
        ref = proxy["env"][0]["valueFrom"]["configMapKeyRef"]
        assert ref["name"] == params["metadata"]["name"]
        assert ref["key"] in params["data"]
        app_env = env_of(pod["containers"][0])
        assert (app_env["DB_HOST"], app_env["DB_PORT"]) == ("127.0.0.1", "5432")
    app = container(find(prod, "Deployment")["spec"]["template"]["spec"], "app")
    assert {k: env_of(app)[k] for k in ("DB_POOL_SIZE", "LOG_FORMAT", "WEB_CONCURRENCY")} == {
        "DB_POOL_SIZE": "3", "LOG_FORMAT": "json", "WEB_CONCURRENCY": "1"}  # fmt: skip


def test_migration_job_runs_cme_migrate_with_the_apps_image(prod: list[Doc]):
    job = find(prod, "Job", "cme-migrate")["spec"]
    migrate = container(job["template"]["spec"], "migrate")
    app = container(find(prod, "Deployment")["spec"]["template"]["spec"], "app")
    assert migrate["command"] == ["cme", "migrate"]
    assert migrate["image"] == app["image"]
    assert app["image"].startswith("REGION-docker.pkg.dev/PROJECT/cme/cme-api:")
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    assert min(job["backoffLimit"], job["activeDeadlineSeconds"], job["ttlSecondsAfterFinished"]) > 0  # fmt: skip


def test_network_policy_admits_only_port_5000_and_the_proxys_egress(prod: list[Doc]):
    deny = find(prod, "NetworkPolicy", "default-deny")["spec"]
    assert (deny["podSelector"], deny["policyTypes"]) == ({}, ["Ingress", "Egress"])
    policy = find(prod, "NetworkPolicy", "cme-task")["spec"]
    for workload in (find(prod, "Deployment"), find(prod, "Job")):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert [p for rule in policy["ingress"] for p in rule["ports"]] == [{"protocol": "TCP", "port": 5000}]  # fmt: skip
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 80, 988, 3307, 443}


def test_deploy_env_sets_the_sql_instance_and_the_apps_google_account(
    run_tool: RunTool, root: Path, tmp_path: Path
):
    shutil.copytree(root / "infra/k8s", tmp_path / "k8s")
    overlay = tmp_path / "k8s/overlays/prod"
    (overlay / "deploy.env").write_text(
        "INSTANCE_CONNECTION_NAME=p:r:i\nGCP_SERVICE_ACCOUNT=app@p.iam.gserviceaccount.com\n"
    )
    docs = list(yaml.safe_load_all(render(run_tool, overlay)))
    annotations = find(docs, "ServiceAccount", "backend-sa")["metadata"]["annotations"]
    assert annotations["iam.gke.io/gcp-service-account"] == "app@p.iam.gserviceaccount.com"
    assert find(docs, "ConfigMap")["data"]["INSTANCE_CONNECTION_NAME"] == "p:r:i"


def test_pool_replicas_and_surge_match_the_terraform_connection_budget(
    prod: list[Doc], root: Path
):
    with (root / "infra/terraform/variables.tf").open() as tf:
        variables = {k.strip('"'): v for b in hcl2.load(tf)["variable"] for k, v in b.items()}
    default = {name: v.get("default") for name, v in variables.items()}
    deployment = find(prod, "Deployment")["spec"]
    job_env = env_of(container(find(prod, "Job")["spec"]["template"]["spec"], "migrate"))
    assert int(env_of(container(deployment["template"]["spec"], "app"))["DB_POOL_SIZE"]) == default["app_db_pool_size"]  # fmt: skip
    assert find(prod, "HorizontalPodAutoscaler")["spec"]["maxReplicas"] == default["app_max_replicas"]  # fmt: skip
    assert deployment["strategy"]["rollingUpdate"]["maxSurge"] == default["app_max_surge"]
    assert int(job_env["DB_POOL_SIZE"]) <= default["migration_job_connections"]
    assert default["k8s_service_account"].strip('"') == "backend-sa"
    assert default["k8s_namespace"].strip('"') == "cme"
