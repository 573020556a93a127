#!/bin/sh
# The image's entry point. With arguments, they are sfprocessor's own. Without, the
# environment of upstream's image picks the run, so its compose files work unchanged:
#   DRIVER (file|socket), INPUT_PATH (trace, directory or socket path), CONFIG_PATH,
#   LOG_LEVEL, and METRICS (listen address of /metrics, e.g. 0.0.0.0:9464; off when unset).
set -e
if [ "$#" -gt 0 ]; then
  exec /usr/local/bin/sfprocessor "$@"
fi
set -- -log "${LOG_LEVEL:-info}" -driver "${DRIVER:-file}" -config "${CONFIG_PATH:-/etc/sfprocessor/pipeline.json}"
if [ -n "${METRICS:-}" ]; then
  set -- "$@" -metrics "$METRICS"
fi
exec /usr/local/bin/sfprocessor "$@" "${INPUT_PATH:-/data}"
