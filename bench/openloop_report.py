#!/usr/bin/env python3
"""Prints bench/peers.sh's open-loop table: stampede-agent beside wrk2 at fixed rates (CPU per
request, served vs asked, corrected p50), the highest rate each held within 1% on one core, and
many connections to a 1 s target (RSS, time to rate). Reads the records peers_report.py wrote
(records.jsonl) and, for RSS and the agent's per-second lines, the runs' own files. Medians over
the repetitions; the ratio column is the median of the paired ratios (rep i of one tool over rep i
of the other). Exit code 0, or 1 when the records are missing or unreadable."""
import argparse
import json
import os
import re
import statistics
import sys


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def load(path):
    recs = []
    with open(path) as f:
        for line in f:
            if line.strip():
                recs.append(json.loads(line))
    return recs


def asked(rec, rate, duration_s):
    return rate * duration_s


def per_request_us(rec):
    return rec["gen_cpu_s"] * 1e6 / rec["requests"] if rec["requests"] else None


def first_second_at_rate(err_text, rate):
    """The first per-second line of the agent whose achieved rate is within 1% of rate."""
    for m in re.finditer(r"^\[\s*(\d+)s\]\s+target\s+[\d.]+ rps\s+achieved\s+(\d+) rps", err_text,
                         re.M):
        if int(m.group(2)) >= 0.99 * rate:
            return int(m.group(1))
    return None


def rss_kb(path):
    try:
        with open(path) as f:
            m = re.search(r"rss_kb (\d+)", f.read())
            return int(m.group(1)) if m else None
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", required=True)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--rates", required=True)
    ap.add_argument("--peak-rates", required=True)
    ap.add_argument("--many-rate", type=int, required=True)
    ap.add_argument("--many-conns", type=int, required=True)
    ap.add_argument("--many-duration", type=int, required=True)
    ap.add_argument("--json-out")
    a = ap.parse_args()
    try:
        recs = load(a.records)
    except (OSError, ValueError) as e:
        sys.stderr.write("openloop_report: %s: %s\n" % (a.records, e))
        return 1
    rates = [int(x) for x in a.rates.split(",")]
    peak_rates = sorted(set(rates + [int(x) for x in a.peak_rates.split(",")]))
    tools = ["agent-fast", "wrk2"]

    def runs(section, tool):
        return sorted((r for r in recs if r["section"] == section and r["tool"] == tool),
                      key=lambda r: r["rep"])

    out = {"rates": [], "peak": {}, "many": {}}
    print("\nOpen loop, 100 connections, one core each (medians; CPU = user + system of the "
          "generator)")
    print("%-8s %-11s %12s %10s %12s %10s %12s" % ("rate", "tool", "CPU us/req", "served",
                                                   "vs asked", "p50 ms", "CPU vs wrk2"))
    for rate in peak_rates:
        section = "open%d" % rate
        st, w2 = runs(section, "agent-fast"), runs(section, "wrk2")
        for tool, rs in (("agent-fast", st), ("wrk2", w2)):
            if not rs:
                continue
            dur = [r["wall_s"] for r in rs]
            served = median([r["requests"] / r["wall_s"] if tool == "wrk2" else r["rps"]
                             for r in rs])
            vs = median([(r["requests"] / (rate * r.get("duration_s", 0)) if tool != "wrk2"
                          else None) for r in rs])
            if tool == "wrk2":
                # wrk2 reports its requests over its own measured time; asked = rate x that time.
                vs = median([r["rps"] / rate for r in rs])
                served = median([r["rps"] for r in rs])
            cpu = median([per_request_us(r) for r in rs])
            ratio = None
            if tool == "agent-fast" and w2:
                ratio = median([per_request_us(x) / per_request_us(y) for x, y in zip(st, w2)])
            row = {"rate": rate, "tool": tool, "cpu_us_per_request": cpu, "served_rps": served,
                   "served_vs_asked": vs, "p50_ms": median([r.get("p50_ms") for r in rs]),
                   "cpu_vs_wrk2": ratio, "reps": len(rs), "wall_s": median(dur)}
            out["rates"].append(row)
            print("%-8d %-11s %12s %10s %12s %10s %12s" % (
                rate, tool, fmt(cpu, ".2f"), fmt(served, ",.0f"), fmt(vs, ".4f"),
                fmt(row["p50_ms"], ".3f"), fmt(ratio, ".2f")))
    print("\nHighest rate held within 1% (median served / asked >= 0.99):")
    for tool in tools:
        held = [row["rate"] for row in out["rates"] if row["tool"] == tool and
                row["served_vs_asked"] is not None and row["served_vs_asked"] >= 0.99]
        if any(row["tool"] == tool for row in out["rates"]):
            out["peak"][tool] = max(held) if held else None
            print("  %-11s %s rps (of %s tried)" % (tool, fmt(out["peak"][tool], ",d"),
                                                   ", ".join(str(r) for r in peak_rates)))
    print("\nMany connections: %d to a target answering in 1 s, %d rps for %d s:" % (
        a.many_conns, a.many_rate, a.many_duration))
    for tool in tools:
        rs = runs("many", tool)
        if not rs:
            continue
        rss = median([rss_kb(os.path.join(a.runs, "many.%s.%d.rss" % (tool, r["rep"])))
                      for r in rs])
        extra = median([r["wall_s"] - a.many_duration for r in rs])
        reach = None
        if tool == "agent-fast":
            texts = []
            for r in rs:
                try:
                    with open(os.path.join(a.runs, "many.%s.%d.err" % (tool, r["rep"]))) as f:
                        texts.append(f.read())
                except OSError:
                    texts.append("")
            reach = median([first_second_at_rate(t, a.many_rate) for t in texts])
        ok = median([r["requests"] for r in rs])
        out["many"][tool] = {"rss_kb": rss, "wall_beyond_duration_s": extra,
                             "first_second_at_rate": reach, "requests": ok,
                             "errors": median([r["errors"] for r in rs])}
        print("  %-11s RSS %s MB, wall time beyond the asked %d s: %s s, first second at rate: "
              "%s, requests %s, errors %s" % (
                  tool, fmt(rss / 1024 if rss else None, ".1f"), a.many_duration,
                  fmt(extra, ".1f"), "-" if reach is None else reach, fmt(ok, ",.0f"),
                  fmt(out["many"][tool]["errors"], ",.0f")))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(out, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
