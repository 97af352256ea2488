"""stampede run --tui: the terminal UI driven in tmux against stampede-target on 127.0.0.1.

Each test starts a tmux server of its own (a private socket) with one 120x40 window running a
plain bash, types a `stampede run --tui` into it, sends keys and reads the screen back with
capture-pane. Loads are a few seconds at tens of requests per second; everything started (the
tmux server, the target, and the run through the tmux server) is stopped by tearDown.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness
import targets
from test_run import children


class Tmux:
    """A tmux server of its own with one window running bash."""

    def __init__(self, width=120, height=40, env=None):
        self.sock = "st-tui-%d-%d" % (os.getpid(), int(time.monotonic() * 1000))
        envs = ["LANG=C.UTF-8", "LC_ALL=C.UTF-8", "TERM=xterm-256color", "PS1=READY$ "]
        for k, v in (env or {}).items():
            envs.append("%s=%s" % (k, v))
        self.tmux("new-session", "-d", "-x", str(width), "-y", str(height), "-s", "t",
                  "env " + " ".join(envs) + " bash --norc --noprofile")
        try:
            self.wait_for(r"READY\$", 10)
        except Exception:
            # The caller never gets this object to kill: the server goes now.
            self.tmux("kill-server", check=False)
            raise

    def tmux(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.sock] + list(args), check=check,
                              capture_output=True, text=True, timeout=20).stdout

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def type_line(self, line):
        self.tmux("send-keys", "-t", "t", "-l", line)
        self.tmux("send-keys", "-t", "t", "Enter")

    def screen(self, escapes=False):
        args = ["capture-pane", "-p", "-t", "t"] + (["-e"] if escapes else [])
        return self.tmux(*args)

    def wait_for(self, pattern, timeout, joined=False):
        """The screen once re.search(pattern) matches it; raises after timeout seconds. joined:
        the event log's continuation rows (a newline and two spaces) joined to their line."""
        deadline = time.monotonic() + timeout
        s = ""
        while time.monotonic() < deadline:
            s = self.screen()
            if re.search(pattern, s.replace("\n  ", "") if joined else s):
                return s
            time.sleep(0.1)
        raise AssertionError("%r not on the screen after %.0fs:\n%s" % (pattern, timeout, s))

    def shell_pid(self):
        return int(self.tmux("list-panes", "-t", "t", "-F", "#{pane_pid}").split()[0])

    def resize(self, width, height):
        self.tmux("resize-window", "-t", "t", "-x", str(width), "-y", str(height))

    def kill(self):
        pid = None
        try:
            pid = self.shell_pid()
        except Exception:
            pass
        # What the shell still runs (a run, its agents) is ended first, by its process ids.
        if pid:
            for c in children(pid):
                for g in children(c):
                    try:
                        os.kill(g, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    os.kill(c, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.tmux("kill-server", check=False)


@unittest.skipUnless(shutil.which("tmux"), "tmux is not installed (scripts/deps.sh installs it)")
class TuiCase(harness.ProcTestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="st-tui-")
        self.summary_path = os.path.join(self.dir, "summary.json")
        self.ts_path = os.path.join(self.dir, "ts.jsonl")
        self.target, self.url = targets.start_target(self)
        self.tm = None

    def tearDown(self):
        if self.tm:
            self.tm.kill()
        super().tearDown()

    def open_tmux(self, **kw):
        self.tm = Tmux(**kw)
        return self.tm

    def start_run(self, rate, duration, agents=2, extra=()):
        """Types the run into the window; its exit code shows as EXIT=N after it."""
        tm = self.tm or self.open_tmux()
        args = [harness.binary("stampede"), "run", "--tui", "--url", self.url + "/", "--rate",
                str(rate), "--duration", str(duration), "--agents", str(agents), "--summary",
                self.summary_path, "--timeseries", self.ts_path] + list(extra)
        tm.type_line("clear; " + " ".join(args) + "; echo EXIT=$?")
        return tm

    def start_running(self, rate, duration, at=2):
        """start_run, then waits until the UI shows `at` seconds of it."""
        tm = self.start_run(rate, duration)
        tm.wait_for(r"running.*\n.*\] %d\.0 / %d\.0 s" % (at, duration), 15)
        return tm

    def run_pid(self):
        for c in children(self.tm.shell_pid()):
            with open("/proc/%d/cmdline" % c, "rb") as f:
                if harness.binary("stampede").encode() in f.read():
                    return c
        raise AssertionError("no stampede process under the shell")

    def wait_exit(self, timeout=40):
        s = self.tm.wait_for(r"EXIT=\d+", timeout)
        return int(re.search(r"EXIT=(\d+)", s).group(1)), s

    def summary(self):
        with open(self.summary_path) as f:
            return json.load(f)

    def series(self):
        with open(self.ts_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def assert_sane(self):
        """The shell is back with a sane terminal: the prompt, echo and canonical input on."""
        # A marker of its own per call, computed, so that neither the typed command line nor an
        # earlier call's output matches it.
        self.sane_calls = getattr(self, "sane_calls", 0) + 1
        n = 1000 + self.sane_calls
        self.tm.type_line("clear; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e echo -e -icanon "
                          "-e -echo | sort | tr '\\n' ' '; echo STTY-$((%d+1000))-DONE" % (n - 1000))
        s = self.tm.wait_for(r"STTY-%d-DONE\nREADY\$" % n, 10)
        flags = re.search(r"^(.*)STTY-%d-DONE" % n, s, re.M).group(1)
        self.assertEqual(flags.split(), ["echo", "icanon"], s)

    @staticmethod
    def header_ok(screen):
        m = re.search(r"  ok (\d+)  failed (\d+)", screen)
        return (int(m.group(1)), int(m.group(2))) if m else None


class TestTui(TuiCase):
    def test_panels_show_the_summary_figures_and_p_pauses(self):
        tm = self.start_run(rate=40, duration=12)
        tm.wait_for(r"running.*\n.*\] [3-9]\.0 / 12\.0 s", 15)
        tm.keys("p")
        tm.wait_for(r"p \(pause\): rate 40\.0 -> 0\.0 rps", 5)
        # The re-plan lead, then the last records of the load before the pause: the figures are
        # final while the rate is 0.
        time.sleep(3.0)
        s = tm.wait_for(r"PAUSED", 5)
        ok, failed = self.header_ok(s)
        lat = re.search(r"p50 ([\d.]+)  p90 ([\d.]+)  p99 ([\d.]+)", s)
        skew = re.search(r"skew ([\d.]+) ms", s)
        chart = re.search(r"target ([\d.]+)  achieved ([\d.]+)\s", s)
        bins = [int(x) for x in re.findall(r"\d+\.\d+-\d+\.\d+\s+█+ (\d+)", s)]
        self.assertIsNotNone(lat, s)
        self.assertIn("agents 2/2", s)
        tm.keys("s")
        code, end = self.wait_exit()
        self.assertEqual(code, 8, end)  # stopped by the user: the exit code of a stop
        summ = self.summary()
        self.assertEqual(summ["status"], "stopped")
        self.assertEqual(summ["requests"]["ok"], ok)
        self.assertEqual(summ["requests"]["failed"], failed)
        for i, k in enumerate(("p50", "p90", "p99")):
            self.assertAlmostEqual(summ["latency_ms"][k], float(lat.group(i + 1)), places=3)
        self.assertAlmostEqual(summ["start_skew_ms"], float(skew.group(1)), places=3)
        # The distribution's bars count every response.
        self.assertEqual(sum(bins), ok + failed)
        # The chart's legend is the last second of the time series (paused: 0 and 0).
        ts = self.series()
        self.assertEqual(float(chart.group(1)), ts[-1]["target_rps"])
        self.assertEqual(float(chart.group(2)), ts[-1]["achieved_rps"])
        # Paused seconds asked for nothing and sent nothing; the target saw exactly the total.
        zero = [r for r in ts if r["target_rps"] == 0]
        self.assertGreaterEqual(len(zero), 2)
        self.assertTrue(all(r["sent"] == 0 for r in zero))
        self.assertEqual(summ["rate_changes"][0]["to_rps"], 0)
        self.assertEqual(summ["rate_changes"][0]["by"], "key")
        self.assertEqual(targets.target_stats(self.url)["requests"], summ["requests"]["total"])
        # The summary table follows the UI, as without it.
        self.assertIn("run                    " + summ["run_id"], end)
        self.assert_sane()

    def test_agents_p99_and_the_requests_by_name_view(self):
        """One agent, a mix of three names: its p99 in the agents' table is that of its last
        second with responses in the time series (corrected, and uncorrected after l); the names
        view shows each name's figures as the summary and the target's counts per path give
        them, and the selected name's last second as the time series has it."""
        plan = os.path.join(self.dir, "mix.json")
        with open(plan, "w") as f:
            json.dump({"requests": [{"name": "home", "url": self.url + "/", "weight": 6},
                                    {"name": "item", "url": self.url + "/items?id=1", "weight": 3},
                                    {"name": "order", "url": self.url + "/orders", "weight": 1}],
                       "rate": 40, "duration": "14s", "agents": 1}, f)
        tm = self.open_tmux()
        tm.type_line("clear; " + " ".join([
            harness.binary("stampede"), "run", plan, "--tui", "--summary", self.summary_path,
            "--timeseries", self.ts_path]) + "; echo EXIT=$?")
        tm.wait_for(r"running.*\n.*\] [3-9]\.0 / 14\.0 s", 15)
        tm.keys("Tab")
        tm.keys("Tab")
        tm.wait_for(r"requests by name: 3 names", 3)
        tm.keys("Down")
        s = tm.wait_for(r"item: p99 and p50 ms per second, corrected", 3)
        last = re.search(r"p99 ([\d.]+)  p50 ([\d.]+)  \(the second (\d+)-\d+ s: (\d+) "
                         r"responses\)", s)
        self.assertIsNotNone(last, s)
        self.assertIsNotNone(re.search(r"> item ", s), s)
        self.assertRegex(s, "\u2502.*[\u2801-\u28ff]")  # the chart has dots
        tm.keys("p")
        tm.wait_for(r"p \(pause\): rate 40\.0 -> 0\.0 rps", 5)
        time.sleep(3.0)  # the re-plan lead, then the last responses: the figures are final
        s = tm.screen()
        table = {m[0]: [int(m[1]), int(m[2]), int(m[3]), float(m[5]), float(m[6]), float(m[7])]
                 for m in re.findall(r"^[> ] (home|item|order) +(\d+) +(\d+) +(\d+) +([\d.]+) "
                                     r"+([\d.]+) +([\d.]+) +([\d.]+)$", s, re.M)}
        self.assertEqual(sorted(table), ["home", "item", "order"], s)
        tm.keys("Tab")
        tm.keys("Tab")
        s = tm.wait_for(r"p99 of each one's last second, corrected", 3)
        row = r"local-1 +\S+ +[\d.]+ +[\d.]+ +([\d.]+) "
        p99 = float(re.search(row, s).group(1))
        tm.keys("l")
        s = tm.wait_for(r"p99 of each one's last second, uncorrected", 3)
        up99 = float(re.search(row, s).group(1))
        tm.keys("s")
        code, end = self.wait_exit()
        self.assertEqual(code, 8, end)
        summ, ts = self.summary(), self.series()
        with_responses = [r for r in ts if r["ok"] + r["failed"] > 0]
        self.assertEqual(p99, with_responses[-1]["p99_ms"])
        self.assertEqual(up99, with_responses[-1]["p99_uncorrected_ms"])
        second = [r for r in ts if r["t"] == int(last.group(3))][0]["by_name"]["item"]
        self.assertEqual(float(last.group(1)), second["p99_ms"])
        self.assertEqual(float(last.group(2)), second["p50_ms"])
        self.assertEqual(int(last.group(4)), second["ok"] + second["failed"])
        by_path = targets.target_stats(self.url)["by_path"]
        for name, path in (("home", "/"), ("item", "/items"), ("order", "/orders")):
            want = summ["requests_by_name"][name]
            lat = want["latency_ms"]
            self.assertEqual(table[name], [want["requests"]["total"], want["requests"]["ok"],
                                           want["requests"]["failed"], lat["p50"], lat["p90"],
                                           lat["p99"]], name)
            self.assertEqual(table[name][0], by_path[path], name)
        self.assertGreater(table["order"][0], 0)
        self.assert_sane()

    def test_plus_raises_the_rate_exactly_and_p_resumes(self):
        tm = self.start_running(rate=20, duration=9)
        tm.keys("+")
        tm.wait_for(r"\+: rate 20\.0 -> 22\.0 rps", 5)
        tm.wait_for(r"target 22\.0 rps", 5)
        time.sleep(1.5)
        tm.keys("p")
        tm.wait_for(r"p \(pause\): rate 22\.0 -> 0\.0 rps", 5)
        time.sleep(1.5)
        tm.keys("p")
        tm.wait_for(r"p \(resume\): rate 0\.0 -> 22\.0 rps", 5)
        code, end = self.wait_exit()
        self.assertEqual(code, 0, end)
        summ = self.summary()
        self.assertEqual(summ["status"], "completed")
        changes = summ["rate_changes"]
        self.assertEqual([(c["from_rps"], c["to_rps"], c["by"]) for c in changes],
                         [(20, 22, "key"), (22, 0, "key"), (0, 22, "key")])
        self.assertTrue(all(0 < a["at_s"] < b["at_s"] for a, b in zip(changes, changes[1:])))
        ts = self.series()
        self.assertEqual(len(ts), 9)
        # Every second wholly inside one rate asks for that rate and sends exactly that many.
        def rate_at(t):
            r = 20
            for c in changes:
                if c["at_s"] <= t:
                    r = c["to_rps"]
            return r
        # Exact to the request; a send made late across a second's boundary (a loaded machine: the
        # summary counts late sends) may move one request to the next second.
        slack = 0 if summ["requests"]["late"] == 0 else 1
        whole = 0
        for row in ts:
            t = row["t"]
            lo, hi = rate_at(t), rate_at(t + 0.999999)
            inside = not any(t < c["at_s"] < t + 1 for c in changes)
            if inside:
                whole += 1
                self.assertEqual(row["target_rps"], lo, row)
                self.assertLessEqual(abs(row["sent"] - lo), slack, row)
                self.assertLessEqual(abs(row["achieved_rps"] - lo), slack, row)
        self.assertGreaterEqual(whole, 4)
        self.assertTrue(any(r["target_rps"] == 22 and r["sent"] == 22 for r in ts))
        # The target counted exactly what the profile with its changes asks for, to the request.
        self.assertEqual(targets.target_stats(self.url)["requests"], summ["requests"]["total"])
        self.assertEqual(sum(r["sent"] for r in ts), summ["requests"]["total"])
        edges = [0] + [c["at_s"] for c in changes] + [9]
        rates = [20] + [c["to_rps"] for c in changes]
        asked = sum(r * (b - a) for r, a, b in zip(rates, edges, edges[1:]))
        self.assertAlmostEqual(summ["requests"]["total"], asked, delta=1)
        self.assert_sane()

    def test_resize_to_80x24_stays_readable(self):
        tm = self.start_running(rate=20, duration=7)
        tm.resize(80, 24)
        time.sleep(0.6)
        s = tm.wait_for(r"agents: 2 alive", 5)
        lines = s.split("\n")
        self.assertLessEqual(max(len(l) for l in lines), 80)
        self.assertRegex(lines[0], r"^stampede \d{8}T\d{6}Z-[0-9a-f]{8}  running")
        self.assertRegex(lines[1], r"\] [\d.]+ / 7\.0 s$")
        self.assertIn("target 20.0 rps", lines[2])
        for title in ("requests/s: target vs achieved", "latency ms, corrected", "errors/s",
                      "latency distribution", "agents: 2 alive, 0 lost", "events"):
            self.assertIn(title, s)
        self.assertRegex(s, r"local-1 +running +10\.0")
        self.assertIn("q quit", lines[23])
        # The agents view and the help at that size.
        tm.keys("Tab")
        s = tm.wait_for(r"name +state +share/s", 3)
        self.assertIn("local-2", s)
        tm.keys("?")
        tm.wait_for(r"type an exact rate", 3)
        tm.keys("?")
        tm.resize(120, 40)
        tm.wait_for(r"requests/s|agents:", 3)
        code, end = self.wait_exit()
        self.assertEqual(code, 0, end)
        self.assert_sane()

    def test_q_quits_and_restores_the_terminal(self):
        tm = self.start_running(rate=20, duration=20)
        t0 = time.monotonic()
        tm.keys("q")
        code, end = self.wait_exit(15)
        self.assertLess(time.monotonic() - t0, 12)
        self.assertEqual(code, 8, end)
        self.assertEqual(self.summary()["status"], "stopped")
        self.assertIn("requests in", end)  # the summary table
        self.assert_sane()

    def test_sigterm_restores_the_terminal(self):
        tm = self.start_running(rate=20, duration=20)
        os.kill(self.run_pid(), signal.SIGTERM)
        code, end = self.wait_exit(15)
        self.assertEqual(code, 8, end)
        self.assertEqual(self.summary()["status"], "stopped")
        self.assertNotIn("requests/s: target", end)  # the UI is gone from the screen
        self.assert_sane()

    def test_exact_rate_typed(self):
        tm = self.start_running(rate=10, duration=7)
        tm.keys("r")
        tm.wait_for(r"rate \(rps\): _", 3)
        tm.keys("3", "0", "x", "BSpace", "5")  # x is ignored; backspace removes the 0
        tm.wait_for(r"rate \(rps\): 35_", 3)
        tm.keys("Enter")
        tm.wait_for(r"r: rate 10\.0 -> 35\.0 rps", 5)
        code, end = self.wait_exit()
        self.assertEqual(code, 0, end)
        ts = self.series()
        self.assertEqual(ts[-1]["target_rps"], 35)
        self.assertEqual(ts[-1]["sent"], 35)
        self.assertEqual(self.summary()["rate_changes"][0]["to_rps"], 35)

    def test_no_color(self):
        tm = self.open_tmux(env={"NO_COLOR": "1"})
        self.start_run(rate=10, duration=3)
        tm.wait_for(r"running", 15)
        plain = tm.screen(escapes=True)
        self.assertIsNone(re.search(r"\x1b\[[0-9;]*(3[0-7]|38;5;\d+)m", plain), plain)
        code, _ = self.wait_exit()
        self.assertEqual(code, 0)
        tm.kill()
        tm = self.open_tmux()
        self.start_run(rate=10, duration=3)
        tm.wait_for(r"running", 15)
        coloured = tm.screen(escapes=True)
        self.assertIsNotNone(re.search(r"\x1b\[[0-9;]*(3[0-7]|38;5;\d+)m", coloured))
        self.wait_exit()

    def test_headless_in_a_terminal(self):
        tm = self.open_tmux()
        args = [harness.binary("stampede"), "run", "--headless", "--url", self.url + "/", "--rate",
                "10", "--duration", "2", "--agents", "1"]
        tm.type_line(" ".join(args) + "; echo EXIT=$?")
        code, s = self.wait_exit()
        self.assertEqual(code, 0, s)
        self.assertRegex(s, r"\[    1s\] target +10\.0 rps")
        self.assertNotIn("requests/s: target", s)

    def test_failed_run_restores_the_terminal(self):
        """No agent registers: the UI waits with the launch panel, the run fails, the terminal is
        restored and the failure is said after the UI."""
        tm = self.start_run(rate=10, duration=2, agents=1,
                            extra=["--launcher", "external", "--listen", "tcp://127.0.0.1:0",
                                   "--register-timeout", "3"])
        s = tm.wait_for(r"waiting for agents: 0 of 1 agents registered", 10)
        self.assertIn("launch", s)
        # The generated token is on the screen (only there), with the command that uses it.
        tm.wait_for(r"start each agent with: stampede-agent --coordinator "
                    r"tcp://127\.0\.0\.1:\d+ --token [0-9a-f]{32}", 5, joined=True)
        code, end = self.wait_exit(20)
        self.assertEqual(code, 6, end)
        self.assertRegex(end, r"run \S+ failed: .*regist")
        self.assert_sane()

    def test_unknown_terminal_is_refused(self):
        """TERM names a terminal curses does not know: exit 2 with the reason, before any load."""
        tm = self.open_tmux(env={"TERM": "st-no-such-terminal"})
        self.start_run(rate=10, duration=2, agents=1)
        code, s = self.wait_exit(20)
        self.assertEqual(code, 2, s)
        self.assertIn('--tui: the terminal "st-no-such-terminal" is unknown to curses', s)
        self.assertEqual(targets.target_stats(self.url)["requests"], 0)
        tm.type_line("export TERM=xterm-256color")
        self.assert_sane()

    def test_unknown_terminal_without_tui_falls_back_to_progress_lines(self):
        """Not asked for with --tui, the UI gives way to the progress lines, with a warning."""
        tm = self.open_tmux(env={"TERM": "st-no-such-terminal"})
        args = [harness.binary("stampede"), "run", "--url", self.url + "/", "--rate", "10",
                "--duration", "2", "--agents", "1"]
        tm.type_line(" ".join(args) + "; echo EXIT=$?")
        code, s = self.wait_exit(20)
        self.assertEqual(code, 0, s)
        self.assertIn("the terminal UI cannot run: the terminal \"st-no-such-terminal\" is "
                      "unknown", s)
        self.assertRegex(s, r"\[    2s\] target +10\.0 rps")
        self.assertEqual(targets.target_stats(self.url)["requests"], 20)

    def test_ctrl_c_quits_and_restores_the_terminal(self):
        tm = self.start_running(rate=20, duration=20)
        tm.keys("C-c")
        code, end = self.wait_exit(15)
        self.assertEqual(code, 8, end)
        self.assertEqual(self.summary()["status"], "stopped")
        self.assertIn("requests in", end)
        self.assert_sane()

    def test_sane_check_sees_a_raw_terminal(self):
        """The check of the tests above fails on a terminal left as curses keeps it."""
        tm = self.open_tmux()
        tm.type_line("stty -echo -icanon")
        time.sleep(0.3)
        with self.assertRaises(AssertionError):
            self.assert_sane()
        tm.type_line("stty sane")
        time.sleep(0.3)
        self.assert_sane()


class TestTuiEcs(TuiCase):
    """--launcher ecs through the fake ECS endpoint (fake_ecs.py, real stampede-agent tasks)."""

    def test_launch_progress_then_tasks_in_the_agents_view(self):
        import aws_env
        fake = self.start(["/usr/bin/python3", os.path.join(os.path.dirname(__file__),
                                                            "fake_ecs.py"),
                           "--agent-cmd", harness.binary("stampede-agent"), "--provision-ms",
                           "1500", "--pending-ms", "1000", "--log-dir", self.dir],
                          name="fake-ecs")
        ecs_url = "http://127.0.0.1:%d" % int(fake.wait_output("fake-ecs ready", 20).split()[2])
        port = harness.free_port()
        url = "tcp://127.0.0.1:%d" % port
        tm = self.open_tmux(env=aws_env.aws_env())
        self.start_run(rate=20, duration=4, extra=[
            "--launcher", "ecs", "--cluster", "stampede", "--task-definition", "stampede-agent:3",
            "--subnets", "subnet-1", "--security-groups", "sg-1", "--container", "agent",
            "--listen", url, "--advertise", url, "--endpoint-url", ecs_url, "--threads", "1"])
        s = tm.wait_for(r"ecs: 2 of 2 tasks started: \d+ provisioning", 20)
        self.assertIn("waiting for agents: 0 of 2 agents registered", s)
        tm.wait_for(r"^stampede \S+  running", 30)
        tm.keys("Tab")
        s = tm.wait_for(r"name +state +share/s .*host / task, AZ(.|\n)*running .* task \S+", 5)
        code, end = self.wait_exit(40)
        self.assertEqual(code, 0, end)
        summ = self.summary()
        self.assertEqual(summ["requests"]["total"], 80)
        self.assertTrue(all(a["task"] for a in summ["agents"]))
        self.assert_sane()


class TestFollow(TuiCase):
    """stampede results RUN_ID --follow while a run ships its seconds through SQS (emulator) and
    the sink into DynamoDB (dynalite)."""

    @classmethod
    def setUpClass(cls):
        import aws_env
        cls.aws = aws_env
        cls.ddb_proc, cls.ddb_url = aws_env.start_dynalite()
        cls.sqs_proc, cls.sqs_url = aws_env.start_sqs()
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.sqs_proc.stop()
        cls.ddb_proc.stop()

    def cloud_run(self, duration):
        """A headless run shipping to a new queue, a sink into a new table; (run, run id, table)."""
        type(self).n += 1
        name = "follow-%d" % self.n
        queue, _ = self.aws.create_queue_with_dlq(self.sqs_url, name, visibility_s=30)
        self.aws.create_table(self.ddb_url, name)
        env = self.aws.aws_env()
        self.start([harness.binary("stampede-sink"), "--queue-url", queue, "--table", name,
                    "--endpoint-url", self.ddb_url, "--wait-seconds", "1"], env=env)
        run = self.start([harness.binary("stampede"), "run", "--headless", "--url", self.url + "/",
                          "--rate", 20, "--duration", duration, "--agents", 2, "--sqs-queue-url",
                          queue, "--spool", os.path.join(self.dir, "spool"), "--summary",
                          self.summary_path, "--timeseries", self.ts_path], env=env)
        line = run.wait_output(": 2 agents, ", stream="stderr")
        run_id = re.search(r"info: run (\S+): 2 agents", line).group(1)
        return run, run_id, name

    def follow_args(self, run_id, table, *extra):
        return [harness.binary("stampede"), "results", run_id, "--table", table, "--endpoint-url",
                self.ddb_url, "--follow"] + list(extra)

    def test_follow_headless_prints_the_seconds_as_they_arrive(self):
        run, run_id, table = self.cloud_run(6)
        f = self.start(self.follow_args(run_id, table, "--headless"), env=self.aws.aws_env())
        # Seconds show while the run still goes on.
        f.wait_output("[    2s] target", timeout=20)
        self.assertIsNone(run.p.poll(), "the run had ended: nothing was followed live")
        self.assertEqual(run.wait(60), 0, run.stderr())
        self.assertEqual(f.wait(60), 0, f.stderr())
        out = f.stdout()
        lines = re.findall(r"\[ *(\d+)s\] target +([\d.]+) rps +achieved +(\d+) rps +ok +(\d+)",
                           out)
        ts = self.series()
        self.assertEqual([int(l[0]) for l in lines], [r["t"] + 1 for r in ts])
        self.assertEqual([int(l[3]) for l in lines], [r["ok"] for r in ts])
        self.assertEqual([int(l[2]) for l in lines], [r["achieved_rps"] for r in ts])
        # Then what `stampede results` prints, summary and check included.
        self.assertIn("summary stored", out)
        self.assertIn("match the stored histograms", out)

    def test_follow_ui_is_read_only(self):
        run, run_id, table = self.cloud_run(6)
        tm = self.open_tmux(env=self.aws.aws_env())
        tm.type_line("clear; " + " ".join(self.follow_args(run_id, table)) + "; echo EXIT=$?")
        s = tm.wait_for(r"following, read-only", 20)
        self.assertIn(run_id, s)
        tm.wait_for(r"\] [2-9]\.0 s", 20)
        tm.keys("+")
        tm.keys("p")
        tm.keys("?")
        tm.wait_for(r"keys \(read-only: no steering\)", 5)
        tm.keys("?")
        self.assertEqual(run.wait(60), 0, run.stderr())
        # The summary is stored: the UI stays on the run, with its agents, until q.
        tm.wait_for(r"summary stored: completed", 30)
        tm.keys("Tab")
        s = tm.wait_for(r"local-2 +done", 5)
        for a in self.summary()["agents"]:
            self.assertRegex(s, r"%s +done +%.1f +%.1f +- +0 " % (a["name"], a["share_rps"],
                                                                 a["requests"] / 6.0))
        self.assertIn("agents 2/2", s)
        time.sleep(1.5)
        self.assertNotIn("EXIT=", tm.screen())
        tm.keys("q")
        code, end = self.wait_exit(20)
        self.assertEqual(code, 0, end)
        self.assertIn("match the stored histograms", end)
        # The keys steered nothing: the run kept its rate.
        self.assertNotIn("rate_changes", self.summary())
        self.assertEqual(self.summary()["requests"]["total"], 120)
        self.assert_sane()


class TestTuiFlags(harness.ProcTestCase):
    def test_tui_without_a_terminal_is_refused(self):
        target, url = targets.start_target(self)
        p = self.start([harness.binary("stampede"), "run", "--tui", "--url", url + "/", "--rate",
                        "10", "--duration", "1", "--agents", "1"])
        self.assertEqual(p.wait(20), 2)
        self.assertIn("--tui: stdout is not a terminal", p.stderr())
        self.assertEqual(targets.target_stats(url)["requests"], 0)

    def test_tui_with_headless_is_refused(self):
        p = self.start([harness.binary("stampede"), "run", "--tui", "--headless", "--url",
                        "http://127.0.0.1:9/", "--rate", "10", "--duration", "1"])
        self.assertEqual(p.wait(20), 2)
        self.assertIn("--tui and --headless", p.stderr())


if __name__ == "__main__":
    unittest.main()
