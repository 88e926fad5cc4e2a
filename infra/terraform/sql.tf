# Cloud SQL for PostgreSQL on a private IP, its database, user and password.

locals {
  # Cloud SQL keeps superuser_reserved_connections (3) of max_connections for
  # its own maintenance agent; everything else must fit in the rest.
  cloudsql_reserved_connections = 3

  # Each app pod also keeps one connection of its own LISTENing for the change feed's commits.
  app_listen_connections = 1

  # Worst case: the HPA at its maximum while a rolling update adds surge pods,
  # the migration Job and the change-feed prune CronJob running, and an operator connected.
  db_connections_peak = (
    (var.app_db_pool_size + local.app_listen_connections) * (var.app_max_replicas + var.app_max_surge)
    + var.migration_job_connections
    + var.prune_job_connections
    + var.admin_connections
    + local.cloudsql_reserved_connections
  )
}

resource "google_sql_database_instance" "main" {
  #checkov:skip=CKV_GCP_6:ssl_mode ENCRYPTED_ONLY refuses every unencrypted connection, which is what CKV_GCP_6 is about; checkov accepts only TRUSTED_CLIENT_CERTIFICATE_REQUIRED for PostgreSQL, which would break clients connecting directly to the private IP and add per-client certificates to rotate. Clients authenticate with a password over TLS or through the Cloud SQL Auth Proxy with IAM.
  #checkov:skip=CKV_GCP_79:PostgreSQL 15 is the version the service is built and tested against (supported by Cloud SQL into 2027); a major upgrade is a planned, tested change, not something a scanner should push.
  #checkov:skip=CKV_GCP_108:log_hostname makes PostgreSQL reverse-resolve every client at connect time; pod addresses have no PTR records, so each new connection would wait on DNS. log_connections already records the client IP.
  #checkov:skip=CKV_GCP_110:pgaudit needs CREATE EXTENSION in the database and Data Access audit logs to be useful; the flag alone records nothing. Schema changes are logged by log_statement=ddl and the single application user holds no grant rights.
  #checkov:skip=CKV2_GCP_13:log_duration writes one log line per statement; at the load the service is benchmarked with that is gigabytes of Cloud Logging a day. Query Insights records statement latency without it.

  name                = var.sql_instance_name
  region              = var.region
  database_version    = "POSTGRES_15"
  deletion_protection = var.deletion_protection

  settings {
    # db-f1-micro and the other shared-core tiers exist only in ENTERPRISE.
    edition           = "ENTERPRISE"
    tier              = var.sql_tier
    availability_type = var.sql_availability_type
    activation_policy = var.sql_activation_policy

    deletion_protection_enabled = var.deletion_protection

    disk_type             = "PD_SSD"
    disk_size             = var.sql_disk_size_gb
    disk_autoresize       = true
    disk_autoresize_limit = var.sql_disk_autoresize_limit_gb

    user_labels = var.labels

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = google_compute_network.vpc.id
      enable_private_path_for_google_cloud_services = false
      ssl_mode                                      = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      start_time                     = "02:00"
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = 14
        retention_unit   = "COUNT"
      }
    }

    # Sunday 03:00 UTC, outside the GKE weekend window's busiest hours.
    maintenance_window {
      day          = 7
      hour         = 3
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      query_string_length     = 1024
      record_application_tags = true
      record_client_address   = false
    }

    # Pinned so the connection budget in variables.tf is the real limit, not a
    # tier default that changes when the tier does.
    database_flags {
      name  = "max_connections"
      value = tostring(var.sql_max_connections)
    }

    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }

    database_flags {
      name  = "log_connections"
      value = "on"
    }

    database_flags {
      name  = "log_disconnections"
      value = "on"
    }

    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }

    database_flags {
      name  = "log_min_messages"
      value = "warning"
    }

    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }

    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }

    database_flags {
      name  = "log_temp_files"
      value = "0"
    }

    database_flags {
      name  = "log_statement"
      value = "ddl"
    }

    database_flags {
      name  = "log_executor_stats"
      value = "off"
    }

    database_flags {
      name  = "log_parser_stats"
      value = "off"
    }

    database_flags {
      name  = "log_planner_stats"
      value = "off"
    }

    database_flags {
      name  = "log_statement_stats"
      value = "off"
    }
  }

  depends_on = [google_service_networking_connection.private_service_access]
}

resource "google_sql_database" "app" {
  name     = var.db_name
  instance = google_sql_database_instance.main.name
}

# Generated here so no password is ever typed, stored in tfvars or committed.
# Only [-_] as specials: the value is also used inside DATABASE_URL.
resource "random_password" "db" {
  length           = 32
  special          = true
  override_special = "-_"
  min_lower        = 4
  min_upper        = 4
  min_numeric      = 4
}

resource "google_sql_user" "app" {
  name     = var.db_user
  instance = google_sql_database_instance.main.name
  password = random_password.db.result
  # PostgreSQL refuses to drop a role that owns tables; the instance going
  # away removes the role anyway.
  deletion_policy = "ABANDON"
}

resource "google_secret_manager_secret" "db_password" {
  secret_id = var.db_password_secret_id

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_version" "db_password" {
  secret      = google_secret_manager_secret.db_password.id
  secret_data = random_password.db.result
}
