# Inputs. Everything without a default must be set in terraform.tfvars
# (see terraform.tfvars.example); nothing here is a secret.

# --- Project ---------------------------------------------------------------

variable "project_id" {
  type        = string
  description = "Google Cloud project ID that holds everything (6-30 lowercase letters, digits, hyphens)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 characters, lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "Region of the cluster, the database, the registry and the network (e.g. us-central1)."
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region name such as us-central1 or europe-west1 (not a zone)."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels put on every resource that supports them (cost reports filter on these)."
  default = {
    app        = "cme"
    managed-by = "terraform"
  }

  validation {
    condition = alltrue([
      for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))
    ])
    error_message = "Label keys must start with a lowercase letter; keys and values may hold only lowercase letters, digits, _ and -, at most 63 characters."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the cluster and the database from deletion (Terraform and API level). Set to false and apply before destroying."
  default     = true
}

# --- Network ---------------------------------------------------------------

variable "network_name" {
  type        = string
  description = "Name of the VPC; the subnetwork, router, NAT and firewall names derive from it."
  default     = "cme-vpc"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.network_name))
    error_message = "network_name must be 1-40 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "nodes_cidr" {
  type        = string
  description = "Primary range of the subnetwork (node addresses)."
  default     = "10.10.0.0/20"

  validation {
    condition     = can(cidrhost(var.nodes_cidr, 0)) && try(tonumber(split("/", var.nodes_cidr)[1]) <= 24, false)
    error_message = "nodes_cidr must be an IPv4 CIDR block of /24 or larger."
  }
}

variable "pods_cidr" {
  type        = string
  description = "Secondary range for pod addresses."
  default     = "10.20.0.0/16"

  validation {
    condition     = can(cidrhost(var.pods_cidr, 0)) && try(tonumber(split("/", var.pods_cidr)[1]) <= 21, false)
    error_message = "pods_cidr must be an IPv4 CIDR block of /21 or larger so the cluster has room to scale out."
  }
}

variable "services_cidr" {
  type        = string
  description = "Secondary range for Kubernetes Service (ClusterIP) addresses."
  default     = "10.30.0.0/16"

  validation {
    condition     = can(cidrhost(var.services_cidr, 0)) && try(tonumber(split("/", var.services_cidr)[1]) <= 24, false)
    error_message = "services_cidr must be an IPv4 CIDR block of /24 or larger."
  }
}

variable "private_service_access_cidr" {
  type        = string
  description = "Range reserved for Google-managed services peered into the VPC (Cloud SQL's private IP comes from here)."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.private_service_access_cidr, 0)) && try(tonumber(split("/", var.private_service_access_cidr)[1]) <= 24, false)
    error_message = "private_service_access_cidr must be an IPv4 CIDR block of /24 or larger."
  }
}

variable "master_authorized_networks" {
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  description = "Internal ranges (VPN, bastion) allowed to reach the control plane's private IP endpoint. The deploy job and operators use the IAM-guarded DNS endpoint instead, so the default is none."
  default     = []

  validation {
    condition = alltrue([
      for n in var.master_authorized_networks : can(cidrhost(n.cidr_block, 0)) && try(tonumber(split("/", n.cidr_block)[1]) >= 8, false)
    ])
    error_message = "Each authorized network must be a valid IPv4 CIDR no wider than /8; 0.0.0.0/0 (the whole internet) is refused."
  }
}

# --- GKE -------------------------------------------------------------------

variable "cluster_name" {
  type        = string
  description = "Name of the GKE Autopilot cluster (also the prefix of its node service account, hence at most 24 characters)."
  default     = "cme-autopilot"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,22}[a-z0-9]$", var.cluster_name))
    error_message = "cluster_name must be 6-24 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "k8s_namespace" {
  type        = string
  description = "Kubernetes namespace the app runs in (Workload Identity binding and alert filters)."
  default     = "cme"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.k8s_namespace))
    error_message = "k8s_namespace must be a DNS-1123 label."
  }
}

variable "k8s_service_account" {
  type        = string
  description = "Kubernetes ServiceAccount of the app pods, bound to the app's Google service account."
  default     = "backend-sa"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.k8s_service_account))
    error_message = "k8s_service_account must be a DNS-1123 label."
  }
}

variable "k8s_app_container" {
  type        = string
  description = "Name of the app container in the Deployment (the CPU alert watches it, as the HPA does, leaving the proxy sidecar out)."
  default     = "app"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.k8s_app_container))
    error_message = "k8s_app_container must be a DNS-1123 label."
  }
}

# --- Registry --------------------------------------------------------------

