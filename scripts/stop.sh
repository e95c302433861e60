#!/usr/bin/env bash
# Stops the nodes started by scripts/run.sh: SIGTERM by recorded PID, then SIGKILL after 10 s.
set -uo pipefail
cd "$(dirname "$0")/.."
for pidfile in run/n*.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $(basename "$pidfile" .pid) (pid $pid)"
  fi
  rm -f "$pidfile"
done
