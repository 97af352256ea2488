"""The HTML report (stampede run --report, stampede report) opened in Debian's headless Chromium,
and the GitHub step summary, against stampede-target on 127.0.0.1."""
import html.parser
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import unittest
import zlib

import harness
import targets

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_THRESHOLDS = 11

# The charts' drawing (html_report.c): viewBox 1100 x 300, the plot inside margins.
VIEW_W, PLOT_L, PLOT_R, PLOT_T, PLOT_B, VIEW_H = 1100.0, 72.0, 16.0, 34.0, 40.0, 300.0
CHARTS = ["chart-rps", "chart-latency", "chart-errors", "chart-distribution"]
WINDOW = (1280, 3600)


def chromium():
    path = shutil.which("chromium")
    if not path:
        raise AssertionError("chromium is missing: scripts/deps.sh installs it")
    return path


# Chromium's own background requests (component updates, sign-in), made for any page, blank or
# not: they reach the proxy below and no further, and are told apart from the page's by host.
BROWSER_HOSTS = {"update.googleapis.com", "accounts.google.com", "clients2.google.com"}


class RecordingProxy:
    """A TCP listener that records the host of every request made to it and answers none: as
    Chromium's --proxy-server, every request a page makes lands here (and goes no further)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.hosts = []
        self.closed = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(2)
            try:
                line = conn.recv(4096).split(b"\r\n")[0].decode("latin-1")
            except OSError:
                line = ""
            conn.close()
            # "CONNECT host:443 HTTP/1.1" or "GET http://host/path HTTP/1.1"
            m = re.match(r"\S+ (?:https?://)?([^/:\s]+)", line)
            self.hosts.append(m.group(1) if m else "?" + line)

    def page_hosts(self):
        return set(self.hosts) - BROWSER_HOSTS

    def close(self):
        self.closed = True
        self.sock.close()
        self.thread.join(5)


def run_chromium(case, url, *args, proxy=None):
    """Headless Chromium on url with args; its stdout. Every network request goes to proxy (a new
    one when None), none leaves the machine."""
    if proxy is None:
        proxy = RecordingProxy()
        case.addCleanup(proxy.close)
    profile = tempfile.mkdtemp(prefix="st-chromium-")
    case.addCleanup(shutil.rmtree, profile, True)
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-default-apps", "--hide-scrollbars", "--force-device-scale-factor=1",
           "--user-data-dir=" + profile, "--window-size=%d,%d" % WINDOW]
    cmd += ["--proxy-server=http://127.0.0.1:%d" % proxy.port, "--proxy-bypass-list=<-loopback>"]
    r = subprocess.run(cmd + list(args) + [url], capture_output=True, text=True, timeout=120)
    case.assertEqual(r.returncode, 0, r.stderr[-2000:])
    return r.stdout


class Figures(html.parser.HTMLParser):
    """Every data-fig in a document: figs[(scope, key)] = (data-value, text); the charts'
    data-points and data-box; the tags and attributes seen."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "wbr"}

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.figs, self.charts, self.tags, self.attrs = {}, {}, set(), set()
        self.stack, self.open_figs = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        self.attrs.update(k for k, _ in attrs)
        scope = a.get("data-scope") or (self.stack[-1][1] if self.stack else "")
        if tag not in self.VOID and not tag.endswith("/"):
            self.stack.append((tag, scope))
        if tag == "svg" and "chart" in (a.get("class") or ""):
            self.charts[a["id"]] = a
        if "data-fig" in a:
            self.open_figs.append([scope or "run", a["data-fig"], a.get("data-value"), "", tag,
                                   len(self.stack)])

    def handle_startendtag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs.update(k for k, _ in attrs)

    def handle_endtag(self, tag):
        while self.stack:
            t, _ = self.stack.pop()
            depth = len(self.stack) + 1
            if self.open_figs and self.open_figs[-1][5] == depth:
                scope, key, value, text, _, _ = self.open_figs.pop()
                self.figs[(scope, key)] = (value, text.strip())
            if t == tag:
                break

    def handle_data(self, data):
        for f in self.open_figs:
            f[3] += data


