#!/bin/bash
# Usage: run-go.sh POLICY_PATH TRACE OUT_JSON [SIGMA_CONFIG_PATH]
# Writes a pipeline.json (sysflowreader/flattener -> policyengine (alert) ->
# exporter file/json) next to OUT_JSON and runs the Go sf-processor 0.7.0 on TRACE.
# Env: SFPROCESSOR (the Go binary, required), SFP_LOG (log level, default info),
#      PIPELINE_JSON (where to write the pipeline config, default OUT_JSON.pipeline.json).
set -euo pipefail
if [ $# -lt 3 ] || [ $# -gt 4 ]; then
  echo "usage: $0 POLICY_PATH TRACE OUT_JSON [sigma-config-path]" >&2; exit 2
fi
bin=${SFPROCESSOR:?set SFPROCESSOR to the Go sf-processor 0.7.0 binary}
abs() { python3 -c 'import os,sys; print(os.path.abspath(sys.argv[1]))' "$1"; }
policies=$(abs "$1"); trace=$(abs "$2"); out=$(abs "$3")
sigma=${4:+$(abs "$4")}
pipeline=${PIPELINE_JSON:-$out.pipeline.json}
mkdir -p "$(dirname "$out")" "$(dirname "$pipeline")"
rm -f "$out"
python3 - "$policies" "$out" "$sigma" > "$pipeline" <<'PY'
import json, sys
policies, out, sigma = sys.argv[1], sys.argv[2], sys.argv[3]
pe = {"processor": "policyengine", "in": "flat flattenerchan", "out": "evt eventchan",
      "policies": policies, "mode": "alert", "concurrency": "1"}
if sigma:
    pe["language"] = "sigma"
    pe["config"] = sigma
conf = {
  "drivers": [{"driver": "file", "out": "sysflow sysflowchan"}],
  "pipeline": [
    {"processor": "sysflowreader", "handler": "flattener",
     "in": "sysflow sysflowchan", "out": "flat flattenerchan"},
    pe,
    {"processor": "exporter", "in": "evt eventchan",
     "export": "file", "format": "json", "file.path": out,
     # sf-processor 0.7.0 always parses the Kafka exporter settings and fails
     # without them, even for "export": "file"; these are never used.
     "kafka.config": {"bootstrap.servers": "localhost:9092"},
     "kafka.topic": "sysflow"},
  ],
}
json.dump(conf, sys.stdout, indent=2)
print()
PY
cd "$(dirname "$pipeline")"
exec "$bin" -log "${SFP_LOG:-info}" -config "$pipeline" "$trace"
