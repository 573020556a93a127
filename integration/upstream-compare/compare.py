#!/usr/bin/env python3
"""Compare the Go and our alert outputs record by record.

usage: compare.py [case-prefix ...]        (default: every case with outputs)
Env:   NOOPF=1   leave opflags out of the record key (Go's exporter names some differently)
       SHOW=N    print N example differences per case (trimmed JSON of both sides)
       TRACES=stem-prefix[,..]   narrow the traces; CMP_OUT output root

Records of one trace are matched by key (type, ts, endts, proc.oid, proc.tid, file.path,
net addresses/ports/proto, k8s message, opflags) as multisets: for each key, the records of
both sides are paired, identical rule-id multisets (policies[].id) first; unpaired records are
only-go / only-rs, paired records with unequal rule-id multisets are "diff".
"""
import json
import os
import sys
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cases import cases, select_traces, out_paths, OUT  # noqa: E402

NOOPF = os.environ.get("NOOPF", "") not in ("", "0")
SHOW = int(os.environ.get("SHOW", "0") or 0)


def g(d, *path):
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def key(r):
    k = [r.get("type"), r.get("ts"), r.get("endts"), g(r, "proc", "oid"), g(r, "proc", "tid"),
         g(r, "file", "path"), g(r, "net", "sip"), g(r, "net", "sport"), g(r, "net", "dip"),
         g(r, "net", "dport"), g(r, "net", "proto"), g(r, "k8s", "message")]
    if not NOOPF:
        o = r.get("opflags")
        k.append(tuple(sorted(o)) if isinstance(o, list) else o)
    return tuple(json.dumps(x, sort_keys=True) if isinstance(x, (dict, list)) else x for x in k)


def rules(r):
    return tuple(sorted(str(p.get("id")) for p in (r.get("policies") or []) if isinstance(p, dict)))


def load(path):
    """-> (records or None if no file, parse-error count)"""
    if not os.path.exists(path):
        return None, 0
    recs, bad = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                recs.append(json.loads(line))
            except ValueError:
                bad += 1
    return recs, bad


def status(log):
    try:
        with open(log) as f:
            first = f.readline()
        return first.split()[0].split("=", 1)[1]
    except (OSError, IndexError):
        return "norun"


def trim(r):
    if r is None:
        return None
    t = {k: r.get(k) for k in ("type", "ts", "endts", "opflags", "ret") if k in r}
    if "proc" in r:
        t["proc"] = {k: r["proc"].get(k) for k in ("oid", "pid", "tid", "exe", "cmdline", "user", "tty", "entry")
                     if k in r["proc"]}
    if "pproc" in r:
        t["pproc"] = {k: r["pproc"].get(k) for k in ("exe", "cmdline") if k in r["pproc"]}
    for k in ("file", "net", "flow"):
        if k in r:
            t[k] = r[k]
    if "k8s" in r:
        t["k8s"] = {k: (v[:120] + "...") if isinstance(v, str) and len(v) > 120 else v for k, v in r["k8s"].items()}
    if "container" in r:
        t["container"] = {k: r["container"].get(k) for k in ("name", "image") if k in r["container"]}
    t["rules"] = list(rules(r))
    return json.dumps(t, sort_keys=False)


def loose(r):
    return (r.get("type"), r.get("ts"), g(r, "proc", "oid"))


