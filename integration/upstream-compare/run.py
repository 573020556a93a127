#!/usr/bin/env python3
"""Run the Go reference and/or our sfprocessor on every (case, trace).

usage: run.py [--only go|rs] [--rs-extra JSON] [--rs-bin PATH] [--timeout S] [case-prefix ...]

Outputs: /tmp/cmp/out/<case>/{go,rs}/<trace-stem>.json (alerts, JSON lines),
         .../<trace-stem>.log (first line: "status=... rc=... secs=...", then the command
         and the stderr/stdout tail), .../<trace-stem>.pipeline.json.
status: ok | refused (ours: empty rule set in alert mode) | error | crash | timeout | nobin
Env: TRACES=stem-prefix[,..] to narrow the traces; CMP_OUT to change the output root.
Runs one processor at a time (sequential).
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cases import select_cases, select_traces, out_paths  # noqa: E402

GO_RUNNER = os.environ.get("GO_RUNNER", os.path.join(os.path.dirname(os.path.abspath(__file__)), "run-go.sh"))
RS_BIN = os.environ.get("RS_BIN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../target/release/sfprocessor"))


def rs_pipeline(policy, sigma, out, extra):
    pe = {"processor": "policyengine", "in": "flat flattenerchan", "out": "evt eventchan",
          "policies": policy, "mode": "alert", "concurrency": "1"}
    if sigma:
        pe["language"] = "sigma"
        pe["config"] = sigma
    pe.update(extra)
    return {
        "drivers": [{"driver": "file", "out": "sysflow sysflowchan"}],
        "pipeline": [
            {"processor": "sysflowreader", "handler": "flattener",
             "in": "sysflow sysflowchan", "out": "flat flattenerchan"},
            pe,
            {"processor": "exporter", "in": "evt eventchan", "export": "file",
             "format": "json", "file.path": out},
        ],
    }


def tail(b, n=30):
    s = b.decode("utf-8", "replace").splitlines()
    return "\n".join(s[-n:])


def classify(side, rc, err):
    if rc == 0:
        return "ok"
    if side == "rs" and "no enabled rule" in err:
        return "refused"
    if rc < 0 or rc == 101 or "panicked at" in err or ("goroutine " in err and "panic" in err):
        return "crash"
    return "error"


def run_one(side, case, policy, sigma, stem, trace, args):
    out, log, pipe = out_paths(case, side, stem)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    for p in (out, log):
        if os.path.exists(p):
            os.remove(p)
    env = dict(os.environ)
    if side == "go":
        cmd = [GO_RUNNER, policy, trace, out] + ([sigma] if sigma else [])
        env["SFP_LOG"] = "error"
        env["PIPELINE_JSON"] = pipe
    else:
        if not os.path.exists(args.rs_bin):
            with open(log, "w") as f:
                f.write("status=nobin rc=-1 secs=0\n%s missing\n" % args.rs_bin)
            return "nobin"
        with open(pipe, "w") as f:
            json.dump(rs_pipeline(policy, sigma, out, args.rs_extra), f, indent=2)
        cmd = [args.rs_bin, "-log", "error", "-config", pipe, trace]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=args.timeout)
        rc, so, se = p.returncode, p.stdout, p.stderr
        err = se.decode("utf-8", "replace")
        status = classify(side, rc, err)
    except subprocess.TimeoutExpired as e:
        rc, so, se, status = -999, e.stdout or b"", e.stderr or b"", "timeout"
    secs = time.time() - t0
    with open(log, "w") as f:
        f.write("status=%s rc=%d secs=%.2f\n" % (status, rc, secs))
        f.write("cmd: %s\n" % " ".join(cmd))
        f.write("--- stderr tail\n%s\n" % tail(se))
        if so.strip():
            f.write("--- stdout tail\n%s\n" % tail(so, 10))
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*", help="case-name prefixes (default: all)")
    ap.add_argument("--only", choices=["go", "rs"], help="run only one side")
    ap.add_argument("--rs-extra", default="{}", type=json.loads,
                    help="JSON object merged into our policyengine stage, e.g. '{\"quirks\":\"fixed\"}'")
    ap.add_argument("--rs-bin", default=RS_BIN)
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    sides = [args.only] if args.only else ["go", "rs"]
    cs = select_cases(args.cases)
    ts = select_traces()
    for side in sides:
        for case, policy, sigma in cs:
            t0 = time.time()
            st = {}
            for stem, trace in ts:
                s = run_one(side, case, policy, sigma, stem, trace, args)
                st[s] = st.get(s, 0) + 1
            print("%-3s %-28s %s  (%.0fs)" % (side, case, " ".join("%s=%d" % kv for kv in sorted(st.items())),
                                              time.time() - t0), flush=True)


if __name__ == "__main__":
    main()
