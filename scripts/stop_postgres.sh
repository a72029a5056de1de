#!/usr/bin/env bash
# Stops the private PostgreSQL cluster the bootstrap started (nothing to do with CLAIMSFLOW_DB_URL).
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"
[ -s "$LOCAL/pg-root" ] || exit 0
data="$(cat "$LOCAL/pg-root")/data"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
if [ -n "$bin" ] && $SUDO runuser -u postgres -- "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  $SUDO runuser -u postgres -- "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  echo "[stop] PostgreSQL stopped"
fi
