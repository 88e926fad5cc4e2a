# What the deploy workflow, the Kubernetes manifests and the operator need.

output "cluster_name" {
  description = "GKE cluster name (gcloud container clusters get-credentials NAME)."
  value       = google_container_cluster.primary.name
}

output "cluster_location" {
  description = "GKE cluster location (a region: Autopilot clusters are regional)."
  value       = google_container_cluster.primary.location
}

output "cluster_dns_endpoint" {
  description = "DNS name of the control plane; callers are authorized by IAM (container.clusters.connect)."
  value       = google_container_cluster.primary.control_plane_endpoints_config[0].dns_endpoint_config[0].endpoint
}

output "sql_instance_connection_name" {
  description = "PROJECT:REGION:INSTANCE, the argument of the Cloud SQL Auth Proxy."
  value       = google_sql_database_instance.main.connection_name
}

output "sql_private_ip" {
  description = "Private IP of the Cloud SQL instance (reachable only from the VPC)."
  value       = google_sql_database_instance.main.private_ip_address
}

output "db_name" {
  description = "Database name (DB_NAME)."
  value       = google_sql_database.app.name
}

output "db_user" {
  description = "Database user (DB_USER)."
  value       = google_sql_user.app.name
}

output "db_password_secret_id" {
  description = "Secret Manager secret holding DB_PASS: gcloud secrets versions access latest --secret=ID."
  value       = google_secret_manager_secret.db_password.secret_id
}

output "registry_url" {
  description = "Image repository prefix: the pipeline pushes REGISTRY_URL/cme-api:SHA and :latest."
  value       = local.registry_url
}

output "app_service_account_email" {
  description = "Google service account for the annotation iam.gke.io/gcp-service-account on KSA backend-sa."
  value       = google_service_account.app.email
}

output "deploy_service_account_email" {
  description = "Service account the GitHub workflow impersonates (google-github-actions/auth service_account)."
  value       = google_service_account.deploy.email
}

output "workload_identity_provider" {
  description = "Full WIF provider name for google-github-actions/auth workload_identity_provider."
  value       = google_iam_workload_identity_pool_provider.github.name
}

output "db_connection_budget" {
  description = "Peak PostgreSQL connections by source against max_connections (docs/deploy/gke.md, \"Connection budget\")."
  value = {
    app_pods          = (var.app_db_pool_size + local.app_listen_connections) * (var.app_max_replicas + var.app_max_surge)
    migration_job     = var.migration_job_connections
    prune_job         = var.prune_job_connections
    admin             = var.admin_connections
    cloudsql_reserved = local.cloudsql_reserved_connections
    total             = local.db_connections_peak
    max_connections   = var.sql_max_connections
  }
}

output "redis_url_secret_id" {
  description = "Secret Manager secret holding REDIS_URL (null unless enable_redis): gcloud secrets versions access latest --secret=ID."
  value       = var.enable_redis ? google_secret_manager_secret.redis_url[0].secret_id : null
}

output "redis_server_ca_certs" {
  description = "PEM of the CA that signs Memorystore's TLS certificate (null unless enable_redis): the deploy job's REDIS_CA_CERTS, mounted in the pods at redis_ca_path."
  value       = var.enable_redis ? join("\n", google_redis_instance.rate_limits[0].server_ca_certs[*].cert) : null
}

output "domain" {
  description = "Hostname of the API: the deploy job's DOMAIN, https://DOMAIN."
  value       = var.domain
}

output "gateway_ip" {
  description = "The Gateway's reserved global address: the domain's DNS A record and the deploy job's GATEWAY_IP (trusted for X-Forwarded-For)."
  value       = google_compute_global_address.gateway.address
}

output "dns_authorization_record" {
  description = "The CNAME record to add to the domain's DNS so that Certificate Manager can issue and renew the certificate."
  value = {
    name = google_certificate_manager_dns_authorization.api.dns_resource_record[0].name
    type = google_certificate_manager_dns_authorization.api.dns_resource_record[0].type
    data = google_certificate_manager_dns_authorization.api.dns_resource_record[0].data
  }
}

output "certificate_name" {
  description = "Certificate Manager certificate for the domain: gcloud certificate-manager certificates describe NAME shows whether it is ACTIVE."
  value       = google_certificate_manager_certificate.api.name
}
