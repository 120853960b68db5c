#!/usr/bin/env bash
# A standalone Spark cluster on loopback, from the pyspark wheel's own spark-class: one Master
# and WORKERS Workers, for trying dicomsql (and its benchmarks) on real executors.
#
#   benchmarks/cluster.sh start [WORKERS [CORES [MEMORY]]]   # default 2 Workers of 1 core, 1g
#   .venv/bin/dicomsql serve --master spark://127.0.0.1:7077
#   benchmarks/cluster.sh stop
#
# Everything binds 127.0.0.1 (SPARK_LOCAL_IP), the web UIs on free ports. State, logs and the
# executors' work folders are in $DICOMSQL_CLUSTER_DIR (default ~/.dicomsql-cluster), created
# 0700: executors' output can quote data. PYTHON (default .venv/bin/python) names the
# interpreter whose pyspark runs the cluster; executors run the driver's Python.
#
# The Master takes applications from any local user (no spark.authenticate): for a machine
# of one user. A shared machine or a real cluster needs Spark's own authentication.
set -euo pipefail
umask 077

python=${PYTHON:-.venv/bin/python}
state=${DICOMSQL_CLUSTER_DIR:-$HOME/.dicomsql-cluster}
port=${SPARK_MASTER_PORT:-7077}
master_url="spark://127.0.0.1:$port"
export SPARK_LOCAL_IP=127.0.0.1
SPARK_HOME=$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME

daemon() {  # daemon NAME CLASS ARGS...: start a Spark daemon in the background, pid in $state
    local name=$1
    shift
    nohup "$SPARK_HOME/bin/spark-class" "$@" >"$state/logs/$name.log" 2>&1 &
    echo $! >"$state/$name.pid"
}

wait_for() {  # wait_for LOG PATTERN COUNT: until LOG has COUNT lines matching PATTERN (60 s)
    local found
    for _ in $(seq 600); do
        found=$(grep -c -- "$2" "$1" 2>/dev/null || true)
        if [ "${found:-0}" -ge "$3" ]; then return 0; fi
        if ! kill -0 "$(cat "$state/master.pid")" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "cluster.sh: no '$2' in $1 (see the logs there)" >&2
    return 1
}

start() {
    local workers=${1:-2} cores=${2:-1} memory=${3:-1g}
    local pid_file
    for pid_file in "$state"/*.pid; do
        if [ -e "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
            echo "cluster.sh: a cluster runs already ($state); stop it first" >&2
            exit 1
        fi
    done
    mkdir -p "$state/logs" "$state/work"
    chmod 700 "$state"
    rm -f "$state"/*.pid
    trap stop ERR  # a Master or Worker that did not come up: stop the others
    daemon master org.apache.spark.deploy.master.Master \
        --host 127.0.0.1 --port "$port" --webui-port 0
    wait_for "$state/logs/master.log" "Starting Spark master at $master_url" 1
    for i in $(seq "$workers"); do
        daemon "worker-$i" org.apache.spark.deploy.worker.Worker "$master_url" \
            --host 127.0.0.1 --cores "$cores" --memory "$memory" \
            --work-dir "$state/work/$i" --webui-port 0
    done
    wait_for "$state/logs/master.log" "Registering worker" "$workers"
    trap - ERR
    echo "$master_url: $workers Workers of $cores core(s) and $memory; logs in $state/logs"
}

stop() {  # each daemon: SIGTERM, then SIGKILL after 30 s; a pid that is no Spark daemon is left
    local pid_file pid
    for pid_file in "$state"/worker-*.pid "$state"/master.pid; do
        [ -e "$pid_file" ] || continue
        pid=$(cat "$pid_file")
        if ps -o args= -p "$pid" 2>/dev/null | grep -q "org.apache.spark.deploy"; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 300); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pid_file"
    done
}

case "${1:-}" in
start) shift && start "$@" ;;
stop) stop ;;
*)
    echo "usage: $0 start [WORKERS [CORES [MEMORY]]] | stop" >&2
    exit 2
    ;;
esac
