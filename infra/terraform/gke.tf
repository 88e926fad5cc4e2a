# The GKE Autopilot cluster and the dedicated identity its nodes run as.

resource "google_service_account" "nodes" {
  account_id   = "${var.cluster_name}-nodes"
  display_name = "GKE nodes of ${var.cluster_name}"
  description  = "Least-privilege node identity, replacing the Compute Engine default service account (Editor on the project)."
}

resource "google_project_iam_member" "nodes_default_role" {
  project = var.project_id
  role    = "roles/container.defaultNodeServiceAccount"
  member  = google_service_account.nodes.member
}

# Nodes pull the application image; reading this one repository is all they need.
resource "google_artifact_registry_repository_iam_member" "nodes_pull" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.nodes.member
}

resource "google_container_cluster" "primary" {
  #checkov:skip=CKV_GCP_12:Autopilot always runs Dataplane V2, which enforces NetworkPolicy; the network_policy block checkov looks for is rejected on Autopilot clusters.
  #checkov:skip=CKV_GCP_61:Autopilot turns intranode visibility on itself and exposes no setting for it; VPC flow logs are on for the subnetwork.
  #checkov:skip=CKV_GCP_65:Google Groups for RBAC needs a Google Workspace or Cloud Identity domain that a trial project does not have; access is granted to individual principals with IAM.
  #checkov:skip=CKV_GCP_69:Autopilot always runs the GKE metadata server (Workload Identity) and rejects node_config, where checkov looks for it.

  name     = var.cluster_name
  location = var.region

  enable_autopilot    = true
  deletion_protection = var.deletion_protection

  network         = google_compute_network.vpc.id
  subnetwork      = google_compute_subnetwork.nodes.id
  networking_mode = "VPC_NATIVE"

  ip_allocation_policy {
    cluster_secondary_range_name  = local.pods_range_name
    services_secondary_range_name = local.services_range_name
  }

  # Control-plane access: the DNS-based endpoint, not a public IP endpoint.
  # GitHub-hosted runners come from thousands of changing Azure addresses, so
  # an authorized-networks allowlist either locks the deploy job out or has to
  # be opened to the world. The DNS endpoint is reachable from anywhere but
  # authorizes every request with IAM (container.clusters.connect, part of
  # roles/container.developer) before it reaches the API server, so the
  # deploy job gets in through Workload Identity Federation and nobody else
  # does. The IP endpoint stays private (no public address at all) and master
  # authorized networks restrict even that to the VPC ranges in the variable.
  control_plane_endpoints_config {
    dns_endpoint_config {
      allow_external_traffic = true
    }
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = true
  }

  master_authorized_networks_config {
    gcp_public_cidrs_access_enabled = false

    dynamic "cidr_blocks" {
      for_each = var.master_authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  cluster_autoscaling {
    auto_provisioning_defaults {
      service_account = google_service_account.nodes.email
    }
  }

  release_channel {
    channel = "REGULAR"
  }

  # Weekend nights (UTC), 8 h on Saturday and Sunday: GKE requires at least
  # 48 h of maintenance availability in any 32 days, this gives about 70.
  maintenance_policy {
    recurring_window {
      start_time = "2026-01-03T01:00:00Z"
      end_time   = "2026-01-03T09:00:00Z"
      recurrence = "FREQ=WEEKLY;BYDAY=SA,SU"
    }
  }

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }

  # Workload metrics come from Managed Prometheus (the app's /metrics via a
  # PodMonitoring); the kube-state components export pod and deployment
  # status (restarts, replicas, HPA) as Prometheus series for the alerts.
  monitoring_config {
    enable_components = [
      "SYSTEM_COMPONENTS",
      "POD",
      "DEPLOYMENT",
      "HPA",
    ]

    managed_prometheus {
      enabled = true
    }
  }

  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  resource_labels = var.labels

  depends_on = [
    google_project_service.enabled,
    google_compute_router_nat.nat,
    google_project_iam_member.nodes_default_role,
  ]
}
