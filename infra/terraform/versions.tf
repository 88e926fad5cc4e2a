terraform {
  # 1.9 is the first release whose variable validations may refer to other
  # variables, which the connection-budget check in variables.tf relies on.
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.x with control_plane_endpoints_config (the DNS-based endpoint) and
      # disable_metric_validation on PromQL alert conditions.
      version = "~> 6.20"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # The bucket is per project, so it is given at init time:
  #   terraform init -backend-config="bucket=<project>-tfstate"
  # State holds the generated database password: the bucket must stay private.
  backend "gcs" {
    prefix = "cme/terraform"
  }
}

provider "google" {
  project        = var.project_id
  region         = var.region
  default_labels = var.labels
}
