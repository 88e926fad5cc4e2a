# Memorystore for Redis: one rate-limit bucket per caller across every pod (REDIS_URL). On by
# default (enable_redis); without it each worker process limits on its own, so the HPA's 2 to 4
# pods would allow 2 to 4 times each quota. The deploy job copies REDIS_URL and the server CA into
# the Kubernetes Secret cme-redis (docs/deploy/gke.md, "Redis").

resource "google_redis_instance" "rate_limits" {
  count = var.enable_redis ? 1 : 0

  name           = var.redis_instance_name
  region         = var.region
  tier           = var.redis_tier
  memory_size_gb = var.redis_memory_size_gb
  redis_version  = "REDIS_7_2"
  labels         = var.labels

  # Reached only from the VPC, through the same private service access range as Cloud SQL.
  authorized_network = google_compute_network.vpc.id
  connect_mode       = "PRIVATE_SERVICE_ACCESS"
  reserved_ip_range  = google_compute_global_address.private_service_access.name

  # AUTH and TLS (port 6378): a pod that reaches the address still needs the password, and
  # nothing crosses the network in the clear.
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"

  redis_configs = {
    # Every rate-limit key has a TTL; under memory pressure drop those closest to expiry.
    "maxmemory-policy" = "volatile-ttl"
  }

  maintenance_policy {
    weekly_maintenance_window {
      day = "SUNDAY"
      start_time {
        hours   = 4
        minutes = 0
      }
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_service_networking_connection.private_service_access,
  ]
}

# REDIS_URL for the pods, with the AUTH string: kept in Secret Manager, never in a tfvars file.
# TLS parameters (redis-py reads them from the URL):
#   ssl_cert_reqs=required   the server certificate must chain to ssl_ca_certs;
#   ssl_ca_certs             the instance's own CA (output redis_server_ca_certs), mounted from
#                            the Secret cme-redis at var.redis_ca_path;
#   ssl_check_hostname=false the URL names the server by IP address, which Python's TLS matches
#                            only against IP subjectAltNames, and Memorystore documents none for
#                            its server certificate; the CA is unique to this instance, so a
#                            certificate that chains to it can only be this server's.
resource "google_secret_manager_secret" "redis_url" {
  count     = var.enable_redis ? 1 : 0
  secret_id = var.redis_url_secret_id

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_version" "redis_url" {
  count  = var.enable_redis ? 1 : 0
  secret = google_secret_manager_secret.redis_url[0].id
  secret_data = format(
    "rediss://:%s@%s:%d/0?ssl_cert_reqs=required&ssl_ca_certs=%s&ssl_check_hostname=false",
    google_redis_instance.rate_limits[0].auth_string,
    google_redis_instance.rate_limits[0].host,
    google_redis_instance.rate_limits[0].port,
    var.redis_ca_path,
  )
}