variable "registry_repository_id" {
  type        = string
  description = "Artifact Registry repository ID for the service's images."
  default     = "cme"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.registry_repository_id))
    error_message = "registry_repository_id must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "registry_immutable_tags" {
  type        = bool
  description = "Refuse to move an existing tag. Off by default because the pipeline re-pushes the moving tag \"latest\"; turn on once it pushes only commit-SHA tags."
  default     = false
}

# --- Cloud SQL -------------------------------------------------------------

variable "sql_instance_name" {
  type        = string
  description = "Name of the Cloud SQL instance (a deleted name cannot be reused for about a week)."
  default     = "cme-postgres"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{0,96}[a-z0-9]$", var.sql_instance_name))
    error_message = "sql_instance_name must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "sql_tier" {
  type        = string
  description = "Cloud SQL machine tier. db-f1-micro (shared core, 25 connections) for a trial; a db-custom-* tier for production."
  default     = "db-f1-micro"

  validation {
    condition     = can(regex("^db-(f1-micro|g1-small|custom-[0-9]+-[0-9]+)$", var.sql_tier))
    error_message = "sql_tier must be db-f1-micro, db-g1-small or db-custom-<vCPUs>-<MiB> (ENTERPRISE edition tiers)."
  }
}

variable "sql_availability_type" {
  type        = string
  description = "ZONAL for a trial, REGIONAL (high availability with a standby in another zone, twice the cost) for production."
  default     = "ZONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.sql_availability_type)
    error_message = "sql_availability_type must be ZONAL or REGIONAL."
  }
}

variable "sql_activation_policy" {
  type        = string
  description = "ALWAYS to run the instance; NEVER stops it (no vCPU/RAM charges, storage still billed) between trial sessions."
  default     = "ALWAYS"

  validation {
    condition     = contains(["ALWAYS", "NEVER"], var.sql_activation_policy)
    error_message = "sql_activation_policy must be ALWAYS or NEVER."
  }
}

variable "sql_disk_size_gb" {
  type        = number
  description = "Initial SSD size of the instance in GB (it grows automatically up to sql_disk_autoresize_limit_gb)."
  default     = 10

  validation {
    condition     = var.sql_disk_size_gb >= 10 && floor(var.sql_disk_size_gb) == var.sql_disk_size_gb
    error_message = "sql_disk_size_gb must be a whole number of at least 10."
  }
}

variable "sql_disk_autoresize_limit_gb" {
  type        = number
  description = "Upper bound for automatic disk growth in GB, so a runaway table cannot grow the bill without limit."
  default     = 50

  validation {
    condition     = var.sql_disk_autoresize_limit_gb >= 10 && floor(var.sql_disk_autoresize_limit_gb) == var.sql_disk_autoresize_limit_gb
    error_message = "sql_disk_autoresize_limit_gb must be a whole number of at least 10."
  }
}

variable "db_name" {
  type        = string
  description = "PostgreSQL database of the service."
  default     = "cmeproducts_db"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must be a lowercase PostgreSQL identifier (letters, digits, underscores)."
  }
}

variable "db_user" {
  type        = string
  description = "PostgreSQL user the service connects as (its password is generated and kept in Secret Manager)."
  default     = "cme_app"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.db_user)) && !contains(["postgres", "cloudsqlsuperuser", "cloudsqladmin"], var.db_user)
    error_message = "db_user must be a lowercase PostgreSQL identifier and not a built-in role."
  }
}

variable "db_password_secret_id" {
  type        = string
  description = "Secret Manager secret that holds the generated database password."
  default     = "cme-db-password"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.db_password_secret_id))
    error_message = "db_password_secret_id may hold only letters, digits, _ and -."
  }
}

# --- Connection budget (docs/deploy/gke.md, "Connection budget") -------------

variable "app_db_pool_size" {
  type        = number
  description = "DB_POOL_SIZE of each app pod: its pool's connections (the pool must not overflow it); each pod (one uvicorn worker) opens one more to listen for the change feed's commits. 2 lets 4 pods and a surge pod fit db-f1-micro."
  default     = 2

  validation {
    condition     = var.app_db_pool_size >= 1 && floor(var.app_db_pool_size) == var.app_db_pool_size
    error_message = "app_db_pool_size must be a whole number of at least 1."
  }
}

variable "app_max_replicas" {
  type        = number
  description = "The HPA's maxReplicas for the app Deployment (infra/k8s/base/hpa.yaml). 4 fits db-f1-micro with a pool of 2; more pods, or a larger pool, need db-g1-small and sql_max_connections 50."
  default     = 4

  validation {
    condition     = var.app_max_replicas >= 1 && floor(var.app_max_replicas) == var.app_max_replicas
    error_message = "app_max_replicas must be a whole number of at least 1."
  }
}

