#!/usr/bin/env bash
# Starts or stops the Airflow services of `make airflow` (api-server, scheduler, dag-processor,
# triggerer; LocalExecutor on the local PostgreSQL). Expects the dev environment already exported
# (the Makefile does it). Safe to re-run: a service already running is left alone.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="$ROOT/.local/run"
LOGS="$AIRFLOW_HOME/logs/services"
AIRFLOW="$ROOT/.venv/bin/airflow"
SERVICES=(api-server scheduler dag-processor triggerer)
PORT="${AIRFLOW__API__PORT:-8080}"
mkdir -p "$RUN" "$LOGS"

running() { [ -s "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start() {
  local s
  for s in "${SERVICES[@]}"; do
    if running "$s"; then
      echo "[airflow] $s already running (pid $(cat "$RUN/$s.pid"))"
      continue
    fi
    if [ "$s" = api-server ]; then
      setsid "$AIRFLOW" api-server --port "$PORT" >"$LOGS/$s.log" 2>&1 &
    else
      setsid "$AIRFLOW" "$s" >"$LOGS/$s.log" 2>&1 &
    fi
    echo $! >"$RUN/$s.pid"
    echo "[airflow] started $s (pid $!, log $LOGS/$s.log)"
  done
  local i
  for i in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$PORT/api/v2/version" >/dev/null 2>&1; then break; fi
    for s in "${SERVICES[@]}"; do
      running "$s" || { tail -n 30 "$LOGS/$s.log" >&2; echo "[airflow] $s exited; see $LOGS/$s.log" >&2; exit 1; }
    done
    sleep 1
  done
  curl -fsS "http://127.0.0.1:$PORT/api/v2/version" >/dev/null 2>&1 || { echo "[airflow] the api-server did not answer on port $PORT within 120 s" >&2; exit 1; }
  local password="(see $AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE)"
  if [ -s "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" ]; then
    password="$("$ROOT/.venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"])' "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")"
  fi
  echo
  echo "Airflow is up: http://127.0.0.1:$PORT   login: admin / $password"
  echo "Stop it with: make stop"
}

stop() {
  local s pid
  for s in "${SERVICES[@]}"; do
    if running "$s"; then
      pid="$(cat "$RUN/$s.pid")"
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      echo "[airflow] stopped $s"
    fi
    rm -f "$RUN/$s.pid"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
