# Alerting on the Managed Prometheus series the service exports, and an uptime
# check on /health through the load balancer once its address is known.

locals {
  ns = var.k8s_namespace

  # Application series carry the Prometheus label "namespace"; GKE system
  # metrics (kubernetes_io:*) carry "namespace_name".
  prometheus_alerts = {
    latency_p99 = {
      display_name = "cme p99 latency above 1 s for 5 min"
      severity     = "WARNING"
      duration     = "300s"
      query        = "histogram_quantile(0.99, sum by (le) (rate(request_latency_seconds_bucket{namespace=\"${local.ns}\"}[2m]))) > 1"
      runbook      = "p99 of request_latency_seconds stayed above 1 s for 5 minutes. Check Cloud SQL CPU and Query Insights, pod CPU throttling, and whether the HPA is at its maximum."
    }
    error_ratio_5xx = {
      display_name = "cme 5xx ratio above 5 % over 5 min"
      severity     = "CRITICAL"
      duration     = "0s"
      query        = "sum(rate(http_requests_total{namespace=\"${local.ns}\",status=~\"5..\"}[5m])) / sum(rate(http_requests_total{namespace=\"${local.ns}\"}[5m])) > 0.05"
      runbook      = "More than 5 % of responses in the last 5 minutes were 5xx. 503s with Retry-After mean the database is unreachable: check /db-check and the Cloud SQL instance; other 5xx are bugs: check the pod logs."
    }
    pod_restarts = {
      display_name = "cme containers restarted more than 3 times in 10 min"
      severity     = "WARNING"
      duration     = "0s"
      query        = "sum(increase(kubernetes_io:container_restart_count{monitored_resource=\"k8s_container\",namespace_name=\"${local.ns}\"}[10m])) > 3"
      runbook      = "Containers in the namespace restarted more than 3 times in 10 minutes: a crash loop or failing liveness probe. kubectl -n ${local.ns} describe pods; check OOMKilled and the previous container's logs."
    }
    cpu_over_request = {
      display_name = "cme CPU above 70 % of request for 10 min"
      severity     = "WARNING"
      duration     = "600s"
      query        = "avg(kubernetes_io:container_cpu_request_utilization{monitored_resource=\"k8s_container\",namespace_name=\"${local.ns}\",container_name=\"${var.k8s_app_container}\"}) > 0.7"
      runbook      = "Average CPU of the app containers stayed above 70 % of the request for 10 minutes, so the HPA is at its maximum or cannot keep up. Raise the HPA maximum (mind the database connection budget) or the CPU request."
    }
  }

  uptime_enabled = var.uptime_check_host != ""
}

resource "google_monitoring_notification_channel" "email" {
  display_name = "cme alerts (email)"
  type         = "email"

  labels = {
    email_address = var.alert_email
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "prometheus" {
  for_each = local.prometheus_alerts

  display_name          = each.value.display_name
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = [google_monitoring_notification_channel.email.id]

  conditions {
    display_name = each.value.display_name

    condition_prometheus_query_language {
      query               = each.value.query
      duration            = each.value.duration
      evaluation_interval = "60s"
      rule_group          = "cme"
      alert_rule          = each.key
      # The series appear only once the app is deployed and scraped, which is
      # after this apply; validation would reject the policy until then.
      disable_metric_validation = true
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    content   = each.value.runbook
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_uptime_check_config" "health" {
  count = local.uptime_enabled ? 1 : 0

  display_name = "cme /health"
  timeout      = "10s"
  period       = "60s"

  http_check {
    path           = "/health"
    port           = var.uptime_check_port
    request_method = "GET"
    use_ssl        = var.uptime_check_use_ssl
    validate_ssl   = var.uptime_check_use_ssl

    accepted_response_status_codes {
      status_class = "STATUS_CLASS_2XX"
    }
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = var.uptime_check_host
    }
  }
}

resource "google_monitoring_alert_policy" "uptime" {
  count = local.uptime_enabled ? 1 : 0

  display_name          = "cme /health failing from the internet"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = [google_monitoring_notification_channel.email.id]

  conditions {
    display_name = "/health uptime check failing"

    condition_threshold {
      filter          = "metric.type=\"monitoring.googleapis.com/uptime_check/check_passed\" AND metric.label.check_id=\"${google_monitoring_uptime_check_config.health[0].uptime_check_id}\" AND resource.type=\"uptime_url\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "120s"

      # More than one checker region failing, so one flaky region is not a page.
      aggregations {
        alignment_period     = "1200s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.*"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    content   = "The uptime check on http${var.uptime_check_use_ssl ? "s" : ""}://${var.uptime_check_host}:${var.uptime_check_port}/health fails from more than one region. Check the Service's external IP, the pods' readiness and the load balancer."
    mime_type = "text/markdown"
  }
}
