"""Reads what bench/peers.sh measured and reports it.

peers.sh runs every load generator itself and keeps each run's stdout, stderr and CPU accounting in
its temporary folder; this module turns them into figures. Two subcommands:

  record  parses one run's output in the tool's own format and prints one JSON line (appended by
          peers.sh to records.jsonl); exits 1 with a message when the output holds no figure or the
          tool reports errors it should not have.
  report  reads records.jsonl, takes medians over the repetitions, prints the tables on stdout and
          writes the JSON file (figures, every run, and the environment).

Standard library only; run by /usr/bin/python3.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys


class ParseError(Exception):
    pass


def _search(pattern, text, what, flags=re.M):
    m = re.search(pattern, text, flags)
    if not m:
        raise ParseError("no %s in the output" % what)
    return m


_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _ms(value, unit):
    return float(value) * _UNITS_S[unit] * 1000.0


# ---- one parser per tool: each returns a dict with at least requests, rps, errors ----


def parse_wrk(out, err):
    rps = float(_search(r"^Requests/sec:\s+([\d.]+)", out, "Requests/sec line").group(1))
    requests = int(_search(r"^\s*(\d+) requests in ", out, "request count").group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    rec = {"requests": requests, "rps": rps, "errors": errors}
    lat = dict(
        (int(p), _ms(v, u))
        for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M))
    if lat:
        rec["p50_ms"] = lat.get(50)
        rec["p99_ms"] = lat.get(99)
    return rec


def parse_hey(out, err):
    rps = float(_search(r"Requests/sec:\s+([\d.]+)", out, "Requests/sec line").group(1))
    by_status = [(int(s), int(n)) for s, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)]
    if not by_status:
        raise ParseError("no status code distribution in the output")
    requests = sum(n for _, n in by_status)
    errors = sum(n for s, n in by_status if not 200 <= s < 400)
    m = re.search(r"Error distribution:\n((?:\s+\[\d+\].*\n?)+)", out)
    if m:
        errors += sum(int(n) for n in re.findall(r"\[(\d+)\]", m.group(1)))
    rec = {"requests": requests, "rps": rps, "errors": errors}
    lat = dict((int(p), float(v) * 1000.0) for p, v in re.findall(r"(\d+)% in ([\d.]+) secs", out))
    if lat:
        rec["p50_ms"] = lat.get(50)
        rec["p99_ms"] = lat.get(99)
    return rec


def parse_ab(out, err):
    rps = float(_search(r"^Requests per second:\s+([\d.]+)", out, "Requests per second line")
                .group(1))
    requests = int(_search(r"^Complete requests:\s+(\d+)", out, "Complete requests line").group(1))
    errors = int(_search(r"^Failed requests:\s+(\d+)", out, "Failed requests line").group(1))
    m = re.search(r"^Non-2xx responses:\s+(\d+)", out, re.M)
    if m:
        errors += int(m.group(1))
    return {"requests": requests, "rps": rps, "errors": errors}


def parse_locust(out, err):
    # Locust logs its summary on stderr. The first "Aggregated" row with columns is the request
    # table: "Aggregated  <reqs>  <fails>(<pct>) | avg min max med | req/s failures/s".
    text = err + "\n" + out
    for line in text.splitlines():
        cols = line.split("|")
        if len(cols) == 3 and cols[0].split()[:1] == ["Aggregated"]:
            head = cols[0].split()
            tail = cols[2].split()
            requests = int(head[1])
            errors = int(head[2].split("(")[0])
            return {"requests": requests, "rps": float(tail[0]), "errors": errors}
    raise ParseError("no Aggregated row in Locust's summary")


def parse_agent(out, err):
    try:
        j = json.loads(out)
    except ValueError as e:
        raise ParseError("stdout is not the --json summary (%s)" % e)
    try:
        req, rate = j["requests"], j["rate"]
        rec = {
            "requests": int(req["total"]),
            "rps": float(rate["achieved_rps"]),
            "errors": int(req["failed"]),
            "ok": int(req["ok"]),
            "sent": int(req["sent"]),
            "late": int(req["late"]),
            "dropped": int(req["dropped"]),
            "target_rps": float(rate["target_rps"]),
            "duration_s": float(j["duration_s"]),
            "p50_ms": float(j["latency_ms"]["p50"]),
            "p99_ms": float(j["latency_ms"]["p99"]),
            "p50_uncorrected_ms": float(j["latency_uncorrected_ms"]["p50"]),
            "p99_uncorrected_ms": float(j["latency_uncorrected_ms"]["p99"]),
            "engine": j.get("engine"),
            "threads": j.get("threads"),
        }
    except (KeyError, TypeError, ValueError) as e:
        raise ParseError("the --json summary lacks %s" % e)
    return rec


def parse_engine_bench(out, err):
    m = _search(r"^(\d+) responses in ([\d.]+)s: (\d+) req/s", out, "responses line")
    e = _search(r"^2xx (\d+), connect (\d+), timeout (\d+), other (\d+), aborted (\d+)", out,
                "result counts")
    ok, conn, tmo, other = (int(x) for x in e.groups()[:4])
    # "aborted" are the requests still in flight when the time was up: not failures.
    return {"requests": int(m.group(1)), "rps": float(m.group(3)),
            "errors": (int(m.group(1)) - ok) + conn + tmo + other}


def parse_wrk2(out, err):
    """wrk2 prints wrk's summary with its percentiles as "50.000%    1.20ms"."""
    rec = parse_wrk(out, err)
    lat = dict(
        (float(p), _ms(v, u))
        for p, v, u in re.findall(r"^\s*(\d+\.\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M))
    rec["p50_ms"] = lat.get(50.0)
    rec["p99_ms"] = lat.get(99.0)
    return rec


def parse_h2load(out, err):
    rps = float(_search(r"^finished in [\d.]+s, ([\d.]+) req/s", out, "finished line").group(1))
    m = _search(r"^requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                r"(\d+) errored, (\d+) timeout", out, "requests line")
    # "succeeded" are the 2xx answers among the requests done; the rest failed or timed out.
    done, ok = int(m.group(2)), int(m.group(3))
    return {"requests": done, "rps": rps, "errors": done - ok}


PARSERS = {
    "h2load": parse_h2load,
    "wrk": parse_wrk,
    "wrk2": parse_wrk2,
    "hey": parse_hey,
    "ab": parse_ab,
    "locust": parse_locust,
    "agent": parse_agent,
    "engine_bench": parse_engine_bench,
}


def parse_times(path):
    """bash's `times`: line 1 the shell, line 2 its waited-for children: '0m1.234s 0m0.567s'."""
    with open(path) as f:
        lines = f.read().split("\n")
    fields = re.findall(r"(\d+)m([\d.]+)s", lines[1])
    if len(fields) != 2:
        raise ParseError("cannot read %s" % path)
    return [int(m) * 60 + float(s) for m, s in fields]


def cpu_stat(text):
    """'cpu0 1 2 3 ...;cpu1 ...;' (lines of /proc/stat) -> {'cpu0': [1, 2, 3, ...], ...}."""
    out = {}
    for line in text.split(";"):
        f = line.split()
        if len(f) >= 9 and f[0].startswith("cpu"):
            out[f[0]] = [int(x) for x in f[1:9]]
    return out


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def cmd_record(a):
    out, err = read(a.out), read(a.err)
    try:
        rec = PARSERS[a.parser](out, err)
    except ParseError as e:
        tail = "\n".join((out + err).strip().splitlines()[-8:])
        sys.stderr.write("peers: %s (%s): %s\n%s\n" % (a.tool, a.section, e, tail))
        return 1
    u0, s0 = parse_times(a.times_before)
    u1, s1 = parse_times(a.times_after)
    wall = a.wall_after - a.wall_before
    rec.update({
        "section": a.section,
        "tool": a.tool,
        "rep": a.rep,
        "command": a.command,
        "wall_s": round(wall, 3),
        "gen_cpu_s": round((u1 - u0) + (s1 - s0), 3),
        "gen_user_s": round(u1 - u0, 3),
        "gen_sys_s": round(s1 - s0, 3),
        "server_cpu_s": round((a.server_ticks_after - a.server_ticks_before) / a.clk_tck, 3),
    })
    rec["gen_cpu_util"] = round(rec["gen_cpu_s"] / wall, 3) if wall > 0 else None
    rec["server_cpu_util"] = round(rec["server_cpu_s"] / wall, 3) if wall > 0 else None
    rec["requests_per_cpu_s"] = (round(rec["requests"] / rec["gen_cpu_s"])
                                 if rec["gen_cpu_s"] > 0 else None)
    before, after = cpu_stat(a.cpu_stat_before), cpu_stat(a.cpu_stat_after)
    for role, cpu, ours in (("gen", a.gen_cpu, rec["gen_cpu_s"]),
                            ("server", a.server_cpu, rec["server_cpu_s"])):
        key = "cpu%s" % cpu
        if key not in before or key not in after:
            continue
        d = [y - x for x, y in zip(before[key], after[key])]
        total = sum(d[:8])
        if total <= 0:
            continue
        # user nice system idle iowait irq softirq steal: steal is time the hypervisor gave to
        # someone else; "other" is the core's busy time that neither we nor nginx used.
        busy = total - d[3] - d[4] - d[7]
        rec[role + "_core_steal"] = round(d[7] / total, 3)
        rec[role + "_core_other"] = round(max(0.0, busy / a.clk_tck - ours) / (total / a.clk_tck), 3)
    if rec["requests"] == 0:
        sys.stderr.write("peers: %s (%s): no request completed\n" % (a.tool, a.section))
        return 1
    print(json.dumps(rec, sort_keys=True))
    return 0


# ---- report ----


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run_text(args):
    try:
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        return p.stdout.decode(errors="replace").strip()
    except (OSError, subprocess.SubprocessError):
        return None


def dpkg_version(pkg):
    v = run_text(["dpkg-query", "-W", "-f=${Version}", pkg])
    return v if v and "no packages" not in v else None


def os_name():
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)', read("/etc/os-release"), re.M)
    return m.group(1) if m else None


def environment(a):
    cpu_model = None
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    agent = run_text([os.path.join(a.bin_dir, "stampede-agent"), "--version"])
    return {
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "cpu_model": cpu_model,
        "os": os_name(),
        "loadavg_start": a.loadavg_start,
        "loadavg_end": [float(x) for x in read("/proc/loadavg").split()[:3]],
        "generator_cpu": a.gen_cpu,
        "server_cpu": a.server_cpu,
        "versions": {
            "stampede-agent": agent,
            "nginx": dpkg_version("nginx-light") or dpkg_version("nginx"),
            "wrk": dpkg_version("wrk"),
            "hey": dpkg_version("hey"),
            "ab (apache2-utils)": dpkg_version("apache2-utils"),
            "locust (python3-locust)": dpkg_version("python3-locust"),
            "libcurl": dpkg_version("libcurl4"),
            "libev": dpkg_version("libev4"),
        },
    }


PEAK_ORDER = ["wrk", "agent-fast", "agent-curl", "engine_bench", "hey", "ab", "locust"]
PEAK_LABEL = {
    "wrk": "wrk",
    "agent-fast": "stampede-agent fast",
    "agent-curl": "stampede-agent curl",
    "engine_bench": "engine_bench (fast)",
    "hey": "hey",
    "ab": "ab",
    "locust": "Locust FastHttpUser",
}


def fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def pct(v):
    return "-" if v is None else "%.0f%%" % (100 * v)


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def by_tool(records, section):
    groups = {}
    for r in records:
        if r["section"] == section:
            groups.setdefault(r["tool"], []).append(r)
    return groups


# Where each core's time went during a run: what the generator (core 0) and nginx (core 1) used,
# what the hypervisor gave to other guests (steal), and what other processes here used.
CORE_KEYS = ["gen_cpu_util", "server_cpu_util", "gen_core_steal", "server_core_steal",
             "gen_core_other", "server_core_other"]


def pair_pct(a, b):
    if a is None and b is None:
        return "-"
    return "%s/%s" % ("-" if a is None else "%.0f" % (100 * a), "-" if b is None else "%.0f" % (100 * b))


def core_cols(s):
    return (pair_pct(s.get("gen_cpu_util_median"), s.get("server_cpu_util_median")),
            pair_pct(s.get("gen_core_steal_median"), s.get("server_core_steal_median")),
            pair_pct(s.get("gen_core_other_median"), s.get("server_core_other_median")))


def paired_rows(records, sections, ref_tool, tools):
    """One row per section and tool with its medians and, where ref_tool ran in that section,
    the medians of the per-repetition ratios to it (paired_ratio_to_REF_median for req/s,
    paired_cpu_ratio_to_REF_median for requests per CPU-second)."""
    rows = []
    keys = ["rps", "requests_per_cpu_s"] + CORE_KEYS
    for sec in sections:
        groups = by_tool(records, sec)
        ref = summarise(groups[ref_tool], keys) if ref_tool in groups else None
        for tool in tools:
            if tool not in groups:
                continue
            x = summarise(groups[tool], keys)
            x.update({"section": sec, "tool": tool})
            if ref:
                x["paired_ratio_to_%s_median" % ref_tool] = median(
                    ratio(u, v) for u, v in zip(x["rps_reps"], ref["rps_reps"]))
                x["paired_cpu_ratio_to_%s_median" % ref_tool] = median(
                    ratio(u, v) for u, v in zip(x["requests_per_cpu_s_reps"],
                                                ref["requests_per_cpu_s_reps"]))
            rows.append(x)
    return rows


def write_paired(w, rows, ref_tool, title):
    """The table of paired_rows(), under title, with each row's command below it."""
    if not rows:
        return
    w(title)
    w("  %-12s %-10s %8s %6s  %9s %6s  %5s %5s %5s %6s\n" % (
        "shape", "tool", "req/s", "paired", "req/CPU-s", "paired", "used", "steal", "other",
        "errors"))
    for x in rows:
        w("  %-12s %-10s %8s %6s  %9s %6s  %5s %5s %5s %6d\n" % ((
            x["section"], x["tool"], fmt(x["rps_median"], ",.0f"),
            fmt(x.get("paired_ratio_to_%s_median" % ref_tool), ".2f"),
            fmt(x["requests_per_cpu_s_median"], ",.0f"),
            fmt(x.get("paired_cpu_ratio_to_%s_median" % ref_tool), ".2f")) + core_cols(x) +
            (x["errors_total"],)))
    w("  paired: median over repetitions of the ratio to %s's run of the same repetition.\n"
      % ref_tool)
    for x in rows:
        w("    %-12s %-12s %s\n" % (x["section"], x["tool"] + ":", x["command"]))
    w("\n")


def summarise(runs, keys):
    s = {"reps": len(runs), "command": runs[0]["command"]}
    for k in keys:
        s[k + "_median"] = median(r.get(k) for r in runs)
        s[k + "_reps"] = [r.get(k) for r in runs]
    s["errors_total"] = sum(r["errors"] for r in runs)
    return s


def cmd_report(a):
    records = [json.loads(line) for line in read(a.records).splitlines() if line.strip()]
    def w(text):
        sys.stdout.write("\n".join(line.rstrip() for line in text.split("\n")))
    reps, dur = a.reps, a.duration

    w("\nstampede peers benchmark: nginx (1 worker, core %s) on 127.0.0.1, generators on core %s\n"
      % (a.server_cpu, a.gen_cpu))
    w("%d repetition(s) of %d s per run, interleaved; figures are medians over the repetitions.\n"
      % (reps, dur))
    w("load average at start %s, at end %s (other work shares these cores)\n\n"
      % (" ".join("%.2f" % x for x in a.loadavg_start), " ".join(read("/proc/loadavg").split()[:3])))

    # Peak throughput.
    peak = by_tool(records, "peak")
    keys = ["rps", "requests_per_cpu_s", "requests"] + CORE_KEYS
    peak_rows = []
    wrk = summarise(peak["wrk"], keys) if "wrk" in peak else None
    for tool in PEAK_ORDER:
        if tool not in peak:
            continue
        s = summarise(peak[tool], keys)
        s["tool"] = tool
        s["ratio_to_wrk"] = ratio(s["rps_median"], wrk and wrk["rps_median"])
        s["cpu_ratio_to_wrk"] = ratio(s["requests_per_cpu_s_median"],
                                      wrk and wrk["requests_per_cpu_s_median"])
        # Repetition k of every tool ran within the same minute: the median of the per-repetition
        # ratios is less exposed to a slow minute than the ratio of the medians.
        if wrk:
            s["paired_ratio_to_wrk_reps"] = [ratio(x, y) for x, y in zip(s["rps_reps"], wrk["rps_reps"])]
            s["paired_ratio_to_wrk_median"] = median(s["paired_ratio_to_wrk_reps"])
            s["paired_cpu_ratio_to_wrk_reps"] = [
                ratio(x, y) for x, y in zip(s["requests_per_cpu_s_reps"],
                                            wrk["requests_per_cpu_s_reps"])]
            s["paired_cpu_ratio_to_wrk_median"] = median(s["paired_cpu_ratio_to_wrk_reps"])
        peak_rows.append(s)
    w("Peak throughput: closed loop, 50 connections, one core\n")
    w("  %-20s %8s %5s %6s  %9s %5s %6s  %-17s %6s\n" % (
        "", "", "vs wrk", "", "", "vs wrk", "", " cores %, gen/nginx", ""))
    w("  %-20s %8s %5s %6s  %9s %5s %6s  %5s %5s %5s %6s\n" % (
        "tool", "req/s", "med", "paired", "req/CPU-s", "med", "paired", "used", "steal", "other",
        "errors"))
    for s in peak_rows:
        w("  %-20s %8s %5s %6s  %9s %5s %6s  %5s %5s %5s %6d\n" % ((
            PEAK_LABEL[s["tool"]], fmt(s["rps_median"], ",.0f"), fmt(s["ratio_to_wrk"], ".2f"),
            fmt(s.get("paired_ratio_to_wrk_median"), ".2f"),
            fmt(s["requests_per_cpu_s_median"], ",.0f"), fmt(s["cpu_ratio_to_wrk"], ".2f"),
            fmt(s.get("paired_cpu_ratio_to_wrk_median"), ".2f")) + core_cols(s) +
            (s["errors_total"],)))
    w("  req/s: the tool's own figure. req/CPU-s: requests per CPU-second the generator used\n"
      "  (user + system; start-up included: Locust spends about a CPU-second importing itself).\n"
      "  vs wrk: ratio of the medians (med), and the median of the ratios taken repetition by\n"
      "  repetition (paired). cores: share of the generator's core / nginx's core that the\n"
      "  generator / nginx used, that the hypervisor gave to other guests (steal), and that other\n"
      "  processes here used (other). Much steal or other: the machine, not the tools, set req/s.\n")
    for s in peak_rows:
        w("    %-20s %s\n" % (PEAK_LABEL[s["tool"]] + ":", s["command"]))
    fast = next((s for s in peak_rows if s["tool"] == "agent-fast"), None)
    curl = next((s for s in peak_rows if s["tool"] == "agent-curl"), None)
    if fast and curl:
        w("  ratios to wrk (of medians / paired), req/s: fast %s / %s, curl %s / %s;\n"
          "  per CPU-second: fast %s / %s, curl %s / %s\n"
          % (fmt(fast["ratio_to_wrk"], ".2f"), fmt(fast.get("paired_ratio_to_wrk_median"), ".2f"),
             fmt(curl["ratio_to_wrk"], ".2f"), fmt(curl.get("paired_ratio_to_wrk_median"), ".2f"),
             fmt(fast["cpu_ratio_to_wrk"], ".2f"),
             fmt(fast.get("paired_cpu_ratio_to_wrk_median"), ".2f"),
             fmt(curl["cpu_ratio_to_wrk"], ".2f"),
             fmt(curl.get("paired_cpu_ratio_to_wrk_median"), ".2f")))
    w("\n")

    # Rate accuracy.
    rate_rows = []
    for r in sorted({r["section"] for r in records if r["section"].startswith("rate")},
                    key=lambda s: int(s[4:])):
        runs = [x for x in records if x["section"] == r]
        s = summarise(runs, ["rps", "sent", "late", "dropped", "p50_ms", "p99_ms"] + CORE_KEYS)
        s["target_rps"] = int(r[4:])
        s["error_pct_reps"] = [
            round(100.0 * (x["rps"] - x["target_rps"]) / x["target_rps"], 3) if x["target_rps"]
            else None for x in runs]
        s["error_pct_median"] = median(s["error_pct_reps"])
        s["connections"] = a.rate_conns.get(r[4:])
        rate_rows.append(s)
    if rate_rows:
        w("Rate accuracy: stampede-agent, fast engine, open loop, %d s per run\n" % dur)
        w("  %6s %5s %9s %7s %7s %6s %7s %7s %8s  %5s %5s %5s %6s\n" % (
            "target", "conns", "achieved", "error", "sent", "late", "dropped", "p50 ms", "p99 ms",
            "used", "steal", "other", "errors"))
        for s in rate_rows:
            w("  %6d %5s %9s %6s%% %7s %6s %7s %7s %8s  %5s %5s %5s %6d\n" % ((
                s["target_rps"], s["connections"] or "-", fmt(s["rps_median"], ",.1f"),
                fmt(s["error_pct_median"], "+.2f"), fmt(s["sent_median"], ".0f"),
                fmt(s["late_median"], ".0f"), fmt(s["dropped_median"], ".0f"),
                fmt(s["p50_ms_median"], ".3f"), fmt(s["p99_ms_median"], ".3f")) + core_cols(s) +
                (s["errors_total"],)))
        w("  achieved: completed requests / run time; error: achieved against the target; late:\n"
          "  sent more than 10 ms after their instant; dropped: never sent. Latency corrected.\n"
          "  cores as above (at a fixed rate \"used\" is the cost of that rate, not a ceiling).\n"
          "  wrk2 (wrk's open-loop fork, not in Debian 12) is in the open-loop table (WRK2=PATH).\n\n")

    # Latency at a fixed rate.
    lat = by_tool(records, "latency")
    lat_rows = []
    descr = {
        "agent-fast": ("stampede-agent fast", "open loop at %s rps, corrected" % a.lat_rate),
        "agent-fast-raw": ("stampede-agent fast", "same runs, uncorrected"),
        "agent-curl": ("stampede-agent curl", "open loop at %s rps, corrected" % a.lat_rate),
        "agent-curl-raw": ("stampede-agent curl", "same runs, uncorrected"),
        "hey": ("hey -q", "throttled closed loop, %s rps in all" % a.lat_rate),
        "wrk": ("wrk --latency", "closed loop at its own peak rate"),
    }
    for tool in ["agent-fast", "agent-curl", "hey", "wrk"]:
        if tool not in lat:
            continue
        runs = lat[tool]
        s = summarise(runs, ["rps", "p50_ms", "p99_ms"] + CORE_KEYS)
        s["tool"] = tool
        s["mode"] = descr[tool][1]
        lat_rows.append(s)
        if tool.startswith("agent"):
            raw = summarise(runs, ["rps", "p50_uncorrected_ms", "p99_uncorrected_ms"])
            raw = {"tool": tool + "-raw", "mode": descr[tool + "-raw"][1], "reps": raw["reps"],
                   "command": raw["command"], "rps_median": raw["rps_median"],
                   "rps_reps": raw["rps_reps"],
                   "p50_ms_median": raw["p50_uncorrected_ms_median"],
                   "p50_ms_reps": raw["p50_uncorrected_ms_reps"],
                   "p99_ms_median": raw["p99_uncorrected_ms_median"],
                   "p99_ms_reps": raw["p99_uncorrected_ms_reps"],
                   "errors_total": raw["errors_total"]}
            lat_rows.append(raw)
    if lat_rows:
        w("Latency at a fixed rate: %s connections, %d s per run\n" % (a.lat_conns, dur))
        w("  %-20s %-38s %7s %7s %7s  %5s %5s %5s\n" % (
            "tool", "mode", "req/s", "p50 ms", "p99 ms", "used", "steal", "other"))
        for s in lat_rows:
            w("  %-20s %-38s %7s %7s %7s  %5s %5s %5s\n" % ((
                descr[s["tool"]][0], s["mode"], fmt(s["rps_median"], ",.0f"),
                fmt(s["p50_ms_median"], ".3f"), fmt(s["p99_ms_median"], ".3f")) + core_cols(s)))
        w("  wrk's row is closed loop at whatever rate it reached, with no correction for\n"
          "  coordinated omission: beside the others it is indicative only. hey -q paces each\n"
          "  connection but waits for replies (no correction either); its percentiles have a\n"
          "  0.1 ms resolution. ab is left out: its percentiles are whole milliseconds.\n")
        for s in lat_rows:
            if not s["tool"].endswith("-raw"):
                w("    %-20s %s\n" % (descr[s["tool"]][0] + ":", s["command"]))
        w("\n")

    # HTTPS over HTTP/1.1: the fast engine beside wrk (and h2load --h1), keep-alive and a new
    # connection per request.
    tls_rows = paired_rows(records, ("https", "https-close"), "wrk",
                           ("wrk", "h2load-h1", "agent-fast"))
    write_paired(w, tls_rows, "wrk",
                 "HTTPS, HTTP/1.1 over TLS 1.3, closed loop, 50 connections, one core (https: "
                 "keep-alive;\nhttps-close: Connection: close, a handshake per request)\n")
    # HTTP/2: the h2 engine beside h2load with the same connections (-c) and streams (-m).
    h2_rows = paired_rows(records,
                          sorted({r["section"] for r in records if r["section"].startswith("h2")}),
                          "h2load", ("h2load", "agent-h2", "agent-curl"))
    write_paired(w, h2_rows, "h2load",
                 "HTTP/2 (h2: cleartext, prior knowledge; h2tls: TLS, ALPN h2): closed loop, same\n"
                 "connections (c) and streams (m), one core\n")

    result = {
        "schema": "stampede-bench-peers/1",
        "settings": {
            "duration_s": dur,
            "reps": reps,
            "quick": a.quick,
            "peak_connections": 50,
            "latency_rate_rps": int(a.lat_rate),
            "latency_connections": int(a.lat_conns),
            "rate_connections": a.rate_conns,
        },
        "environment": environment(a),
        "peak": {
            "rows": peak_rows,
            "fast_vs_wrk_rps": fast and fast["ratio_to_wrk"],
            "curl_vs_wrk_rps": curl and curl["ratio_to_wrk"],
            "fast_vs_wrk_per_cpu_s": fast and fast["cpu_ratio_to_wrk"],
            "curl_vs_wrk_per_cpu_s": curl and curl["cpu_ratio_to_wrk"],
            "fast_vs_wrk_rps_paired": fast and fast.get("paired_ratio_to_wrk_median"),
            "curl_vs_wrk_rps_paired": curl and curl.get("paired_ratio_to_wrk_median"),
            "fast_vs_wrk_per_cpu_s_paired": fast and fast.get("paired_cpu_ratio_to_wrk_median"),
            "curl_vs_wrk_per_cpu_s_paired": curl and curl.get("paired_cpu_ratio_to_wrk_median"),
        },
        "rate_accuracy": {
            "rows": rate_rows,
            "wrk2": "not in Debian 12: see the open-loop rows (WRK2=PATH), printed by bench/openloop_report.py",
        },
        "latency": {"rows": lat_rows},
        "https": {"rows": tls_rows},
        "http2": {"rows": h2_rows},
        "runs": records,
    }
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write("\n")
        w("figures and environment written to %s\n" % a.json_out)
    return 0


def main():
    p = argparse.ArgumentParser(prog="peers_report.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--parser", required=True, choices=sorted(PARSERS))
    r.add_argument("--section", required=True)
    r.add_argument("--tool", required=True)
    r.add_argument("--rep", type=int, required=True)
    r.add_argument("--command", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--err", required=True)
    r.add_argument("--times-before", required=True)
    r.add_argument("--times-after", required=True)
    r.add_argument("--wall-before", type=float, required=True)
    r.add_argument("--wall-after", type=float, required=True)
    r.add_argument("--server-ticks-before", type=int, required=True)
    r.add_argument("--server-ticks-after", type=int, required=True)
    r.add_argument("--clk-tck", type=int, default=100)
    r.add_argument("--cpu-stat-before", default="")
    r.add_argument("--cpu-stat-after", default="")
    r.add_argument("--gen-cpu", default="0")
    r.add_argument("--server-cpu", default="1")
    s = sub.add_parser("report")
    s.add_argument("--records", required=True)
    s.add_argument("--json-out")
    s.add_argument("--bin-dir", required=True)
    s.add_argument("--reps", type=int, required=True)
    s.add_argument("--duration", type=int, required=True)
    s.add_argument("--quick", action="store_true")
    s.add_argument("--gen-cpu", required=True)
    s.add_argument("--server-cpu", required=True)
    s.add_argument("--loadavg-start", nargs=3, required=True)
    s.add_argument("--lat-rate", required=True)
    s.add_argument("--lat-conns", required=True)
    s.add_argument("--rate-conns", required=True,
                   help="RATE:CONNS,... as used for the rate accuracy runs")
    a = p.parse_args()
    if a.cmd == "record":
        return cmd_record(a)
    a.rate_conns = dict((r, int(c)) for r, c in (x.split(":") for x in a.rate_conns.split(",") if x))
    a.loadavg_start = [float(x) for x in a.loadavg_start]
    return cmd_report(a)


if __name__ == "__main__":
    sys.exit(main())
