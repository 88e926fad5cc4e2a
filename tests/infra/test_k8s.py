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
SCHEMA = Path("tests/infra/schemas/podmonitoring.json")
PROXY_IMAGE = re.compile(r"gcr\.io/cloud-sql-connectors/cloud-sql-proxy:\d+\.\d+\.\d+")
# The kinds checkov has checks for; its report names them KIND.NAMESPACE.NAME.
CHECKED_KINDS = {"Deployment", "Job", "CronJob", "Service", "ServiceAccount", "ConfigMap"}


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
    assert {d["kind"] for d in docs[overlay]} == CHECKED_KINDS | others | {"PodMonitoring"}
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


@pytest.mark.parametrize("change", [{"interval": "30 seconds"}, {"scrapeInterval": "30s"}])
def test_podmonitoring_schema_rejects_a_bad_interval_or_an_unknown_field(
    run_tool: RunTool, prod: list[Doc], tmp_path: Path, change: dict[str, str]
):
    monitoring = json.loads(json.dumps(find(prod, "PodMonitoring")))
    monitoring["spec"]["endpoints"][0].update(change)
    instance = tmp_path / "podmonitoring.json"
    instance.write_text(json.dumps(monitoring))
    assert run_tool("check-jsonschema", "--schemafile", SCHEMA, instance).returncode != 0


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


def test_service_exposes_port_5000_and_selects_only_the_deployments_pods(prod: list[Doc]):
    service = find(prod, "Service", "cme-task-service")["spec"]
    assert service["type"] == "LoadBalancer"
    (port,) = service["ports"]
    assert (port["port"], port["targetPort"], port["protocol"]) == (5000, "http", "TCP")
    assert selects(service["selector"], labels_of(prod, "Deployment"))
    assert not selects(service["selector"], labels_of(prod, "Job"))


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


def test_hpa_scales_the_deployment_between_2_and_5_on_the_apps_cpu(docs: dict[str, list[Doc]]):
    hpa = find(docs["prod"], "HorizontalPodAutoscaler")["spec"]
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cme-task"}
    assert hpa["scaleTargetRef"] == target
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 3)
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
    for kind in ("Deployment", "Job"):
        for c in pod(prod, kind)["containers"]:
            assert {s["secretRef"]["name"] for s in c.get("envFrom", [])} <= keys.keys()
            refs = [e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e]
            assert all(ref["key"] in keys[ref["name"]] for ref in refs)


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
    assert settings == {"DB_POOL_SIZE": "3", "LOG_FORMAT": "json", "WEB_CONCURRENCY": "1"}


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


def test_network_policy_admits_only_port_5000_and_the_proxys_egress(prod: list[Doc]):
    deny = find(prod, "NetworkPolicy", "default-deny")["spec"]
    assert (deny["podSelector"], deny["policyTypes"]) == ({}, ["Ingress", "Egress"])
    policy = find(prod, "NetworkPolicy", "cme-task")["spec"]
    for kind in ("Deployment", "Job"):
        assert selects(policy["podSelector"]["matchLabels"], labels_of(prod, kind))
    ingress = [port for rule in policy["ingress"] for port in rule["ports"]]
    assert ingress == [{"protocol": "TCP", "port": 5000}]
    egress = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert egress == {53, 80, 988, 3307, 443}


def test_deploy_env_sets_the_sql_instance_and_the_apps_google_account(
    run_tool: RunTool, root: Path, tmp_path: Path
):
    shutil.copytree(root / "infra/k8s", tmp_path / "k8s")
    overlay = tmp_path / "k8s/overlays/prod"
    email = "app@p.iam.gserviceaccount.com"
    params = f"INSTANCE_CONNECTION_NAME=p:r:i\nGCP_SERVICE_ACCOUNT={email}\n"
    (overlay / "deploy.env").write_text(params)
    rendered = list(yaml.safe_load_all(render(run_tool, overlay)))
    annotations = find(rendered, "ServiceAccount", "backend-sa")["metadata"]["annotations"]
    assert annotations["iam.gke.io/gcp-service-account"] == email
    assert find(rendered, "ConfigMap")["data"]["INSTANCE_CONNECTION_NAME"] == "p:r:i"


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