variable "app_max_surge" {
  type        = number
  description = "Extra pods a rolling update runs next to maxReplicas (the Deployment's maxSurge, as a pod count)."
  default     = 1

  validation {
    condition     = var.app_max_surge >= 0 && floor(var.app_max_surge) == var.app_max_surge
    error_message = "app_max_surge must be a whole number, 0 or more."
  }
}

variable "migration_job_connections" {
  type        = number
  description = "Connections the migration Job (cme migrate) holds while it runs."
  default     = 1

  validation {
    condition     = var.migration_job_connections >= 0 && floor(var.migration_job_connections) == var.migration_job_connections
    error_message = "migration_job_connections must be a whole number, 0 or more."
  }
}

variable "prune_job_connections" {
  type        = number
  description = "Connections the change-feed prune CronJob (cme prune-changes) holds while it runs."
  default     = 1

  validation {
    condition     = var.prune_job_connections >= 0 && floor(var.prune_job_connections) == var.prune_job_connections
    error_message = "prune_job_connections must be a whole number, 0 or more."
  }
}

variable "admin_connections" {
  type        = number
  description = "Connections kept free for people: a psql session, a manual export, an incident."
  default     = 2

  validation {
    condition     = var.admin_connections >= 1 && floor(var.admin_connections) == var.admin_connections
    error_message = "admin_connections must be a whole number of at least 1."
  }
}

variable "sql_max_connections" {
  type        = number
  description = "PostgreSQL max_connections, set as a database flag. 25 is db-f1-micro's limit; raise it only with a larger tier."
  default     = 25

  validation {
    condition     = local.db_connections_peak <= var.sql_max_connections
    error_message = "Connection budget exceeded: (app_db_pool_size + 1 listening) x (app_max_replicas + app_max_surge) + migration_job_connections + prune_job_connections + admin_connections + 3 reserved for Cloud SQL must be <= sql_max_connections. Lower the pool or the HPA maximum, or move to a larger tier."
  }
}

# --- Identities ------------------------------------------------------------

variable "app_service_account_id" {
  type        = string
  description = "Account ID of the app's Google service account."
  default     = "cme-app"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.app_service_account_id))
    error_message = "app_service_account_id must be 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "deploy_service_account_id" {
  type        = string
  description = "Account ID of the GitHub Actions deploy service account."
  default     = "cme-deploy"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.deploy_service_account_id))
    error_message = "deploy_service_account_id must be 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "github_repository" {
  type        = string
  description = "The GitHub repository (\"owner/name\") whose main-branch workflow runs may deploy."

  validation {
    condition     = can(regex("^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$", var.github_repository))
    error_message = "github_repository must be \"owner/name\" exactly as GitHub spells it, e.g. acme/cme."
  }
}

variable "wif_pool_id" {
  type        = string
  description = "ID of the Workload Identity Pool for GitHub Actions (a deleted ID stays reserved for 30 days)."
  default     = "github-actions"

  validation {
    condition     = can(regex("^[a-z0-9-]{4,32}$", var.wif_pool_id)) && !startswith(var.wif_pool_id, "gcp-")
    error_message = "wif_pool_id must be 4-32 lowercase letters, digits or hyphens and must not start with gcp-."
  }
}

variable "wif_provider_id" {
  type        = string
  description = "ID of the GitHub OIDC provider inside the pool."
  default     = "github-oidc"

  validation {
    condition     = can(regex("^[a-z0-9-]{4,32}$", var.wif_provider_id)) && !startswith(var.wif_provider_id, "gcp-")
    error_message = "wif_provider_id must be 4-32 lowercase letters, digits or hyphens and must not start with gcp-."
  }
}

# --- Monitoring ------------------------------------------------------------

variable "alert_email" {
  type        = string
  description = "Email address that receives the alert notifications."

  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be an email address."
  }
}

variable "uptime_check_enabled" {
  type        = bool
  description = "Check https://<domain>/health from several regions every minute and page when it fails. Off until the first deploy has put the API behind the Gateway (docs/deploy/gke.md); then turn on and apply again."
  default     = false
}

# --- Rate limits (optional Memorystore for Redis) -------------------------------

variable "enable_redis" {
  type        = bool
  description = "Create a Memorystore for Redis instance so that the API's rate limits are one bucket per caller across every pod (REDIS_URL in the Secret cme-redis). Off: each worker process limits on its own, so 2 to 4 pods allow 2 to 4 times the quota."
  default     = true
}

