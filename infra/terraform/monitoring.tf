# Alerts, SLOs and a dashboard on the Managed Prometheus series the service
# exports, and (uptime_check_enabled) an uptime check on https://<domain>/health
# through the Gateway.

locals {
  ns = var.k8s_namespace

  # Every PromQL expression lives in infra/prometheus, where `promtool test rules`
  # evaluates it on synthetic series (tests/infra/test_prometheus_rules.py). The
  # files are written for namespace "cme" and container "app"; only those label
  # values change here.
  alert_rules     = yamldecode(file("${path.module}/../prometheus/alerts.yml")).groups[0].rules
  dashboard_rules = yamldecode(file("${path.module}/../prometheus/dashboard.yml")).groups[0].rules
  promql = {
    for rule in concat(local.alert_rules, local.dashboard_rules) : try(rule.alert, rule.record) => replace(
      replace(
        replace(rule.expr, "namespace=\"cme\"", "namespace=\"${local.ns}\""),
        "namespace_name=\"cme\"", "namespace_name=\"${local.ns}\""
      ),
      "container_name=\"app\"", "container_name=\"${var.k8s_app_container}\""
    )
  }

  # What each alert is called and where its runbook is (docs/operations/alerts.md).
  alert_titles = {
    availability_burn_fast     = "cme availability SLO: error budget burning 14.4x (1 h and 5 min)"
    availability_burn_slow     = "cme availability SLO: error budget burning 6x (6 h and 30 min)"
    latency_burn_fast          = "cme latency SLO: budget of requests over 300 ms burning 14.4x (1 h and 5 min)"
    latency_burn_slow          = "cme latency SLO: budget of requests over 300 ms burning 6x (6 h and 30 min)"
    latency_p99                = "cme p99 latency above 1 s for 5 min"
    error_ratio_5xx            = "cme 5xx ratio above 5 % over 5 min"
    pod_restarts               = "cme containers restarted more than 3 times in 10 min"
    cpu_over_request           = "cme CPU above 70 % of request for 10 min"
    webhook_endpoint_lagging   = "cme webhook endpoint more than 10 min behind for 10 min"
    webhook_deliveries_failing = "cme webhook deliveries: more than half not delivered over 15 min"
    webhook_endpoint_disabled  = "cme webhook endpoint disabled for 5 min: nothing is delivered to it"
  }
  runbook_base = "https://github.com/${var.github_repository}/blob/main/docs/operations/alerts.md"

  # A runbook's anchor is its heading in lower case, as GitHub and MkDocs make it.
  prometheus_alerts = {
    for rule in local.alert_rules : rule.alert => {
      display_name = local.alert_titles[rule.alert]
      severity     = upper(rule.labels.severity)
      duration     = try(rule["for"], "0s")
      query        = local.promql[rule.alert]
      runbook      = "${local.alert_titles[rule.alert]}. Runbook: ${local.runbook_base}#${lower(rule.alert)}"
    }
  }

  # The dashboard's charts, each from recording rules of infra/prometheus/dashboard.yml.
  dashboard_charts = [
    { title = "Requests per second by route", records = ["cme:http_requests:rate5m"] },
    { title = "5xx ratio", records = ["cme:http_errors:ratio_rate5m"] },
    { title = "p50 latency by route (s)", records = ["cme:request_latency:p50_by_route"] },
    { title = "p99 latency by route (s)", records = ["cme:request_latency:p99_by_route"] },
    { title = "Pods ready vs HPA desired and maximum", records = ["cme:pods:ready", "cme:hpa:desired_replicas", "cme:hpa:max_replicas"] },
    { title = "CPU cores per pod (app container)", records = ["cme:cpu_cores:by_pod"] },
    { title = "Memory per pod (app container, bytes)", records = ["cme:memory_bytes:by_pod"] },
    { title = "Database pool connections by state", records = ["cme:db_pool_connections:by_state"] },
    { title = "Reservations per second by outcome", records = ["cme:reservations:rate5m"] },
    { title = "Units held by reservations", records = ["cme:reservation_units_held:max"] },
    { title = "Webhook deliveries by outcome", records = ["cme:webhook_deliveries:rate5m"] },
    { title = "Webhook delivery lag", records = ["cme:webhook_delivery_lag_seconds:max_by_webhook"] },
    { title = "Webhook endpoints by status", records = ["cme:webhook_endpoints:max_by_status"] },
    { title = "Cloud SQL connections", records = ["cme:cloudsql_connections"] },
    { title = "Cloud SQL CPU utilization", records = ["cme:cloudsql_cpu_utilization"] },
  ]

  # Request-based SLIs on the same series, in Cloud Monitoring's filter language.
  prometheus_target = "resource.type=\"prometheus_target\" AND resource.label.namespace=\"${local.ns}\""
  requests_filter   = "metric.type=\"prometheus.googleapis.com/http_requests_total/counter\" AND ${local.prometheus_target}"

  uptime_enabled = var.uptime_check_enabled
}

resource "google_monitoring_custom_service" "cme" {
  service_id   = "cme-${local.ns}"
  display_name = "cme product catalogue API (${local.ns})"

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_slo" "availability" {
  service             = google_monitoring_custom_service.cme.service_id
  slo_id              = "availability"
  display_name        = "99.9 % of requests not 5xx over 28 days"
  goal                = 0.999
  rolling_period_days = 28

  request_based_sli {
    good_total_ratio {
      bad_service_filter   = "${local.requests_filter} AND metric.label.status=monitoring.regex.full_match(\"5..\")"
      total_service_filter = local.requests_filter
    }
  }
}

resource "google_monitoring_slo" "latency" {
  service             = google_monitoring_custom_service.cme.service_id
  slo_id              = "latency"
  display_name        = "99 % of requests answered within 300 ms over 28 days"
  goal                = 0.99
  rolling_period_days = 28

  request_based_sli {
    distribution_cut {
      # A long poll's latency is the wait its client asked for, not slowness.
      distribution_filter = "metric.type=\"prometheus.googleapis.com/request_latency_seconds/histogram\" AND ${local.prometheus_target} AND metric.label.long_poll=\"false\""
      range {
        max = 0.3
      }
    }
  }
}

resource "google_monitoring_dashboard" "cme" {
  dashboard_json = jsonencode({
    displayName = "cme (${local.ns})"
    mosaicLayout = {
      columns = 48
      tiles = [
        for i, chart in local.dashboard_charts : {
          xPos   = (i % 2) * 24
          yPos   = floor(i / 2) * 16
          width  = 24
          height = 16
          widget = {
            title = chart.title
            xyChart = {
              dataSets = [
                for record in chart.records : {
                  plotType        = "LINE"
                  legendTemplate  = record
                  timeSeriesQuery = { prometheusQuery = local.promql[record] }
                }
              ]
            }
          }
        }
      ]
    }
  })

  depends_on = [google_project_service.enabled]
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
    port           = 443
    request_method = "GET"
    use_ssl        = true
    validate_ssl   = true

    accepted_response_status_codes {
      status_class = "STATUS_CLASS_2XX"
    }
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = var.domain
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
    content   = "The uptime check on https://${var.domain}/health fails from more than one region. Check the Gateway (kubectl -n ${local.ns} describe gateway cme-gateway), the certificate (gcloud certificate-manager certificates describe ${google_certificate_manager_certificate.api.name}), the DNS A record and the pods' readiness."
    mime_type = "text/markdown"
  }
}
