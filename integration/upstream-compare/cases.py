"""Shared definitions for run.py and compare.py: policy cases, traces, output paths."""
import json
import os
from collections import Counter

UPSTREAM = os.environ.get("UPSTREAM", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../shared/upstream"))
POLICIES = os.path.join(UPSTREAM, "sf-processor/resources/policies")
INVENTORY = os.path.join(UPSTREAM, "derived/trace-inventory.json")
OUT = os.environ.get("CMP_OUT", "/tmp/cmp/out")


def cases():
    """Ordered list of (name, policy_path, sigma_config_or_None)."""
    P = POLICIES
    c = []
    ri = os.path.join(P, "runtimeintegrity")
    for f in sorted(os.listdir(ri)):
        if f.endswith(".yaml"):
            c.append(("ri-" + f[:-5], os.path.join(ri, f), None))
    c.append(("ri-dir", ri, None))
    c.append(("dist-dir", os.path.join(P, "distribution"), None))
    c.append(("dist-filter", os.path.join(P, "distribution/filter.yaml"), None))
    t = os.path.join(P, "tests")
    for f in sorted(os.listdir(t)):
        if f.endswith(".yaml"):
            c.append(("tests-" + f[:-5], os.path.join(t, f), None))
    c.append(("tests-dir", t, None))
    c.append(("sigma", os.path.join(P, "sigma/rules"), os.path.join(P, "sigma/config/sysflow.yml")))
    return c


def select_cases(prefixes):
    all_cases = cases()
    if not prefixes:
        return all_cases
    sel = [c for c in all_cases if any(c[0].startswith(p) for p in prefixes)]
    if not sel:
        raise SystemExit("no case matches %s; cases: %s" % (prefixes, " ".join(c[0] for c in all_cases)))
    return sel


def traces():
    """Ordered list of (stem, absolute_path) of the non-legacy traces; stems are unique
    (a basename used by several traces gets its parent directory as prefix)."""
    inv = json.load(open(INVENTORY))
    paths = [t["path"] for t in inv if not t.get("writer_schema_variant", "").startswith("legacy")]

    def base(p):
        b = os.path.basename(p)
        return b[:-3] if b.endswith(".sf") else b

    n = Counter(base(p) for p in paths)
    out = []
    for p in paths:
        s = base(p)
        if n[s] > 1:
            s = os.path.basename(os.path.dirname(p)) + "__" + s
        out.append((s, os.path.join(UPSTREAM, p)))
    assert len({s for s, _ in out}) == len(out)
    return out


def select_traces():
    """TRACES env (comma-separated stem prefixes) narrows the trace list."""
    ts = traces()
    f = [x for x in os.environ.get("TRACES", "").split(",") if x]
    if f:
        ts = [t for t in ts if any(t[0].startswith(x) for x in f)]
    return ts


def out_paths(case, side, stem):
    d = os.path.join(OUT, case, side)
    return (os.path.join(d, stem + ".json"), os.path.join(d, stem + ".log"),
            os.path.join(d, stem + ".pipeline.json"))
