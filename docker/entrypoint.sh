#!/bin/sh
# Apply the CDR migrations when a database is configured, then run didrouter.
# Migrations take an advisory lock, so several replicas starting at once are safe.
set -eu
if [ "${1:-serve}" = "serve" ] && [ -n "${DIDROUTER_DSN:-}" ]; then
  tries=0
  until didrouter migrate; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
      echo "didrouter-entrypoint: database not reachable after $tries tries" >&2
      exit 1
    fi
    sleep 2
  done
fi
exec didrouter "$@"
