import json, sys, glob, statistics as st
def rows(d):
    out = {}
    for f in sorted(glob.glob(f"/tmp/val/{d}/sizes_*.json")):
        for r in json.load(open(f))["rows"]:
            out[(r["part"], r["gallery"], r["people"], r["draw"], r["task"])] = r
    return out
a, b = rows(sys.argv[1]), rows(sys.argv[2])
keys = ["steps", "blocks_used", "acc_f_after", "acc_r_change", "r_at_tau_change", "f_gap_low", "seconds"]
same = 0
for k in sorted(set(a) & set(b)):
    ra, rb = a[k], b[k]
    diff = any(ra[x] != rb[x] for x in keys[:-2]) or abs((ra.get("f_gap_low") or 0) - (rb.get("f_gap_low") or 0)) > 1e-4
    same += not diff
    if diff or "-v" in sys.argv:
        print(k, " | ".join(f"{x} {ra.get(x)!s:.6}->{rb.get(x)!s:.6}" for x in keys))
print(f"{same}/{len(set(a)&set(b))} identical (steps, blocks, accs, gap)")
for part in sorted({k[0] for k in a}):
    for lab, r in (("A", a), ("B", b)):
        rs = [v for k, v in r.items() if k[0] == part]
        if not rs: continue
        print(part, lab, "n", len(rs), "sec mean %.2f max %.2f" % (st.mean(x["seconds"] for x in rs), max(x["seconds"] for x in rs)),
              "gap min %.3f" % min(x["f_gap_low"] for x in rs if x.get("f_gap_low") is not None),
              "accf max %.3f" % max(x["acc_f_after"] for x in rs),
              "rtau min %.3f" % min(x["r_at_tau_change"] for x in rs),
              "accr min %.3f" % min(x["acc_r_change"] for x in rs))
print("gap_low per task: mean / count<0.15 / count<0.2")
for lab, r in (("A", a), ("B", b)):
    g = [v["f_gap_low"] for v in r.values() if v.get("f_gap_low") is not None]
    print(lab, "%.3f" % st.mean(g), sum(x < 0.15 for x in g), sum(x < 0.2 for x in g), len(g),
          "steps mean %.1f max %d" % (st.mean(v["steps"] for v in r.values()), max(v["steps"] for v in r.values())),
          "blocks max", max(v["blocks_used"] for v in r.values()))