def decode_png(path):
    """(width, height, bytes per pixel, rows) of a non-interlaced 8-bit RGB or RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path + " is not a PNG"
    pos, idat = 8, []
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    assert depth == 8 and ctype in (2, 6) and not interlace, "unsupported PNG"
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ft == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif ft == 2:
            line = bytearray((x + p) & 255 for x, p in zip(line, prev))
        elif ft == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif ft == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, bpp, rows


def colored_pixels(png, box):
    """Pixels in box (x, y, w, h) that are a colour, not a grey (background, grid, text)."""
    w, h, bpp, rows = png
    x0, y0, bw, bh = (int(round(v)) for v in box)
    n = 0
    for y in range(max(y0, 0), min(y0 + bh, h)):
        row = rows[y]
        for x in range(max(x0, 0), min(x0 + bw, w)):
            r, g, b = row[x * bpp], row[x * bpp + 1], row[x * bpp + 2]
            n += max(r, g, b) - min(r, g, b) > 60
    return n


def fmt(v, kind):
    """A figure's text as the report writes it."""
    if v is None:
        return "\u2013"
    return {"int": "%.0f", "ms": "%.3f", "rate": "%.1f"}[kind] % v


class ReportCase(harness.ProcTestCase):
    """A run against stampede-target, its files, and what the report must show of them."""

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="st-report-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def real_run(self, *extra, env=None):
        """2 agents, 200 rps for 3 s against a target answering 95% 200, 4% 500, 1% 404."""
        _, url = targets.start_target(self, "--latency-ms", "1-4", "--status", "200:95,500:4,404:1")
        p = self.start([harness.binary("stampede"), "run", "--url", url + "/", "--rate", "200",
                        "--duration", "3", "--agents", "2", "--threshold", "p(99)<1s",
                        "--threshold", "error_rate<1%", "--summary", self.path("summary.json"),
                        "--timeseries", self.path("ts.jsonl"), "--report",
                        self.path("report.html")] + list(extra), env=env)
        code = p.wait(60)
        return code, p, url

    def summary(self):
        with open(self.path("summary.json")) as f:
            return json.load(f)

    def report(self, *args):
        return self.run_to_end([harness.binary("stampede"), "report"] + list(args), timeout=30)

    def check_figures(self, figs, s):
        """The DOM's figures are the summary's, value and text."""
        groups = [("requests", "int", ["total", "ok", "failed", "sent", "late", "dropped"]),
                  ("errors", "int", ["http_4xx", "http_5xx", "connect", "timeout", "other",
                                     "local"]),
                  ("bytes", "int", ["in", "out"]),
                  ("rate", "rate", ["target_rps", "achieved_rps"]),
                  ("latency_ms", "ms", ["min", "mean", "p50", "p90", "p99", "p999", "max"]),
                  ("latency_uncorrected_ms", "ms", ["min", "mean", "p50", "p90", "p99", "p999",
                                                    "max"])]
        checked = 0
        for group, kind, keys in groups:
            for k in keys:
                value, text = figs[("run", "%s.%s" % (group, k))]
                self.assertEqual(float(value), s[group][k], (group, k))
                self.assertEqual(text, fmt(s[group][k], kind), (group, k))
                checked += 1
        self.assertEqual(figs[("run", "run_id")][0], s["run_id"])
        self.assertEqual(figs[("run", "status")][0], s["status"])
        self.assertEqual(float(figs[("run", "start_skew_ms")][0]), s["start_skew_ms"])
        self.assertEqual(int(figs[("run", "agents.count")][0]), len(s["agents"]))
        for a in s["agents"]:
            scope = "agent:%d" % a["id"]
            for k in ("requests", "ok", "failed"):
                self.assertEqual(int(figs[(scope, k)][0]), a[k], (scope, k))
            self.assertEqual(figs[(scope, "state")][0], a["state"])
            self.assertEqual(figs[(scope, "name")][1], a["name"])
        for i, t in enumerate(s["thresholds"]):
            scope = "threshold:%d" % i
            self.assertEqual(figs[(scope, "expression")][1], t["expression"])
            self.assertEqual(float(figs[(scope, "observed")][0]), t["observed"])
            self.assertEqual(float(figs[(scope, "limit")][0]), t["limit"])
            self.assertEqual(figs[(scope, "result")][0], t["result"])
        return checked

    def chart_boxes(self, report):
        """Each chart's box in the page, from a copy with a script that writes them into the DOM
        (the report itself runs no script): the layout is the report's."""
        with open(report) as f:
            text = f.read()
        probe = text.replace("default-src 'none'", "default-src 'none'; script-src 'unsafe-inline'")
        probe = probe.replace("</body>", "<script>for (const s of document.querySelectorAll("
                              "'svg.chart')) { const r = s.getBoundingClientRect(); "
                              "s.setAttribute('data-box', [r.left + scrollX, r.top + scrollY, "
                              "r.width, r.height].join(',')); }</script></body>")
        path = self.path("probe.html")
        with open(path, "w") as f:
            f.write(probe)
        dom = Figures(run_chromium(self, "file://" + path, "--dump-dom"))
        boxes = {}
        for cid, attrs in dom.charts.items():
            x, y, w, h = (float(v) for v in attrs["data-box"].split(","))
            scale = w / VIEW_W
            boxes[cid] = (x + PLOT_L * scale, y + PLOT_T * scale,
                          (VIEW_W - PLOT_L - PLOT_R) * scale, (VIEW_H - PLOT_T - PLOT_B) * scale)
        return boxes



