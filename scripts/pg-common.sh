# The PostgreSQL client side that scripts/backup.sh and scripts/restore.sh share: sourced by
# them, not run. The sourcing script sets `script` (its name in messages) and `sqlite_refusal`
# (what it says to a SQLite DATABASE_URL) first.
# shellcheck shell=bash disable=SC2154  # script and sqlite_refusal: set by the sourcing script

fail() {
  echo "$script: $*" >&2
  exit 1
}

tool() {
  local path="${PG_BIN:+${PG_BIN%/}/}$1"
  command -v "$path" >/dev/null || fail "$1 not found${PG_BIN:+ in PG_BIN=$PG_BIN}: install the PostgreSQL client tools (Debian: apt-get install postgresql-client)"
  echo "$path"
}

percent_decode() {
  local text="${1//\\/\\\\}"
  printf '%b' "${text//%/\\x}"
}

# Sets `url` to a libpq URL without its password, and exports the password as PGPASSWORD:
# a command line is visible to every local user (ps), the environment only to this one.
# Parsed as SQLAlchemy parses the service's URL: the password runs up to the first "@".
libpq_url() {
  local given="$1" rest
  case "$given" in
    postgresql+psycopg://*) rest="${given#postgresql+psycopg://}" ;;
    postgresql://* | postgres://*) rest="${given#*://}" ;;
    sqlite*) fail "DATABASE_URL names a SQLite file: $sqlite_refusal" ;;
    *) fail "DATABASE_URL must start with postgresql://, postgres:// or postgresql+psycopg://" ;;
  esac
  if [[ "$rest" =~ ^([^:/@]*):([^@]*)@(.*)$ ]]; then
    if [[ -n "${BASH_REMATCH[2]}" ]]; then
      PGPASSWORD="$(percent_decode "${BASH_REMATCH[2]}")"
      export PGPASSWORD
    fi
    rest="${BASH_REMATCH[1]}@${BASH_REMATCH[3]}"
  fi
  # shellcheck disable=SC2034  # read by the sourcing script
  url="postgresql://$rest"
}
