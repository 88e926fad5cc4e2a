# Identities: the app's Google service account (via Workload Identity) and the
# GitHub Actions deploy identity (via Workload Identity Federation). No keys.

locals {
  # The app authenticates to PostgreSQL with a password, not IAM database
  # auth, so roles/cloudsql.instanceUser is not granted. Image pulls are done
  # by the node identity, so the app needs no Artifact Registry role either.
  app_roles = toset([
    "roles/cloudsql.client",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    # Traces straight to Cloud Trace through Google's OTLP endpoint (README, "Traces").
    "roles/cloudtrace.agent",
  ])

  app_ksa_member = "serviceAccount:${var.project_id}.svc.id.goog[${var.k8s_namespace}/${var.k8s_service_account}]"

  github_issuer = "https://token.actions.githubusercontent.com"
}

resource "google_service_account" "app" {
  account_id   = var.app_service_account_id
  display_name = "cme application"
  description  = "Identity of the cme pods (KSA ${var.k8s_namespace}/${var.k8s_service_account}) through Workload Identity."
}

resource "google_project_iam_member" "app" {
  for_each = local.app_roles

  project = var.project_id
  role    = each.value
  member  = google_service_account.app.member
}

# Only the one Kubernetes ServiceAccount may act as the app's Google identity.
resource "google_service_account_iam_member" "app_workload_identity" {
  service_account_id = google_service_account.app.name
  role               = "roles/iam.workloadIdentityUser"
  member             = local.app_ksa_member

  # The <project>.svc.id.goog pool exists only once the cluster does.
  depends_on = [google_container_cluster.primary]
}

resource "google_iam_workload_identity_pool" "github" {
  workload_identity_pool_id = var.wif_pool_id
  display_name              = "GitHub Actions"
  description               = "OIDC tokens of GitHub Actions runs of ${var.github_repository}."

  depends_on = [google_project_service.enabled]
}

resource "google_iam_workload_identity_pool_provider" "github" {
  #checkov:skip=CKV_GCP_125:The condition pins assertion.repository and assertion.ref instead of assertion.sub, which GitHub rewrites to environment:<name> when a job uses an environment; checkov only recognises a literal sub comparison and cannot resolve var.github_repository. tests/infra/test_terraform.py asserts the condition.

  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = var.wif_provider_id
  display_name                       = "GitHub OIDC"
  description                        = "Admits only runs of ${var.github_repository} on refs/heads/main."

  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.repository" = "assertion.repository"
    "attribute.ref"        = "assertion.ref"
    "attribute.actor"      = "assertion.actor"
  }

  # Without a condition any GitHub repository could exchange its token here.
  # Pull requests (refs/pull/...) and other branches are refused outright.
  attribute_condition = "assertion.repository == '${var.github_repository}' && assertion.ref == 'refs/heads/main'"

  oidc {
    issuer_uri = local.github_issuer
  }
}

resource "google_service_account" "deploy" {
  account_id   = var.deploy_service_account_id
  display_name = "cme GitHub Actions deploy"
  description  = "Pushes images and applies manifests from ${var.github_repository} main; reached only through Workload Identity Federation."
}

resource "google_artifact_registry_repository_iam_member" "deploy_push" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.deploy.member
}

# Kubernetes objects in the cluster (apply, rollout status, run the migration
# Job) and the DNS endpoint's container.clusters.connect; no cluster admin.
resource "google_project_iam_member" "deploy_gke" {
  project = var.project_id
  role    = "roles/container.developer"
  member  = google_service_account.deploy.member
}

resource "google_service_account_iam_member" "deploy_workload_identity" {
  service_account_id = google_service_account.deploy.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.repository/${var.github_repository}"
}
