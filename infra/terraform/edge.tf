# The public HTTPS entry point. The GKE Gateway (infra/k8s/overlays/prod/gateway.yaml, class
# gke-l7-global-external-managed) builds a global external Application Load Balancer from these:
#   - the reserved global address, named by the Gateway's `addresses` (type NamedAddress);
#   - the Google-managed certificate for var.domain, served through the certificate map the
#     Gateway names in its networking.gke.io/certmap annotation;
#   - the SSL policy (TLS 1.2 or later) the GCPGatewayPolicy attaches to the Gateway;
#   - the Cloud Armor policy the GCPBackendPolicy attaches to the app's backend service.
# Names are variables whose defaults the manifests repeat (tests/infra/test_terraform.py
# compares them); change both together.

resource "google_compute_global_address" "gateway" {
  name         = var.gateway_address_name
  description  = "Public IPv4 address of the cme API (https://${var.domain}); the DNS A record of the domain points here."
  address_type = "EXTERNAL"
  ip_version   = "IPV4"

  depends_on = [google_project_service.enabled]
}

# Certificate Manager proves control of the domain through a CNAME record (output
# dns_authorization_record) rather than by answering on the load balancer, so the certificate can
# be ACTIVE before the first deploy and renews without any traffic reaching the Gateway.
resource "google_certificate_manager_dns_authorization" "api" {
  name        = "${var.certificate_map_name}-dns-auth"
  description = "Authorizes Google-managed certificates for ${var.domain}."
  domain      = var.domain

  depends_on = [google_project_service.enabled]
}

resource "google_certificate_manager_certificate" "api" {
  name        = "${var.certificate_map_name}-api"
  description = "Google-managed certificate for ${var.domain}, renewed by Google."
  # DEFAULT: served by global external Application Load Balancers (the Gateway's class).
  scope = "DEFAULT"

  managed {
    domains            = [var.domain]
    dns_authorizations = [google_certificate_manager_dns_authorization.api.id]
  }
}

resource "google_certificate_manager_certificate_map" "api" {
  name        = var.certificate_map_name
  description = "Certificates of the cme Gateway (annotation networking.gke.io/certmap)."

  depends_on = [google_project_service.enabled]
}

# SNI var.domain gets the certificate.
resource "google_certificate_manager_certificate_map_entry" "api" {
  name         = "${var.certificate_map_name}-api"
  description  = "${var.domain} -> its Google-managed certificate."
  map          = google_certificate_manager_certificate_map.api.name
  certificates = [google_certificate_manager_certificate.api.id]
  hostname     = var.domain
}

# PRIMARY: what the load balancer serves when a client sends no SNI or a name the map does not
# hold. The same certificate, so such a client still meets a valid chain for var.domain (and a
# name mismatch for anything else) rather than a failed handshake.
resource "google_certificate_manager_certificate_map_entry" "primary" {
  name         = "${var.certificate_map_name}-primary"
  description  = "Clients without SNI get the certificate of ${var.domain}."
  map          = google_certificate_manager_certificate_map.api.name
  certificates = [google_certificate_manager_certificate.api.id]
  matcher      = "PRIMARY"
}

# The load balancer's default SSL policy (COMPATIBLE) still accepts TLS 1.0 and 1.1.
resource "google_compute_ssl_policy" "gateway" {
  name            = var.ssl_policy_name
  description     = "TLS 1.2 or later with the MODERN cipher profile for the cme Gateway."
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"

  depends_on = [google_project_service.enabled]
}

# Cloud Armor in front of the pods: one address may send at most edge_rate_limit_requests requests
# per edge_rate_limit_interval_sec; beyond that the load balancer answers 429 itself and the
# request never reaches a pod. This is flood protection per client address, set well above the
# app's own per-caller quotas (RATE_LIMIT_*), which stay the limit a well-behaved caller meets.
resource "google_compute_security_policy" "edge" {
  #checkov:skip=CKV_GCP_73:The API is Python and its image holds no Java, so no Log4j; a cve-canary WAF rule would inspect every request, and bill a rule, for a vulnerability the service cannot have.

  name        = var.security_policy_name
  description = "Per-address rate limit in front of the cme API."
  type        = "CLOUD_ARMOR"

  rule {
    action      = "throttle"
    priority    = 1000
    description = "Per client address: 429 beyond the edge rate limit"

    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }

    rate_limit_options {
      conform_action = "allow"
      exceed_action  = "deny(429)"
      enforce_on_key = "IP"

      rate_limit_threshold {
        count        = var.edge_rate_limit_requests
        interval_sec = var.edge_rate_limit_interval_sec
      }
    }
  }

  rule {
    action      = "allow"
    priority    = 2147483647
    description = "Default rule: allow"

    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
  }

  depends_on = [google_project_service.enabled]
}
