#!/usr/bin/env bash
# `make bench`: cme against a FastAPI reference and a bare-ASGI floor under wrk, on this
# machine's PostgreSQL.
#
#   bash bench/run.sh                 the full run: table, start-up time, RSS, py-spy profiles
#   bash bench/run.sh run --scenarios get,post --duration 5     a subset (any bench.py option)
#   bash bench/run.sh soak --requests 1000000                   RSS per worker over a long run
#   bash bench/run.sh telemetry --scenarios health,get,post     metrics and access log on vs off
#   bash bench/run.sh ratelimit --scenarios get                 rate limits checked vs off
#   bash bench/run.sh tracing --scenarios get,post              traces at 10 % (--trace-ratio) vs off
#   bash bench/run.sh outbox --before-src /tmp/before/src       writes with the change feed vs before
#   bash bench/run.sh search --rows 1000000                     q against the first page
#   bash bench/run.sh baseline --baseline-src /path/to/main/src --scenarios post,put
#                                                               this tree against another's
#   bash bench/run.sh batch                                     products/s: POSTs vs batches
#
# BENCH_ADMIN_URL  the PostgreSQL server to use (default postgresql://postgres@127.0.0.1:5432/postgres);
#                  the run creates cme_bench_<random> there and drops it at the end, even on failure.
# DB_POOL_SIZE     connections per worker, for the three servers alike (default 5).
# FASTAPI_REF_MIDDLEWARE  the FastAPI reference's metrics middleware: asgi (default) or http.
# PYTHONPATH       set it to a patched copy's src/ to measure a change without editing the tree.
# Outputs go to bench/out/ (git-ignored): report.md, results.json, logs, wrk output, profiles.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=.venv
admin_url="${BENCH_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"

if ! command -v wrk >/dev/null; then
  echo "bench: installing wrk from Debian" >&2
  apt-get update -q && apt-get install -y -q wrk
fi
# The `bench` extra of pyproject.toml (py-spy, and FastAPI, pydantic, prometheus_client and
# psycopg_pool for the reference), at the versions of requirements/constraints.txt. Only the
# missing ones are installed, and the app itself is not reinstalled.
missing=$("$venv/bin/python" - <<'PY'
import importlib.metadata as metadata
import re
import tomllib

with open("pyproject.toml", "rb") as file:
    wanted = tomllib.load(file)["project"]["optional-dependencies"]["bench"]
for requirement in wanted:
    name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        print(requirement)
PY
)
if [[ -n "$missing" ]]; then
  echo "bench: installing ${missing//$'\n'/ }" >&2
  # shellcheck disable=SC2086  # one argument per requirement
  "$venv/bin/pip" install -q -c requirements/constraints.txt $missing
fi
# The service's own venv: its runtime dependencies only, as the image installs them.
service_venv="${BENCH_SERVICE_VENV:-bench/.venv-service}"
if [[ ! -x "$service_venv/bin/cme" ]]; then
  echo "bench: building $service_venv (runtime dependencies only)" >&2
  python3 -m venv "$service_venv"
fi
"$service_venv/bin/pip" install -q -c requirements/constraints.txt -e .
mkdir -p bench/out

mode=run
if [[ $# -gt 0 && ( "$1" == run || "$1" == soak || "$1" == telemetry || "$1" == ratelimit || "$1" == tracing || "$1" == outbox || "$1" == search || "$1" == baseline || "$1" == batch ) ]]; then
  mode="$1"
  shift
fi
database="cme_bench_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"

# bench.py drops its database itself; this trap is the safety net if it dies without unwinding.
drop_database() {
  psql "$admin_url" -qAt -c "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap drop_database EXIT

"$venv/bin/python" bench/bench.py "$mode" --database "$database" "$@"
