#!/usr/bin/python3
"""bench/fields.py: reads an Artillery-shaped JSON report (from `cutover run -o`
or `artillery run -o`) and prints the numbers bench/run.sh needs as shell
assignments, one per line, safe for `eval`:

    requests created completed failed  (counters; 0 when absent)
    span_s        (lastCounterAt - firstCounterAt) / 1000, or "" when absent
    rt_p99 lag_p99 lag_max  (summaries http.response_time / cutover.arrival_lag;
                             "" when absent)
    errors        "name=count ..." of the errors.* counters, or ""

Usage: fields.py REPORT.json   (exit 1 with a message on an unreadable report)
Standard library only: run it with /usr/bin/python3.
"""
import json
import shlex
import sys


def num(v):
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


def main():
    if len(sys.argv) != 2:
        print("usage: fields.py REPORT.json", file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1], encoding="utf-8") as f:
            rep = json.load(f)
        agg = rep["aggregate"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        print("fields.py: %s: not a report: %s" % (sys.argv[1], e), file=sys.stderr)
        return 1
    counters = agg.get("counters") or {}
    summaries = agg.get("summaries") or {}
    out = {}
    for var, key in (("requests", "http.requests"), ("created", "vusers.created"),
                     ("completed", "vusers.completed"), ("failed", "vusers.failed")):
        out[var] = num(counters.get(key, 0))
    first, last = agg.get("firstCounterAt"), agg.get("lastCounterAt")
    if isinstance(first, (int, float)) and isinstance(last, (int, float)) and last > first:
        out["span_s"] = "%.3f" % ((last - first) / 1000.0)
    else:
        out["span_s"] = ""
    rt = summaries.get("http.response_time") or {}
    lag = summaries.get("cutover.arrival_lag") or {}
    out["rt_p99"] = num(rt.get("p99"))
    out["lag_p99"] = num(lag.get("p99"))
    out["lag_max"] = num(lag.get("max"))
    errs = sorted((k[len("errors."):], v) for k, v in counters.items()
                  if k.startswith("errors.") and v)
    out["errors"] = " ".join("%s=%s" % (k.replace(" ", "_"), num(v)) for k, v in errs)
    for k, v in out.items():
        print("%s=%s" % (k, shlex.quote(v)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