class ReportTest(ReportCase):
    def test_run_report_in_chromium(self):
        code, p, _ = self.real_run()
        self.assertEqual(code, EXIT_THRESHOLDS, p.stderr())
        s = self.summary()
        report = self.path("report.html")
        with open(report) as f:
            text = f.read()
        # Nothing to fetch: a policy that forbids every fetch, and no address to fetch from.
        self.assertIn("content=\"default-src 'none'; style-src 'unsafe-inline'\"", text)
        for needle in ("http://", "https://", "<script", "<link", "<img", "<iframe", "url("):
            self.assertNotIn(needle, text)
        # The figures in the file and in the DOM as Chromium parsed it.
        self.assertEqual(self.check_figures(Figures(text).figs, s), 30)
        proxy = RecordingProxy()
        self.addCleanup(proxy.close)
        dom_text = run_chromium(self, "file://" + report, "--dump-dom", proxy=proxy)
        dom = Figures(dom_text)
        self.check_figures(dom.figs, s)
        self.assertNotIn("script", dom.tags)
        self.assertEqual(dom.figs[("threshold:1", "result")][0], "fail")
        # Every chart drew something: its values in the DOM, its colours on the screenshot.
        for cid in CHARTS:
            self.assertGreater(int(dom.charts[cid]["data-points"]), 0, cid)
        shot = self.path("report.png")
        run_chromium(self, "file://" + report, "--screenshot=" + shot, proxy=proxy)
        png = decode_png(shot)
        self.assertEqual(png[:2], WINDOW)
        for cid, box in self.chart_boxes(report).items():
            self.assertLess(box[1] + box[3], WINDOW[1], cid + " is below the screenshot")
            area = box[2] * box[3]
            self.assertGreater(colored_pixels(png, box), area * 0.002, cid + " looks blank")
        self.assertEqual(proxy.page_hosts(), set(), "the report made network requests")
        # The check sees a page's requests: one that fetches an image is caught.
        leak = self.path("leak.html")
        with open(leak, "w") as f:
            f.write('<html><body><img src="http://st-report-probe.invalid/x.png"></body></html>')
        probe = RecordingProxy()
        self.addCleanup(probe.close)
        run_chromium(self, "file://" + leak, "--dump-dom", proxy=probe)
        self.assertEqual(probe.page_hosts(), {"st-report-probe.invalid"})
        # The same report from the files afterwards.
        code, out, err = self.report(self.path("summary.json"), self.path("ts.jsonl"), "-o",
                                     self.path("again.html"))
        self.assertEqual(code, 0, err)
        with open(self.path("again.html")) as f:
            again = f.read()
        self.assertEqual(Figures(again).figs, Figures(text).figs)
        self.assertEqual(again, text)
        # The distribution is the merged histogram's: its bins add up to the responses.
        hist = s["latency_histogram"]
        self.assertEqual(sum(b[2] for b in hist["corrected"]), s["requests"]["total"])
        self.assertEqual(sum(b[2] for b in hist["uncorrected"]), s["requests"]["total"])
        # The time series carries what the charts draw: errors by class, uncorrected latency.
        with open(self.path("ts.jsonl")) as f:
            lines = [json.loads(line) for line in f]
        for k in ("http_5xx", "http_4xx"):
            self.assertEqual(sum(x["errors"][k] for x in lines), s["errors"][k])
        self.assertTrue(all("p99_uncorrected_ms" in x for x in lines))

    def test_report_from_files_is_strict(self):
        summary = {"requests": {"total": 3, "ok": 3, "failed": 0, "sent": 3, "late": 0,
                                "dropped": 0},
                   "rate": {"target_rps": 1, "achieved_rps": 1},
                   "errors": {k: 0 for k in ("http_4xx", "http_5xx", "connect", "timeout",
                                             "other", "local")},
                   "bytes": {"in": 1, "out": 1}, "duration_s": 3, "closed_loop": False,
                   "latency_ms": {k: 1.5 for k in ("min", "mean", "p50", "p90", "p99", "p999",
                                                   "max")},
                   "latency_uncorrected_ms": {k: 1.25 for k in ("min", "mean", "p50", "p90",
                                                                "p99", "p999", "max")}}
        line = {"t": 0, "target_rps": 1, "achieved_rps": 1, "sent": 1, "ok": 1, "failed": 0,
                "p50_ms": 1.5, "p90_ms": 1.5, "p99_ms": 1.5, "max_ms": 1.5, "agents": 1}

        def write(name, text):
            with open(self.path(name), "w") as f:
                f.write(text)
            return self.path(name)

        s = write("s.json", json.dumps(summary, indent=2))
        good = [dict(line, t=t) for t in range(3)]
        ts = write("ts.jsonl", "".join(json.dumps(x) + "\n" for x in good))
        code, _, err = self.report(s, ts, "-o", self.path("ok.html"))
        self.assertEqual(code, 0, err)
        cases = [
            ("missing", [good[0], {k: v for k, v in good[1].items() if k != "p99_ms"}],
             ":2: key \"p99_ms\": missing"),
            ("type", [good[0], good[1], dict(good[2], sent="3")],
             ":3: key \"sent\": expected a number, not a string"),
            ("negative", [dict(good[0], ok=-1)], ":1: key \"ok\": expected 0 or more"),
            ("order", [good[1], good[0]], ":2: key \"t\": second 0 does not come after second 1"),
            ("errors", [dict(good[0], errors={"http_4xx": 1})],
             ":1: key \"errors.http_5xx\": missing"),
        ]
        for name, rows, want in cases:
            bad = write(name + ".jsonl", "".join(json.dumps(x) + "\n" for x in rows))
            out = self.path(name + ".html")
            code, _, err = self.report(s, bad, "-o", out)
            self.assertEqual(code, EXIT_USAGE, name)
            self.assertIn(bad + want, err, name)
            self.assertFalse(os.path.exists(out), name)
        bad = write("json.jsonl", json.dumps(good[0]) + "\n{\"t\": 1,,}\n")
        code, _, err = self.report(s, bad, "-o", self.path("x.html"))
        self.assertEqual(code, EXIT_USAGE)
        self.assertRegex(err, re.escape(bad) + r":2:(9|10): not valid JSON here")
        bad = write("blank.jsonl", json.dumps(good[0]) + "\n\n" + json.dumps(good[1]) + "\n")
        code, _, err = self.report(s, bad, "-o", self.path("x.html"))
        self.assertEqual(code, EXIT_USAGE)
        self.assertIn(bad + ":2: an empty line", err)
        nolat = dict(summary)
        nolat["latency_ms"] = dict(summary["latency_ms"], p99="fast")
        bad = write("bad-summary.json", json.dumps(nolat))
        code, _, err = self.report(bad, ts, "-o", self.path("x.html"))
        self.assertEqual(code, EXIT_USAGE)
        self.assertIn(bad + ": key \"latency_ms.p99\": expected a number or null, not a string",
                      err)
        code, _, err = self.report(self.path("nothing.json"), "-o", self.path("x.html"))
        self.assertEqual(code, EXIT_USAGE)
        self.assertIn("nothing.json: cannot open it", err)
        code, _, err = self.report(s, ts)
        self.assertEqual(code, EXIT_USAGE)
        self.assertIn("-o FILE is required", err)
        code, _, err = self.report(s, ts, "-o", "/dev/full")
        self.assertEqual(code, EXIT_FAILURE)
        self.assertIn("/dev/full", err)

    def test_request_names_are_text_not_markup(self):
        """Per-name tables and the per-name chart from a summary that has them, with names and
        an agent that try to inject markup."""
        lat = {k: 2.0 for k in ("min", "mean", "p50", "p90", "p99", "p999", "max")}
        errs = {k: 0 for k in ("http_4xx", "http_5xx", "connect", "timeout", "other", "local")}
        evil = "<script>alert(1)</script>"
        by_name = {evil: {"requests": {"total": 2, "ok": 1, "failed": 1, "sent": 2, "late": 0,
                                       "dropped": 0},
                          "errors": dict(errs, http_5xx=1), "latency_ms": lat,
                          "latency_uncorrected_ms": lat},
                   "login": {"requests": {"total": 4, "ok": 4, "failed": 0, "sent": 4, "late": 0,
                                          "dropped": 0},
                             "errors": errs, "latency_ms": dict(lat, p99=7.25),
                             "latency_uncorrected_ms": lat}}
        summary = {"requests": {"total": 6, "ok": 5, "failed": 1, "sent": 6, "late": 0,
                                "dropped": 0},
                   "rate": {"target_rps": 2, "achieved_rps": 2}, "errors": dict(errs, http_5xx=1),
                   "bytes": {"in": 1, "out": 1}, "duration_s": 3, "closed_loop": False,
                   "latency_ms": lat, "latency_uncorrected_ms": lat, "run_id": "r-<b>1</b>",
                   "agents": [{"id": 1, "name": "\"><img src=x onerror=alert(2)>", "host": "h",
                               "requests": 6, "ok": 5, "failed": 1, "state": "done"}],
                   "requests_by_name": by_name, "status": "completed",
                   "rate_changes": [{"at_s": 1.5, "from_rps": 1, "to_rps": 3, "by": "key"}]}
        lines = [{"t": t, "target_rps": 2, "achieved_rps": 2, "sent": 2, "ok": 2, "failed": 0,
                  "p50_ms": 2, "p90_ms": 2, "p99_ms": 2, "max_ms": 2, "agents": 1,
                  "by_name": {evil: {"ok": 1, "failed": 0, "p50_ms": 1, "p99_ms": 1 + t},
                              "login": {"ok": 1, "failed": 0, "p50_ms": 2, "p99_ms": 3}}}
                 for t in range(3)]
        with open(self.path("s.json"), "w") as f:
            json.dump(summary, f)
        with open(self.path("ts.jsonl"), "w") as f:
            f.write("".join(json.dumps(x) + "\n" for x in lines))
        out = self.path("names.html")
        code, _, err = self.report(self.path("s.json"), self.path("ts.jsonl"), "-o", out)
        self.assertEqual(code, 0, err)
        with open(out) as f:
            text = f.read()
        self.assertNotIn("<script", text)
        self.assertNotIn("<img", text)
        self.assertNotIn("<b>", text)
        dom = Figures(run_chromium(self, "file://" + out, "--dump-dom"))
        self.assertEqual(dom.tags & {"script", "img", "b"}, set())
        figs = dom.figs
        self.assertEqual(figs[("name:" + evil, "name")][1], evil)
        self.assertEqual(figs[("name:" + evil, "errors.http_5xx")], ("1", "1"))
        self.assertEqual(figs[("name:login", "requests.total")], ("4", "4"))
        self.assertEqual(figs[("name:login", "latency_ms.p99")], ("7.25", "7.250"))
        self.assertEqual(figs[("agent:1", "name")][1], summary["agents"][0]["name"])
        self.assertEqual(figs[("run", "run_id")][0], "r-<b>1</b>")
        self.assertEqual(figs[("rate_change:0", "at_s")][0], "1.5")
        self.assertEqual(int(dom.charts["chart-by-name"]["data-points"]), 6)
        # Without a histogram the distribution is drawn from the percentiles.
        self.assertEqual(int(dom.charts["chart-distribution"]["data-points"]), 12)

    def test_github_step_summary_is_appended(self):
        step = self.path("step.md")
        with open(step, "w") as f:
            f.write("earlier step\n")
        env = dict(os.environ, GITHUB_STEP_SUMMARY=step)
        code, p, _ = self.real_run(env=env)
        self.assertEqual(code, EXIT_THRESHOLDS, p.stderr())
        s = self.summary()
        with open(step) as f:
            md = f.read()
        self.assertTrue(md.startswith("earlier step\n## stampede run "), md[:200])
        self.assertIn(s["run_id"].replace("-", "\\-") + ": \u274c thresholds failed", md)
        lat = s["latency_ms"]
        self.assertIn("| latency p50 / p90 / p99 / p99.9 / max | %.3f / %.3f / %.3f / %.3f / %.3f "
                      "ms" % (lat["p50"], lat["p90"], lat["p99"], lat["p999"], lat["max"]), md)
        self.assertIn("| requests | %d completed, %d ok, %d failed" % (
            s["requests"]["total"], s["requests"]["ok"], s["requests"]["failed"]), md)
        self.assertIn("| \u2705 pass | p\\(99\\)\\<1s | %.3f ms | \\< 1000.000 ms |"
                      % s["thresholds"][0]["observed"], md)
        self.assertIn("| \u274c **fail** | error\\_rate\\<1\\% |", md)
        for a in s["agents"]:
            self.assertIn("| %s | " % a["name"].replace("-", "\\-"), md)

    def test_github_step_summary_that_cannot_be_written_exits_1(self):
        env = dict(os.environ, GITHUB_STEP_SUMMARY="/dev/full")
        code, p, _ = self.real_run(env=env)
        self.assertEqual(code, EXIT_FAILURE, p.stderr())
        self.assertIn("GITHUB_STEP_SUMMARY /dev/full: cannot append the summary", p.stderr())
        # The other outputs were written all the same.
        self.assertEqual(self.summary()["status"], "completed")
        self.assertTrue(os.path.exists(self.path("report.html")))


