#!/usr/bin/env bash
# A team-style MLflow tracking server on this machine: PostgreSQL backend store (runs,
# params, metrics, registry) + a server-side artifact store, served on loopback.
#
#   tools/mlflow_server.sh start [DIR]   # start PostgreSQL and `mlflow server` in the background
#   tools/mlflow_server.sh stop  [DIR]   # stop both
#   MLFLOW_TRACKING_URI=http://127.0.0.1:5000 dvc repro   # log to it: no code change
#   make sweep STORAGE=postgresql+psycopg2://mlflow@127.0.0.1:5433/optuna   # a shared sweep study
#
# DIR (default .mlflow-server) holds the PostgreSQL cluster (pgdata/), the artifacts
# (artifacts/) and the logs. Ports: MLFLOW_PORT (5000), PG_PORT (5433). Needs the Debian
# package `postgresql` (its binaries under /usr/lib/postgresql/<version>/bin, or PGBIN).
# Run as root, PostgreSQL itself runs as the `postgres` user (it refuses to run as root).
set -euo pipefail

cmd=${1:-start}
dir=${2:-.mlflow-server}
port=${MLFLOW_PORT:-5000}
pgport=${PG_PORT:-5433}
pgbin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [[ -z "$pgbin" || ! -x "$pgbin/initdb" ]]; then
  echo "PostgreSQL not found: install the Debian package (apt-get install postgresql) or set PGBIN" >&2
  exit 1
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

as_pg() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    if [[ ! -s "$dir/pgdata/PG_VERSION" ]]; then
      mkdir -p "$dir/pgdata"
      [[ $(id -u) == 0 ]] && chown postgres "$dir/pgdata" "$dir"
      as_pg "$pgbin/initdb" -D "$dir/pgdata" -U mlflow --auth=trust -E UTF8 >"$dir/initdb.log"
    fi
    if ! as_pg "$pgbin/pg_ctl" -D "$dir/pgdata" status >/dev/null 2>&1; then
      as_pg "$pgbin/pg_ctl" -D "$dir/pgdata" -l "$dir/postgres.log" -w \
        -o "-p $pgport -k $dir/pgdata -c listen_addresses=127.0.0.1" start >/dev/null
    fi
    as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U mlflow mlflow 2>/dev/null || true
    as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U mlflow optuna 2>/dev/null || true  # sweeps' studies
    mkdir -p "$dir/artifacts"
    nohup mlflow server \
      --backend-store-uri "postgresql+psycopg2://mlflow@127.0.0.1:$pgport/mlflow" \
      --artifacts-destination "$dir/artifacts" \
      --host 127.0.0.1 --port "$port" --workers 1 >"$dir/mlflow.log" 2>&1 &
    echo $! >"$dir/mlflow.pid"
    for _ in $(seq 1 120); do
      if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
        echo "MLflow server: http://127.0.0.1:$port (backend postgresql://127.0.0.1:$pgport/mlflow, artifacts $dir/artifacts)"
        echo "Sweep storage: postgresql+psycopg2://mlflow@127.0.0.1:$pgport/optuna"
        exit 0
      fi
      if ! kill -0 "$(cat "$dir/mlflow.pid")" 2>/dev/null; then break; fi
      sleep 1
    done
    echo "mlflow server did not come up; see $dir/mlflow.log" >&2
    tail -n 20 "$dir/mlflow.log" >&2 || true
    exit 1
    ;;
  stop)
    if [[ -f "$dir/mlflow.pid" ]]; then
      pid=$(cat "$dir/mlflow.pid")
      pkill -TERM -P "$pid" 2>/dev/null || true
      kill "$pid" 2>/dev/null || true
      rm -f "$dir/mlflow.pid"
    fi
    as_pg "$pgbin/pg_ctl" -D "$dir/pgdata" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  *)
    echo "usage: $0 start|stop [DIR]" >&2
    exit 2
    ;;
esac
