#!/usr/bin/env bash
# Smoke test of a running cme API: GET /health (liveness) and GET /db-check (database reachable)
# must both answer 200. Each is retried until SMOKE_TIMEOUT seconds have passed since the start,
# because a fresh load balancer or a pod that is still warming up answers late.
#
#   scripts/smoke.sh BASE_URL            e.g. scripts/smoke.sh https://api.example.com
#
# SMOKE_TIMEOUT   overall deadline in seconds (default 60)
# SMOKE_INTERVAL  pause between attempts in seconds (default 2)
# SMOKE_REQUIRE_HEADER  a response header both answers must carry, e.g. Strict-Transport-Security
#                 behind the HTTPS Gateway; a 200 without it counts as a failed attempt
# Exit status: 0 when both checks pass, 1 when one does not before the deadline, 2 on bad usage.
set -euo pipefail

usage() {
  echo "usage: $0 BASE_URL   (e.g. http://127.0.0.1:5000)" >&2
  exit 2
}

[[ $# -eq 1 && -n "$1" ]] || usage
base_url="${1%/}"
[[ "$base_url" =~ ^https?:// ]] || usage

timeout="${SMOKE_TIMEOUT:-60}"
interval="${SMOKE_INTERVAL:-2}"
required_header="${SMOKE_REQUIRE_HEADER:-}"
[[ "$timeout" =~ ^[0-9]+$ && "$interval" =~ ^[0-9]+$ ]] || {
  echo "smoke: SMOKE_TIMEOUT and SMOKE_INTERVAL must be whole seconds" >&2
  exit 2
}
[[ -z "$required_header" || "$required_header" =~ ^[A-Za-z0-9-]+$ ]] || {
  echo "smoke: SMOKE_REQUIRE_HEADER must be a header name" >&2
  exit 2
}
deadline=$((SECONDS + timeout))
body="$(mktemp)"
headers="$(mktemp)"
trap 'rm -f "$body" "$headers"' EXIT

# Prints the HTTP status of GET url ("000" when nothing answered) and keeps the body and the
# response headers; never fails.
status_of() {
  local url="$1" budget="$2"
  : >"$body"
  : >"$headers"
  curl --silent --output "$body" --dump-header "$headers" --write-out '%{http_code}' \
    --connect-timeout "$budget" --max-time "$budget" "$url" || true
}

# True when the last answer carries the required header (always, when none is required).
has_required_header() {
  [[ -z "$required_header" ]] || grep -qi "^${required_header}:" "$headers"
}

# Retries GET base_url+path until it answers 200 or the deadline passes.
check() {
  local path="$1" url="${base_url}$1" code="000" attempts=0 left budget
  while :; do
    left=$((deadline - SECONDS))
    if ((left <= 0)); then
      echo "smoke: FAIL ${url} answered ${code} (want 200${required_header:+ with ${required_header}})" \
        "after ${attempts} attempt(s) in ${timeout}s" >&2
      if [[ -s "$body" ]]; then
        echo "smoke: last response body: $(head -c 500 "$body")" >&2
      fi
      return 1
    fi
    budget=$((left < 5 ? left : 5))
    attempts=$((attempts + 1))
    code="$(status_of "$url" "$budget")"
    if [[ "$code" == "200" ]] && has_required_header; then
      echo "smoke: ok ${path} 200${required_header:+ with ${required_header}} (attempt ${attempts})"
      return 0
    fi
    if [[ "$code" == "200" ]]; then
      code="200 without ${required_header}"
    fi
    sleep "$((interval < left ? interval : left))"
  done
}

check /health
check /db-check
echo "smoke: ${base_url} is healthy"