class BaselineTest(ReportCase):
    """--baseline OLD_SUMMARY.json with --max-regression: a slower target fails the latency
    limit (exit 11) and holds the error-rate one; the summary and the report say so."""

    def run_once(self, name, target_args, *extra):
        _, url = targets.start_target(self, *target_args)
        p = self.start([harness.binary("stampede"), "run", "--url", url + "/", "--rate", "100",
                        "--duration", "2", "--summary", self.path(name + ".json"), "--report",
                        self.path(name + ".html")] + list(extra))
        code = p.wait(60)
        with open(self.path(name + ".json")) as f:
            return code, p, json.load(f)

    def test_regression_fails_the_run(self):
        code, p, old = self.run_once("old", ["--latency-ms", "1"])
        self.assertEqual(code, 0, p.stderr())
        code, p, new = self.run_once("new", ["--latency-ms", "20"], "--baseline",
                                     self.path("old.json"), "--max-regression", "p(50)+50%",
                                     "--max-regression", "error_rate+1pt", "--junit",
                                     self.path("new.xml"))
        self.assertEqual(code, EXIT_THRESHOLDS, p.stderr())
        # Each limit is a JUnit case of its own, valid against the schema CI systems read.
        schema = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "junit.xsd")
        r = subprocess.run(["xmllint", "--noout", "--schema", schema, self.path("new.xml")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.path("new.xml")) as f:
            xml = f.read()
        self.assertIn('tests="4" failures="1"', xml)
        self.assertRegex(xml, r'<testcase classname="stampede.baseline" name="p\(50\)\+50%" '
                              r'time="0">\n      <failure type="regression" message="observed '
                              r'[0-9.]+ ms, allowed at most [0-9.]+ ms \(baseline [0-9.]+ ms\)"')
        self.assertIn('<testcase classname="stampede.baseline" name="error_rate+1pt" time="0"/>',
                      xml)
        b = new["baseline"]
        self.assertEqual(list(new)[-1], "baseline")
        self.assertEqual(b["file"], self.path("old.json"))
        self.assertEqual(b["run_id"], old["run_id"])
        lat, err = b["regressions"]
        self.assertEqual((lat["expression"], lat["result"]), ("p(50)+50%", "fail"))
        self.assertEqual(lat["baseline"], old["latency_ms"]["p50"])
        self.assertEqual(lat["observed"], new["latency_ms"]["p50"])
        self.assertAlmostEqual(lat["allowed"], old["latency_ms"]["p50"] * 1.5, places=9)
        self.assertGreater(lat["observed"], 20)
        self.assertEqual((err["result"], err["baseline"], err["observed"], err["allowed"]),
                         ("pass", 0, 0, 0.01))
        d = b["deltas"]["latency_ms.p99"]
        self.assertEqual((d["baseline"], d["observed"]),
                         (old["latency_ms"]["p99"], new["latency_ms"]["p99"]))
        self.assertAlmostEqual(d["delta"], d["observed"] - d["baseline"], places=9)
        self.assertIn("baseline               %s: 1 of 2 regression limits held"
                      % self.path("old.json"), p.stdout())
        self.assertIn("FAIL  p(50)+50%", p.stdout())
        with open(self.path("new.html")) as f:
            figs = Figures(f.read()).figs
        self.assertEqual(figs[("regression:0", "result")][0], "fail")
        self.assertEqual(float(figs[("regression:0", "observed")][0]), lat["observed"])
        self.assertEqual(float(figs[("regression:0", "allowed")][0]), lat["allowed"])
        self.assertEqual(figs[("regression:1", "result")][0], "pass")
        self.assertEqual(float(figs[("delta:latency_ms.p99", "delta")][0]), d["delta"])
        self.assertEqual(figs[("baseline", "run_id")][0], old["run_id"])
        # A bad limit is refused before anything starts, naming it.
        code, _, err_text = self.run_to_end(
            [harness.binary("stampede"), "run", "--url", "http://127.0.0.1:9/", "--rate", "1",
             "--duration", "1", "--baseline", self.path("old.json"), "--max-regression",
             "p(99)+10"], timeout=30)
        self.assertEqual(code, EXIT_USAGE)
        self.assertIn("--max-regression \"p(99)+10\": at character 9: a unit is needed", err_text)


class ResultsReportTest(ReportCase):
    """stampede results RUN_ID --report: the report of a run read back from DynamoDB (the run's
    results through SQS and stampede-sink, on the npm emulators)."""

    def test_results_report_from_dynamodb(self):
        import aws_env
        ddb_proc, ddb_url = aws_env.start_dynalite()
        self.addCleanup(ddb_proc.stop)
        sqs_proc, sqs_url = aws_env.start_sqs()
        self.addCleanup(sqs_proc.stop)
        queue, _ = aws_env.create_queue_with_dlq(sqs_url, "report", max_receive=2, visibility_s=30)
        aws_env.create_table(ddb_url, "report")
        env = aws_env.aws_env()
        code, p, _ = self.real_run("--sqs-queue-url", queue, "--spool", self.path("spool"),
                                   env=env)
        self.assertEqual(code, EXIT_THRESHOLDS, p.stderr())
        code, _, err = self.run_to_end([harness.binary("stampede-sink"), "--queue-url", queue,
                                        "--table", "report", "--endpoint-url", ddb_url,
                                        "--exit-when-empty", "--wait-seconds", "1"], timeout=60,
                                       env=env)
        self.assertEqual(code, 0, err)
        s = self.summary()
        out = self.path("stored.html")
        code, _, err = self.run_to_end([harness.binary("stampede"), "results", s["run_id"],
                                        "--table", "report", "--endpoint-url", ddb_url,
                                        "--report", out], timeout=60, env=env)
        self.assertEqual(code, 0, err)
        with open(out) as f:
            stored = Figures(f.read())
        with open(self.path("report.html")) as f:
            run = Figures(f.read())
        self.check_figures(stored.figs, s)
        self.assertEqual(stored.figs, run.figs)
        # The same charts: the stored seconds, and the distribution of their merged histograms.
        self.assertEqual({k: v["data-points"] for k, v in stored.charts.items()},
                         {k: v["data-points"] for k, v in run.charts.items()})
        code, _, err = self.run_to_end([harness.binary("stampede"), "results", "no-such-run",
                                        "--table", "report", "--endpoint-url", ddb_url,
                                        "--report", self.path("none.html")], timeout=60, env=env)
        self.assertEqual(code, 5, err)
        self.assertFalse(os.path.exists(self.path("none.html")))


class SmokeScriptTest(harness.ProcTestCase):
    """examples/ci/smoke.sh, the commands of the GitHub Actions workflow, run here."""

    def test_smoke_script(self):
        root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
        out = tempfile.mkdtemp(prefix="st-smoke-")
        self.addCleanup(shutil.rmtree, out, True)
        env = dict(os.environ, STAMPEDE_BIN_DIR=os.environ["ST_BIN_DIR"], SMOKE_OUT=out)
        env.pop("GITHUB_STEP_SUMMARY", None)
        code, stdout, stderr = self.run_to_end([os.path.join(root, "examples", "ci", "smoke.sh")],
                                               timeout=120, env=env)
        self.assertEqual(code, 0, stdout[-3000:] + stderr[-3000:])
        for name in ("report.html", "junit.xml", "summary.json"):
            self.assertTrue(os.path.getsize(os.path.join(out, name)) > 0, name)
        with open(os.path.join(out, "summary.json")) as f:
            s = json.load(f)
        self.assertEqual(s["status"], "completed")
        self.assertTrue(all(t["result"] == "pass" for t in s["thresholds"]))
        # The script stopped the target it started.
        self.assertIn("target stopped", stdout)
        # A failing threshold fails the script with the thresholds' exit code.
        env["SMOKE_THRESHOLD"] = "p(50)<1us"
        code, stdout, stderr = self.run_to_end([os.path.join(root, "examples", "ci", "smoke.sh")],
                                               timeout=120, env=env)
        self.assertEqual(code, EXIT_THRESHOLDS, stdout[-3000:] + stderr[-3000:])


if __name__ == "__main__":
    unittest.main()