def compare_trace(go, rs):
    """-> dict of counts and lists of examples"""
    res = Counter()
    ex = {"only-go": [], "only-rs": [], "diff": []}
    rules_go, rules_rs = Counter(), Counter()
    for r in go:
        rules_go.update(rules(r))
    for r in rs:
        rules_rs.update(rules(r))
    bg, br = defaultdict(list), defaultdict(list)
    for r in go:
        bg[key(r)].append(r)
    for r in rs:
        br[key(r)].append(r)
    lg, lr = defaultdict(list), defaultdict(list)  # loose index for "nearest" examples
    for r in go:
        lg[loose(r)].append(r)
    for r in rs:
        lr[loose(r)].append(r)
    res["go"], res["rs"] = len(go), len(rs)
    for k in set(bg) | set(br):
        a, b = list(bg.get(k, [])), list(br.get(k, []))
        # pair identical rule sets first
        rest_a = []
        for r in a:
            rr = rules(r)
            for i, s in enumerate(b):
                if rules(s) == rr:
                    del b[i]
                    res["same"] += 1
                    break
            else:
                rest_a.append(r)
        n = min(len(rest_a), len(b))
        res["diff"] += n
        for i in range(n):
            ex["diff"].append((rest_a[i], b[i]))
        res["common"] += len(a) - len(rest_a) + n
        for r in rest_a[n:]:
            res["only-go"] += 1
            near = [s for s in lr.get(loose(r), [])]
            ex["only-go"].append((r, near[0] if near else None))
        for s in b[n:]:
            res["only-rs"] += 1
            near = [r for r in lg.get(loose(s), [])]
            ex["only-rs"].append((near[0] if near else None, s))
    return res, ex, rules_go, rules_rs


def main():
    prefixes = sys.argv[1:]
    sel = [c for c in cases() if not prefixes or any(c[0].startswith(p) for p in prefixes)]
    sel = [c for c in sel if os.path.isdir(os.path.join(OUT, c[0]))]
    ts = select_traces()
    hdr = "%-26s %7s %7s %7s %7s %7s %6s  %s" % ("case", "go", "rs", "common", "only-go", "only-rs", "diff", "status")
    print("key: %s" % ("without opflags (NOOPF=1)" if NOOPF else "with opflags"))
    rows = []
    details = []
    tot = Counter()
    for case, _, _ in sel:
        ctot = Counter()
        cg, cr = Counter(), Counter()
        st = {"go": Counter(), "rs": Counter()}
        per_trace = []
        examples = {"only-go": [], "only-rs": [], "diff": []}
        for stem, _ in ts:
            recs = {}
            for side in ("go", "rs"):
                out, log, _ = out_paths(case, side, stem)
                s = status(log)
                r, bad = load(out)
                if bad:
                    s += "+%dbadlines" % bad
                st[side][s] += 1
                recs[side] = r or []
            res, ex, rg, rr = compare_trace(recs["go"], recs["rs"])
            ctot.update(res)
            cg.update(rg)
            cr.update(rr)
            for k in examples:
                examples[k].extend((stem,) + e for e in ex[k])
            if res["only-go"] or res["only-rs"] or res["diff"]:
                per_trace.append("    %-34s go=%d rs=%d common=%d only-go=%d only-rs=%d diff=%d" % (
                    stem, res["go"], res["rs"], res["common"], res["only-go"], res["only-rs"], res["diff"]))
        tot.update(ctot)
        stat = "go[%s] rs[%s]" % tuple(" ".join("%s=%d" % kv for kv in sorted(st[s].items())) for s in ("go", "rs"))
        rows.append("%-26s %7d %7d %7d %7d %7d %6d  %s" % (
            case, ctot["go"], ctot["rs"], ctot["common"], ctot["only-go"], ctot["only-rs"], ctot["diff"], stat))
        d = []
        rd = [(k, cg[k], cr[k]) for k in sorted(set(cg) | set(cr)) if cg[k] != cr[k]]
        if per_trace or rd:
            d.append("== %s" % case)
            d.extend(per_trace)
            if rd:
                d.append("  per-rule counts that differ (go / rs):")
                d.extend("    %6d / %-6d %s" % (a, b, k) for k, a, b in rd)
            if SHOW:
                for kind in ("only-go", "only-rs", "diff"):
                    for stem, a, b in examples[kind][:SHOW]:
                        d.append("  [%s] %s" % (kind, stem))
                        d.append("    go: %s" % trim(a))
                        d.append("    rs: %s" % trim(b))
        details.extend(d)
    print(hdr)
    print("\n".join(rows))
    print("%-26s %7d %7d %7d %7d %7d %6d" % ("TOTAL", tot["go"], tot["rs"], tot["common"], tot["only-go"],
                                             tot["only-rs"], tot["diff"]))
    if details:
        print()
        print("\n".join(details))


if __name__ == "__main__":
    main()
