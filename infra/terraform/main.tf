# Project services, network, NAT, private service access and the image registry.

locals {
  services = setunion(var.enable_redis ? ["redis.googleapis.com"] : [], [
    "artifactregistry.googleapis.com",
    "binaryauthorization.googleapis.com",
    "certificatemanager.googleapis.com",
    "cloudtrace.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "sts.googleapis.com",
    "telemetry.googleapis.com",
  ])

  pods_range_name     = "pods"
  services_range_name = "services"
  registry_url        = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

resource "google_project_service" "enabled" {
  for_each = local.services

  project = var.project_id
  service = each.value
  # Turning an API off on destroy would break anything else in the project
  # that uses it; the APIs cost nothing while idle.
  disable_on_destroy = false
}

resource "google_compute_network" "vpc" {
  name                    = var.network_name
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.enabled]
}

resource "google_compute_subnetwork" "nodes" {
  name                     = "${var.network_name}-${var.region}"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = var.nodes_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = local.pods_range_name
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = local.services_range_name
    ip_cidr_range = var.services_cidr
  }

  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# GKE adds the allow rules it needs (load balancer health checks, control
# plane to nodes) at priority 1000; this rule only makes the default-deny
# explicit and logged, so unexpected inbound traffic shows up in Logging.
resource "google_compute_firewall" "deny_all_ingress" {
  name      = "${var.network_name}-deny-all-ingress"
  network   = google_compute_network.vpc.id
  direction = "INGRESS"
  priority  = 65534

  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "nat" {
  name    = "${var.network_name}-router"
  region  = var.region
  network = google_compute_network.vpc.id
}

# Private nodes have no external address; NAT gives them outbound access
# (pulling public images, reaching external APIs) without inbound exposure.
resource "google_compute_router_nat" "nat" {
  name                               = "${var.network_name}-nat"
  region                             = var.region
  router                             = google_compute_router.nat.name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.nodes.self_link
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# Cloud SQL's private IP lives in a Google-managed VPC peered to ours; this
# range is reserved for it so it can never collide with nodes, pods or services.
resource "google_compute_global_address" "private_service_access" {
  name          = "${var.network_name}-private-service-access"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  address       = cidrhost(var.private_service_access_cidr, 0)
  prefix_length = tonumber(split("/", var.private_service_access_cidr)[1])
  network       = google_compute_network.vpc.id
}

resource "google_service_networking_connection" "private_service_access" {
  network                 = google_compute_network.vpc.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_service_access.name]
  # Cloud SQL keeps producer resources for days after an instance is deleted,
  # so deleting the connection fails during destroy; abandoning it lets the
  # destroy finish (docs/deploy/gke.md, "Destroy": remove the leftover peering by hand if needed).
  deletion_policy = "ABANDON"
}

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption at rest is kept on purpose: images hold no secrets, IAM on the repository is the access boundary, and a customer-managed KMS key would add cost and a way to lose every image without stopping any threat IAM does not.

  location      = var.region
  repository_id = var.registry_repository_id
  description   = "Container images of the cme service"
  format        = "DOCKER"

  # Deployments pin an image by its git-SHA tag or digest; immutable tags
  # mean a tag can never be silently repointed at different bits.
  docker_config {
    immutable_tags = var.registry_immutable_tags
  }

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "delete-untagged-after-7-days"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "604800s"
    }
  }

  cleanup_policies {
    id     = "delete-tagged-after-90-days"
    action = "DELETE"
    condition {
      tag_state  = "TAGGED"
      older_than = "7776000s"
    }
  }

  # KEEP wins over DELETE, so the newest images (and a rollback target)
  # survive however old they are.
  cleanup_policies {
    id     = "keep-10-most-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  depends_on = [google_project_service.enabled]
}
