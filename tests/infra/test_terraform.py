"""The security and capacity decisions in infra/terraform, read from the HCL with python-hcl2."""

import json
import re
import shutil
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from hcl2.utils import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "infra" / "terraform"
K8S_BASE = ROOT / "infra" / "k8s" / "base"
HCL = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True, preserve_heredocs=False
)

Config = dict[str, Any]


def load(tf_dir: Path) -> Config:
    """Every .tf file of a directory merged into resource/variable/output/locals maps."""
    config: Config = {"resource": {}, "variable": {}, "output": {}, "locals": {}, "raw": []}
    for path in sorted(tf_dir.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            doc = hcl2.load(handle, serialization_options=HCL)
        config["raw"].append(doc)
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                config["resource"].setdefault(rtype, {}).update(named)
        for kind in ("variable", "output", "locals"):
            for block in doc.get(kind, []):
                config[kind].update(block)
    return config


def one(config: Config, rtype: str) -> dict[str, Any]:
    (body,) = config["resource"][rtype].values()
    return body


def default(config: Config, name: str) -> Any:
    return config["variable"][name]["default"]


def sql_exposure_problems(config: Config) -> list[str]:
    """Ways the Cloud SQL instances could be reached from outside the VPC (empty: none)."""
    problems = []
    for name, sql in config["resource"].get("google_sql_database_instance", {}).items():
        ip = sql["settings"][0]["ip_configuration"][0]
        if ip.get("ipv4_enabled") is not False:
            problems.append(f"{name}: ipv4_enabled must be false (no public IP)")
        if "google_compute_network.vpc" not in str(ip.get("private_network")):
            problems.append(f"{name}: private_network must be the VPC")
        if ip.get("authorized_networks"):
            problems.append(f"{name}: authorized_networks open the public IP")
    return problems


def redis_problems(config: Config) -> list[str]:
    """Ways a Memorystore instance would be optional in name only, reachable, or readable."""
    problems = []
    for name, redis in config["resource"].get("google_redis_instance", {}).items():
        if redis.get("count") != "${var.enable_redis ? 1 : 0}":
            problems.append(f"{name}: must exist only when var.enable_redis")
        if redis.get("connect_mode") != "PRIVATE_SERVICE_ACCESS":
            problems.append(f"{name}: connect_mode must be PRIVATE_SERVICE_ACCESS")
        if "google_compute_network.vpc" not in str(redis.get("authorized_network")):
            problems.append(f"{name}: authorized_network must be the VPC")
        if redis.get("auth_enabled") is not True:
            problems.append(f"{name}: auth_enabled must be true")
        if redis.get("transit_encryption_mode") != "SERVER_AUTHENTICATION":
            problems.append(f"{name}: transit_encryption_mode must be SERVER_AUTHENTICATION")
    return problems


def references(config: Config, kind: str, *, outside_variables: bool = False) -> set[str]:
    docs = config["raw"]
    if outside_variables:
        docs = [{k: v for k, v in doc.items() if k != "variable"} for doc in docs]
    return set(re.findall(rf"\b{kind}\.([A-Za-z_][\w-]*)", json.dumps(docs)))


def undeclared_references(config: Config) -> set[str]:
    """var.X and local.X used anywhere (nothing else checks this offline) but never declared."""
    return {f"var.{v}" for v in references(config, "var") - config["variable"].keys()} | {
        f"local.{v}" for v in references(config, "local") - config["locals"].keys()
    }


def validation_conditions(config: Config, name: str) -> str:
    return " ".join(v["condition"] for v in config["variable"][name]["validation"])


def pool_size(spec: dict[str, Any]) -> str:
    pod = spec["template"]["spec"]
    containers = pod.get("initContainers", []) + pod["containers"]
    env = [e for c in containers for e in c.get("env", []) if e["name"] == "DB_POOL_SIZE"]
    (entry,) = env
    return str(entry["value"])


@pytest.fixture(scope="module")
def tf() -> Config:
    return load(TF_DIR)


def test_cloud_sql_has_no_public_ip_and_sits_on_the_private_network(tf: Config) -> None:
    assert tf["resource"]["google_sql_database_instance"]
    assert sql_exposure_problems(tf) == []


def test_cloud_sql_requires_encrypted_connections(tf: Config) -> None:
    ip = one(tf, "google_sql_database_instance")["settings"][0]["ip_configuration"][0]
    assert ip["ssl_mode"] == "ENCRYPTED_ONLY"
    assert "require_ssl" not in ip  # removed in google provider 6


def test_cloud_sql_has_both_deletion_protections_on_by_default(tf: Config) -> None:
    sql = one(tf, "google_sql_database_instance")
    protect = "${var.deletion_protection}"
    assert sql["deletion_protection"] == protect
    assert sql["settings"][0]["deletion_protection_enabled"] == protect
    assert one(tf, "google_container_cluster")["deletion_protection"] == protect
    assert default(tf, "deletion_protection") is True


def test_cloud_sql_is_postgres_15_with_backups_and_point_in_time_recovery(tf: Config) -> None:
    sql = one(tf, "google_sql_database_instance")
    settings = sql["settings"][0]
    backup = settings["backup_configuration"][0]
    assert sql["database_version"] == "POSTGRES_15"
    assert backup["enabled"] is True
    assert backup["point_in_time_recovery_enabled"] is True
    assert settings["maintenance_window"]
    assert settings["insights_config"][0]["query_insights_enabled"] is True
    assert default(tf, "sql_tier") == "db-f1-micro"
    assert default(tf, "sql_availability_type") == "ZONAL"
    assert one(tf, "google_sql_database")["name"] == "${var.db_name}"
    assert default(tf, "db_name") == "cmeproducts_db"


def test_the_database_password_is_generated_and_kept_in_secret_manager(tf: Config) -> None:
    assert one(tf, "google_sql_user")["password"] == "${random_password.db.result}"
    version = tf["resource"]["google_secret_manager_secret_version"]["db_password"]
    assert version["secret_data"] == "${random_password.db.result}"
    # No password is an input, so none can end up in a tfvars file.
    assert not [name for name in tf["variable"] if name.endswith(("password", "pass"))]


def test_gke_nodes_are_private_and_the_control_plane_is_reached_by_dns(tf: Config) -> None:
    gke = one(tf, "google_container_cluster")
    private = gke["private_cluster_config"][0]
    assert gke["enable_autopilot"] is True
    # checkov only checks that the block exists; the values are the decision.
    assert private["enable_private_nodes"] is True
    assert private["enable_private_endpoint"] is True
    dns = gke["control_plane_endpoints_config"][0]["dns_endpoint_config"][0]
    assert dns["allow_external_traffic"] is True


def test_gke_workload_identity_pool_is_the_project_pool(tf: Config) -> None:
    pool = one(tf, "google_container_cluster")["workload_identity_config"][0]["workload_pool"]
    assert pool == "${var.project_id}.svc.id.goog"


def test_gke_uses_the_seed_secondary_ranges_and_settings(tf: Config) -> None:
    subnet = one(tf, "google_compute_subnetwork")
    ranges = {r["range_name"]: r["ip_cidr_range"] for r in subnet["secondary_ip_range"]}
    assert ranges == {
        "${local.pods_range_name}": "${var.pods_cidr}",
        "${local.services_range_name}": "${var.services_cidr}",
    }
    assert default(tf, "pods_cidr") == "10.20.0.0/16"
    assert default(tf, "services_cidr") == "10.30.0.0/16"
    assert subnet["private_ip_google_access"] is True
    assert subnet["log_config"]
    gke = one(tf, "google_container_cluster")
    assert gke["release_channel"][0]["channel"] == "REGULAR"
    assert gke["monitoring_config"][0]["managed_prometheus"][0]["enabled"] is True
    assert gke["logging_config"][0]["enable_components"] == ["SYSTEM_COMPONENTS", "WORKLOADS"]
    assert gke["maintenance_policy"][0]["recurring_window"]


def test_no_default_opens_anything_to_the_whole_internet(tf: Config) -> None:
    assert default(tf, "master_authorized_networks") == []
    defaults = json.dumps({n: v.get("default") for n, v in tf["variable"].items()})
    assert "0.0.0.0/0" not in defaults


def test_github_provider_admits_only_this_repository_on_main(tf: Config) -> None:
    provider = one(tf, "google_iam_workload_identity_pool_provider")
    condition = provider["attribute_condition"]
    assert "assertion.repository == '${var.github_repository}'" in condition
    assert "assertion.ref == 'refs/heads/main'" in condition
    assert " || " not in condition
    assert provider["oidc"][0]["issuer_uri"] == "${local.github_issuer}"
    assert tf["locals"]["github_issuer"] == "https://token.actions.githubusercontent.com"
    binding = tf["resource"]["google_service_account_iam_member"]["deploy_workload_identity"]
    assert binding["member"].endswith("/attribute.repository/${var.github_repository}")


def test_service_accounts_hold_only_the_roles_they_need(tf: Config) -> None:
    app_roles = set(re.findall(r"roles/[\w.]+", tf["locals"]["app_roles"]))
    writers = {"roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/cloudtrace.agent"}
    assert app_roles == {"roles/cloudsql.client", *writers}
    ksa = tf["resource"]["google_service_account_iam_member"]["app_workload_identity"]
    assert ksa["role"] == "roles/iam.workloadIdentityUser"
    assert ksa["member"] == "${local.app_ksa_member}"
    assert tf["locals"]["app_ksa_member"].endswith(
        ".svc.id.goog[${var.k8s_namespace}/${var.k8s_service_account}]"
    )
    assert default(tf, "k8s_namespace") == "cme"
    assert default(tf, "k8s_service_account") == "backend-sa"
    bindings = tf["resource"]["google_project_iam_member"].values()
    assert {b["role"] for b in bindings} == {
        "${each.value}",  # local.app_roles, above
        "roles/container.defaultNodeServiceAccount",
        "roles/container.developer",
    }
    on_repository = tf["resource"]["google_artifact_registry_repository_iam_member"]
    assert {b["role"] for b in on_repository.values()} == {
        "roles/artifactregistry.reader",
        "roles/artifactregistry.writer",
    }


def test_no_service_account_keys_anywhere(tf: Config) -> None:
    assert "google_service_account_key" not in tf["resource"]
    assert "private_key" not in json.dumps(tf["raw"])


def test_every_variable_has_a_type_and_a_description(tf: Config) -> None:
    for name, var in tf["variable"].items():
        assert var.get("type"), f"variable {name} has no type"
        assert len(var.get("description", "")) > 10, f"variable {name} has no description"


def test_every_referenced_variable_and_local_is_declared_and_every_variable_used(
    tf: Config,
) -> None:
    assert undeclared_references(tf) == set()
    assert tf["variable"].keys() - references(tf, "var", outside_variables=True) == set()


def test_the_connection_budget_fits_db_f1_micro_with_the_defaults(tf: Config) -> None:
    names = (
        "app_db_pool_size",
        "app_max_replicas",
        "app_max_surge",
        "migration_job_connections",
        "prune_job_connections",
        "admin_connections",
    )
    pool, replicas, surge, job, prune, admin = (default(tf, n) for n in names)
    reserved = tf["locals"]["cloudsql_reserved_connections"]
    listening = tf["locals"]["app_listen_connections"]
    assert (pool, listening, replicas, default(tf, "sql_max_connections")) == (2, 1, 4, 25)
    assert (surge, job, prune, admin, reserved) == (1, 1, 1, 2, 3)
    # (2 + 1) x (4 + 1) + 1 + 1 + 2 + 3 = 22: the HPA's 2..4 fits db-f1-micro's 25.
    assert (pool + listening) * (replicas + surge) + job + prune + admin + reserved == 22
    # Terraform enforces the same sum at plan time, and the limit is the real flag.
    assert all(f"var.{n}" in tf["locals"]["db_connections_peak"] for n in names)
    assert "local.db_connections_peak" in validation_conditions(tf, "sql_max_connections")
    flags = one(tf, "google_sql_database_instance")["settings"][0]["database_flags"]
    assert {"name": "max_connections", "value": "${tostring(var.sql_max_connections)}"} in flags


def test_the_kubernetes_manifests_match_the_budget_and_the_alerts(tf: Config) -> None:
    hpa, deployment, job, cronjob = (
        yaml.safe_load((K8S_BASE / name).read_text(encoding="utf-8"))["spec"]
        for name in (
            "hpa.yaml",
            "deployment.yaml",
            "migrate-job.yaml",
            "prune-changes-cronjob.yaml",
        )
    )
    app = default(tf, "k8s_app_container")
    assert app in {c["name"] for c in deployment["template"]["spec"]["containers"]}
    assert hpa["metrics"][0]["containerResource"]["container"] == app
    assert hpa["maxReplicas"] <= default(tf, "app_max_replicas")
    assert deployment["strategy"]["rollingUpdate"]["maxSurge"] <= default(tf, "app_max_surge")
    assert int(pool_size(deployment)) <= default(tf, "app_db_pool_size")
    assert int(pool_size(job)) <= default(tf, "migration_job_connections")
    assert int(pool_size(cronjob["jobTemplate"]["spec"])) <= default(tf, "prune_job_connections")


def test_alerts_watch_latency_errors_restarts_cpu_and_health(tf: Config) -> None:
    # The PromQL itself is in infra/prometheus and tested there by promtool.
    rules = yaml.safe_load((TF_DIR.parent / "prometheus" / "alerts.yml").read_text())
    names = {rule["alert"] for rule in rules["groups"][0]["rules"]}
    assert names >= {"latency_p99", "error_ratio_5xx", "pod_restarts", "cpu_over_request"}
    assert set(tf["locals"]["alert_titles"]) == names
    assert "/../prometheus/alerts.yml" in tf["locals"]["alert_rules"]
    policy = tf["resource"]["google_monitoring_alert_policy"]["prometheus"]
    assert policy["conditions"][0]["condition_prometheus_query_language"]
    uptime = one(tf, "google_monitoring_uptime_check_config")
    assert uptime["count"] == "${local.uptime_enabled ? 1 : 0}"
    assert tf["locals"]["uptime_enabled"] == "${var.uptime_check_enabled}"
    check = uptime["http_check"][0]
    assert (check["path"], check["port"], check["use_ssl"], check["validate_ssl"]) == (
        "/health",
        443,
        True,
        True,
    )
    assert uptime["monitored_resource"][0]["labels"]["host"] == "${var.domain}"


def test_the_latency_slo_leaves_long_polls_out_as_the_alerts_do(tf: Config) -> None:
    """A long poll lasts the wait it asked for; alerts.yml selects long_poll="false" too."""
    slo = tf["resource"]["google_monitoring_slo"]["latency"]
    cut = slo["request_based_sli"][0]["distribution_cut"][0]
    assert cut["distribution_filter"].endswith('AND metric.label.long_poll="false"')
    alerts = (TF_DIR.parent / "prometheus" / "alerts.yml").read_text()
    latency = re.findall(r"request_latency_seconds_\w+\{[^}]*\}", alerts)
    assert latency
    assert all('long_poll="false"' in selector for selector in latency)


def test_the_checks_fail_on_a_public_cloud_sql_instance(tmp_path: Path) -> None:
    broken = tmp_path / "terraform"
    shutil.copytree(TF_DIR, broken)
    sql = broken / "sql.tf"
    text, count = re.subn(r"ipv4_enabled(\s*)= false", r"ipv4_enabled\1= true", sql.read_text())
    assert count == 1
    sql.write_text(text)
    problems = sql_exposure_problems(load(broken))
    assert problems == ["main: ipv4_enabled must be false (no public IP)"]


def test_the_checks_fail_on_an_undeclared_variable(tmp_path: Path) -> None:
    broken = tmp_path / "terraform"
    shutil.copytree(TF_DIR, broken)
    (broken / "broken.tf").write_text(
        'output "broken" {\n  value = "${var.nowhere_declared}-${local.nor_this}"\n}\n'
    )
    assert undeclared_references(load(broken)) == {"var.nowhere_declared", "local.nor_this"}


def test_memorystore_is_on_by_default_private_with_auth_and_tls(tf: Config) -> None:
    assert default(tf, "enable_redis") is True
    assert set(tf["resource"]["google_redis_instance"]) == {"rate_limits"}
    assert redis_problems(tf) == []
    redis = one(tf, "google_redis_instance")
    assert "private_service_access" in redis["reserved_ip_range"]
    # Everything Redis brings is behind the same switch, the API included.
    for rtype, name in [
        ("google_secret_manager_secret", "redis_url"),
        ("google_secret_manager_secret_version", "redis_url"),
    ]:
        assert tf["resource"][rtype][name]["count"] == "${var.enable_redis ? 1 : 0}"
    assert "redis.googleapis.com" in tf["locals"]["services"]
    assert "var.enable_redis" in tf["locals"]["services"]
    url = tf["resource"]["google_secret_manager_secret_version"]["redis_url"]["secret_data"]
    assert url.startswith('${format("rediss://')  # TLS, with the AUTH string in the secret
    # The server certificate must chain to the instance's own CA, mounted at redis_ca_path.
    assert "ssl_cert_reqs=required&ssl_ca_certs=%s" in url
    assert "var.redis_ca_path" in url


@pytest.mark.parametrize(
    ("pattern", "replacement", "problem"),
    [
        (r"auth_enabled(\s*)= true", r"auth_enabled\1= false", "auth_enabled must be true"),
        (
            r'transit_encryption_mode = "SERVER_AUTHENTICATION"',
            'transit_encryption_mode = "DISABLED"',
            "transit_encryption_mode must be SERVER_AUTHENTICATION",
        ),
        (
            r'connect_mode(\s*)= "PRIVATE_SERVICE_ACCESS"',
            r'connect_mode\1= "DIRECT_PEERING"',
            "connect_mode must be PRIVATE_SERVICE_ACCESS",
        ),
        (r"count = var.enable_redis \? 1 : 0\n\n  name", "count = 1\n\n  name", "var.enable_redis"),
    ],
)
def test_the_checks_fail_on_an_exposed_memorystore(
    tmp_path: Path, pattern: str, replacement: str, problem: str
) -> None:
    broken = tmp_path / "terraform"
    shutil.copytree(TF_DIR, broken)
    redis = broken / "redis.tf"
    text, count = re.subn(pattern, replacement, redis.read_text())
    assert count == 1
    redis.write_text(text)
    (found,) = redis_problems(load(broken))
    assert problem in found


def edge_problems(config: Config) -> list[str]:
    """Ways the HTTPS entry point would not be what docs/deploy/gke.md promises (empty: none)."""
    problems = []
    resources = config["resource"]
    addresses = {
        n: a
        for n, a in resources.get("google_compute_global_address", {}).items()
        if n != "private_service_access"
    }
    if set(addresses) != {"gateway"}:
        problems.append("one global address for the Gateway")
    else:
        address = addresses["gateway"]
        if (address.get("address_type"), address.get("name")) != (
            "EXTERNAL",
            "${var.gateway_address_name}",
        ):
            problems.append("gateway address: EXTERNAL, named var.gateway_address_name")
    (certificate,) = resources["google_certificate_manager_certificate"].values()
    managed = certificate.get("managed", [{}])[0]
    if managed.get("domains") != ["${var.domain}"] or not managed.get("dns_authorizations"):
        problems.append("certificate: Google-managed for var.domain through a DNS authorization")
    entries = resources["google_certificate_manager_certificate_map_entry"].values()
    if [e.get("hostname") for e in entries if "hostname" in e] != ["${var.domain}"]:
        problems.append("certificate map entry: hostname var.domain")
    if any(
        e["certificates"] != ["${google_certificate_manager_certificate.api.id}"] for e in entries
    ):
        problems.append("certificate map entries: the domain's certificate only")
    (cert_map,) = resources["google_certificate_manager_certificate_map"].values()
    if cert_map.get("name") != "${var.certificate_map_name}":
        problems.append("certificate map: named var.certificate_map_name")
    (ssl,) = resources["google_compute_ssl_policy"].values()
    if (ssl.get("min_tls_version"), ssl.get("profile")) != ("TLS_1_2", "MODERN"):
        problems.append("SSL policy: TLS_1_2 and MODERN")
    (armor,) = resources["google_compute_security_policy"].values()
    limits = [r for r in armor["rule"] if r["action"] in ("throttle", "rate_based_ban")]
    if len(limits) != 1:
        problems.append("Cloud Armor: one rate-limit rule (throttle or rate_based_ban)")
    else:
        options = limits[0]["rate_limit_options"][0]
        threshold = options["rate_limit_threshold"][0]
        if (options["enforce_on_key"], options["exceed_action"]) != ("IP", "deny(429)"):
            problems.append("Cloud Armor: per IP, 429 when exceeded")
        if threshold["count"] != "${var.edge_rate_limit_requests}":
            problems.append("Cloud Armor: threshold var.edge_rate_limit_requests")
    defaults = [r for r in armor["rule"] if r["priority"] == 2147483647]
    if [r["action"] for r in defaults] != ["allow"]:
        problems.append("Cloud Armor: a default rule that allows")
    return problems


def test_the_https_entry_point_is_a_managed_certificate_tls12_and_a_rate_limit(tf: Config) -> None:
    assert edge_problems(tf) == []
    assert "certificatemanager.googleapis.com" in tf["locals"]["services"]
    assert "domain" not in {n for n, v in tf["variable"].items() if "default" in v}, "required"
    # The global address is the public one; the private service access range stays INTERNAL.
    psa = tf["resource"]["google_compute_global_address"]["private_service_access"]
    assert psa["address_type"] == "INTERNAL"
    # The edge limit sits above one caller's app quotas (6000 reads + 600 writes + 60 batches).
    assert (
        default(tf, "edge_rate_limit_requests") / default(tf, "edge_rate_limit_interval_sec") * 60
        > 6660
    )
    outputs = {"domain", "gateway_ip", "dns_authorization_record", "redis_server_ca_certs"}
    assert outputs <= tf["output"].keys()


@pytest.mark.parametrize(
    ("pattern", "replacement", "problem"),
    [
        (r'min_tls_version = "TLS_1_2"', 'min_tls_version = "TLS_1_0"', "TLS_1_2"),
        (r'action      = "throttle"', 'action      = "allow"', "one rate-limit rule"),
        (r'enforce_on_key = "IP"', 'enforce_on_key = "ALL"', "per IP"),
        (r"dns_authorizations = \[[^]]*\]\n", "", "DNS authorization"),
        (r"hostname     = var.domain", 'hostname     = "example.com"', "hostname var.domain"),
        (r'address_type = "EXTERNAL"', 'address_type = "INTERNAL"', "EXTERNAL"),
    ],
)
def test_the_checks_fail_on_a_weakened_entry_point(
    tmp_path: Path, pattern: str, replacement: str, problem: str
) -> None:
    broken = tmp_path / "terraform"
    shutil.copytree(TF_DIR, broken)
    edge = broken / "edge.tf"
    text, count = re.subn(pattern, replacement, edge.read_text())
    assert count == 1
    edge.write_text(text)
    (found,) = edge_problems(load(broken))
    assert problem in found
