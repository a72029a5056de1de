#!/usr/bin/env bash
# Sets up everything claimsflow needs on a Debian machine, from nothing: the virtualenv with the pinned
# requirements, PostgreSQL with the hll extension (a private cluster under .local/, or the server named
# by CLAIMSFLOW_DB_URL), the databases, Airflow's metadata schema and the bundle's pools.
# Safe to re-run: every step checks what exists and does only what is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"
VENV="$ROOT/.venv"
PG_FIRST_PORT="${CLAIMSFLOW_PG_PORT:-55432}"
AIRFLOW_PORT="${CLAIMSFLOW_AIRFLOW_PORT:-8080}"
mkdir -p "$LOCAL"
chmod 711 "$LOCAL"  # traversable by the postgres user (cluster below), not listable

log() { printf '[bootstrap] %s\n' "$*"; }
die() { printf '[bootstrap] ERROR: %s\n' "$*" >&2; exit 1; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "not root and no sudo: run as root or install sudo"
  SUDO="sudo"
fi

as_postgres() { $SUDO runuser -u postgres -- "$@"; }  # the server tools refuse to run as root

APT_UPDATED=""
apt_install() {  # installs the named Debian packages that are not installed yet
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ -z "$APT_UPDATED" ]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

random_secret() { head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32; }

# ---------------------------------------------------------------------------------------------------
# 1. Python virtualenv with the pinned requirements (reinstalled only when the pins change).
step_venv() {
  command -v python3 >/dev/null || apt_install python3
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    python3 -m venv "$VENV" 2>/dev/null || { rm -rf "$VENV"; apt_install python3-venv; python3 -m venv "$VENV"; }
  fi
  local want have
  want="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | sha256sum | cut -c1-16)"
  have="$(cat "$VENV/.claimsflow-requirements" 2>/dev/null || true)"
  if [ "$want" != "$have" ]; then
    log "installing pinned requirements (requirements-dev.txt)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements-dev.txt"
    echo "$want" >"$VENV/.claimsflow-requirements"
  else
    log "virtualenv up to date"
  fi
}

# ---------------------------------------------------------------------------------------------------
# 2. Command-line tools the bundle calls: readstat writes the sandbox's SAS7BDAT files (pyreadstat
#    reads SAS7BDAT but cannot write it).
step_tools() {
  command -v readstat >/dev/null || apt_install readstat
  command -v curl >/dev/null || apt_install curl
}

# ---------------------------------------------------------------------------------------------------
# 3. PostgreSQL + hll.
pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# The postgres system user runs the server (initdb refuses root), so the cluster must sit where that
# user can reach it; a checkout under /root is not, and a unix socket path must stay under ~100 bytes.
choose_pg_root() {
  local candidate="$LOCAL/pg" fallback
  fallback="/var/tmp/claimsflow-pg-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
  if [ -e "$LOCAL/pg-root" ]; then cat "$LOCAL/pg-root"; return; fi
  if as_postgres test -x "$LOCAL" 2>/dev/null && [ ${#candidate} -lt 80 ]; then
    echo "$candidate"
  else
    echo "$fallback"
  fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The private cluster is an analytics server fed in bulk (COPY, CREATE TABLE AS, index builds):
# - wal_level minimal: a table or index created in the same transaction that fills it is written
#   without WAL and synced at commit (still crash-safe; no replication or point-in-time recovery,
#   which this private cluster does not offer anyway); cuts the Hop Teaming checks by ~20 %;
# - max_wal_size 4GB: fewer checkpoints during long loads.
PG_SETTINGS="# written by scripts/bootstrap.sh: edits here are replaced on the next bootstrap
wal_level = minimal
max_wal_senders = 0
max_wal_size = 4GB"

step_postgres_managed() {
  if [ -z "$(pg_bindir)" ]; then apt_install postgresql postgresql-contrib; fi
  local bin ver pgroot data port
  bin="$(pg_bindir)"
  ver="$(basename "$(dirname "$bin")")"
  apt_install "postgresql-$ver-hll"
  id postgres >/dev/null 2>&1 || die "the postgres system user is missing (is the postgresql package installed?)"

  pgroot="$(choose_pg_root)"
  echo "$pgroot" >"$LOCAL/pg-root"
  data="$pgroot/data"
  $SUDO mkdir -p "$pgroot/run"
  $SUDO chown postgres: "$pgroot" "$pgroot/run"
  $SUDO chmod 700 "$pgroot"
  [ -s "$LOCAL/pg-superuser.password" ] || (umask 077; random_secret >"$LOCAL/pg-superuser.password")
  [ -s "$LOCAL/pg-claimsflow.password" ] || (umask 077; random_secret >"$LOCAL/pg-claimsflow.password")

  if [ ! -s "$data/PG_VERSION" ]; then
    log "initialising a private PostgreSQL $ver cluster in $data"
    $SUDO install -o postgres -m 600 "$LOCAL/pg-superuser.password" "$pgroot/pwfile"
    as_postgres "$bin/initdb" -D "$data" -U postgres -A scram-sha-256 --pwfile="$pgroot/pwfile" \
      -E UTF8 --locale=C >"$LOCAL/initdb.log"
    $SUDO rm -f "$pgroot/pwfile"
  fi

  if [ -s "$LOCAL/pg-port" ]; then
    port="$(cat "$LOCAL/pg-port")"
  else
    port="$PG_FIRST_PORT"
    while ! port_free "$port"; do port=$((port + 1)); done
    echo "$port" >"$LOCAL/pg-port"
  fi

  # Server settings for bulk work, in their own file that postgresql.conf includes. A change restarts a
  # running server (wal_level needs it).
  local conf="$data/claimsflow.conf" restart=""
  if [ "$(as_postgres cat "$conf" 2>/dev/null)" != "$PG_SETTINGS" ]; then
    printf '%s\n' "$PG_SETTINGS" | as_postgres tee "$conf" >/dev/null
    as_postgres grep -q "^include_if_exists = 'claimsflow.conf'" "$data/postgresql.conf" \
      || printf "\ninclude_if_exists = 'claimsflow.conf'\n" | as_postgres tee -a "$data/postgresql.conf" >/dev/null
    restart=1
  fi

  # pg_ctl start and restart: the same server options and log
  pg_ctl_run() { as_postgres "$bin/pg_ctl" -D "$data" -l "$pgroot/server.log" -w -t 60 \
    -o "-p $port -k $pgroot/run -c listen_addresses=127.0.0.1" "$@" >/dev/null; }
  if as_postgres "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    if [ -n "$restart" ]; then
      log "restarting PostgreSQL on 127.0.0.1:$port for the new settings in $conf"
      pg_ctl_run -m fast restart || die "PostgreSQL did not restart; see $pgroot/server.log"
    fi
    log "PostgreSQL running on 127.0.0.1:$port"
  else
    port_free "$port" || die "port $port is taken by another server: set CLAIMSFLOW_PG_PORT or free it (rm $LOCAL/pg-port to pick anew)"
    log "starting PostgreSQL on 127.0.0.1:$port"
    pg_ctl_run start || die "PostgreSQL did not start; see $pgroot/server.log"
  fi
  local supw
  supw="$(cat "$LOCAL/pg-superuser.password")"
  "$VENV/bin/python" "$ROOT/scripts/provision_db.py" \
    --admin-url "postgresql://postgres:$supw@127.0.0.1:$port/postgres" \
    --app-password-file "$LOCAL/pg-claimsflow.password" --airflow-port "$AIRFLOW_PORT"
}

step_postgres() {
  if [ -n "${CLAIMSFLOW_DB_URL:-}" ]; then
    log "using the PostgreSQL server named by CLAIMSFLOW_DB_URL"
    "$VENV/bin/python" "$ROOT/scripts/provision_db.py" --db-url "$CLAIMSFLOW_DB_URL" \
      ${CLAIMSFLOW_AIRFLOW_DB_URL:+--airflow-db-url "$CLAIMSFLOW_AIRFLOW_DB_URL"} --airflow-port "$AIRFLOW_PORT"
  else
    step_postgres_managed
  fi
}

# ---------------------------------------------------------------------------------------------------
# 4. Airflow metadata schema and pools, for both profiles (dev: demo/UI; test: the pytest suite).
step_airflow() {
  local profile
  for profile in dev test; do
    (
      eval "$("$VENV/bin/python" "$ROOT/scripts/localenv.py" exports --profile "$profile")"
      mkdir -p "$AIRFLOW_HOME"
      cd "$AIRFLOW_HOME"
      if "$VENV/bin/airflow" db check-migrations -t 0 >/dev/null 2>&1; then
        log "Airflow metadata database ($profile) up to date"
      else
        log "migrating the Airflow metadata database ($profile)"
        "$VENV/bin/airflow" db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 \
          || { tail -n 30 "$AIRFLOW_HOME/db-migrate.log" >&2; die "airflow db migrate failed ($profile)"; }
      fi
      "$VENV/bin/airflow" pools import "$ROOT/config/pools.json" >/dev/null
      log "pools imported ($profile): $(tr -d '\n ' <"$ROOT/config/pools.json" | grep -o '"[a-z_]*":{"slots' | cut -d'"' -f2 | paste -sd, -)"
    )
  done
}

started=$(date +%s)
step_venv
step_tools
step_postgres
step_airflow
log "ready in $(( $(date +%s) - started )) s"