variable "redis_instance_name" {
  type        = string
  description = "Name of the Memorystore instance."
  default     = "cme-rate-limits"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.redis_instance_name))
    error_message = "redis_instance_name must be 1-40 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "redis_tier" {
  type        = string
  description = "BASIC (one node; a failure loosens the limits to per worker until it is back) or STANDARD_HA (a replica)."
  default     = "BASIC"

  validation {
    condition     = contains(["BASIC", "STANDARD_HA"], var.redis_tier)
    error_message = "redis_tier must be BASIC or STANDARD_HA."
  }
}

variable "redis_memory_size_gb" {
  type        = number
  description = "Memorystore capacity in GiB; a bucket is about 100 bytes, so 1 GiB holds millions of callers."
  default     = 1

  validation {
    condition     = var.redis_memory_size_gb >= 1 && var.redis_memory_size_gb <= 300
    error_message = "redis_memory_size_gb must be between 1 and 300."
  }
}

variable "redis_url_secret_id" {
  type        = string
  description = "Secret Manager secret that receives REDIS_URL (rediss://, with the AUTH string)."
  default     = "cme-redis-url"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.redis_url_secret_id))
    error_message = "redis_url_secret_id may hold only letters, digits, _ and -."
  }
}

variable "redis_ca_path" {
  type        = string
  description = "Where the pods find Memorystore's server CA (REDIS_URL's ssl_ca_certs): the mount of the Secret cme-redis in infra/k8s/base/deployment.yaml."
  default     = "/etc/cme/redis-ca.pem"

  validation {
    condition     = can(regex("^/[A-Za-z0-9._/-]+$", var.redis_ca_path))
    error_message = "redis_ca_path must be an absolute file path without spaces or URL-special characters."
  }
}

# --- HTTPS entry point (edge.tf) --------------------------------------------

variable "domain" {
  type        = string
  description = "Hostname the API is served on (https://<domain>), e.g. api.example.com: the Google-managed certificate's only name. Its DNS needs an A record to the gateway_ip output and the CNAME of the dns_authorization_record output."

  validation {
    condition     = can(regex("^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.domain)) && length(var.domain) <= 253
    error_message = "domain must be a fully qualified lowercase hostname such as api.example.com (no scheme, port, path or wildcard)."
  }
}

variable "gateway_address_name" {
  type        = string
  description = "Name of the reserved global address; the Gateway names it in spec.addresses (type NamedAddress)."
  default     = "cme-gateway-ip"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.gateway_address_name))
    error_message = "gateway_address_name must be 1-63 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "certificate_map_name" {
  type        = string
  description = "Name of the Certificate Manager certificate map; the Gateway names it in its networking.gke.io/certmap annotation."
  default     = "cme-cert-map"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$", var.certificate_map_name))
    error_message = "certificate_map_name must be 1-42 lowercase letters, digits or hyphens, starting with a letter (the certificate and DNS authorization names extend it)."
  }
}

variable "ssl_policy_name" {
  type        = string
  description = "Name of the SSL policy (TLS 1.2+, MODERN) the GCPGatewayPolicy attaches to the Gateway."
  default     = "cme-tls12-modern"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.ssl_policy_name))
    error_message = "ssl_policy_name must be 1-63 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "security_policy_name" {
  type        = string
  description = "Name of the Cloud Armor policy the GCPBackendPolicy attaches to the app's backend service."
  default     = "cme-edge"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.security_policy_name))
    error_message = "security_policy_name must be 1-63 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "edge_rate_limit_requests" {
  type        = number
  description = "Requests one client address may send per edge_rate_limit_interval_sec before Cloud Armor answers 429. Default 12000 a minute: above the app's own quotas for one caller (6000 reads + 600 writes + 60 batches a minute), so the app's 429s with RateLimit fields stay what a single caller meets."
  default     = 12000

  validation {
    condition     = var.edge_rate_limit_requests >= 1 && floor(var.edge_rate_limit_requests) == var.edge_rate_limit_requests
    error_message = "edge_rate_limit_requests must be a whole number of at least 1."
  }
}

variable "edge_rate_limit_interval_sec" {
  type        = number
  description = "Window of the Cloud Armor rate limit in seconds (one of the intervals Cloud Armor accepts)."
  default     = 60

  validation {
    condition     = contains([10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600], var.edge_rate_limit_interval_sec)
    error_message = "edge_rate_limit_interval_sec must be one of 10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600."
  }
}
