"""stampede run: a distributed run over real agent processes on loopback."""
import json
import os
import pty
import re
import select
import signal
import subprocess
import tempfile
import time
import unittest

import fullfs
import harness
import targets
import tcpproxy


def children(pid):
    """Process ids whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(d))
        except (OSError, IndexError):
            pass
    return out


def load(url, rate, duration, agents):
    """The flags of a load: GET url/ at rate for duration seconds over agents agents."""
    return ["--url", url + "/", "--rate", rate, "--duration", duration, "--agents", agents]


def pause(pid, seconds):
    """Stops process pid for this long, and lets it go on whatever happens meanwhile."""
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


class RunCase(harness.ProcTestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="st-run-")
        self.summary_path = os.path.join(self.dir, "summary.json")
        self.ts_path = os.path.join(self.dir, "ts.jsonl")

    def start_run(self, *args):
        return self.start([harness.binary("stampede"), "run", "--summary", self.summary_path,
                           "--timeseries", self.ts_path] + [str(a) for a in args])

    def run_stampede(self, *args, timeout=60):
        p = self.start_run(*args)
        code = p.wait(timeout)
        return code, p

    def completed_run(self, *args):
        """Runs to exit 0; the summary and the process."""
        code, p = self.run_stampede(*args)
        self.assertEqual(code, 0, p.stderr())
        return self.summary(), p

    def summary(self):
        with open(self.summary_path) as f:
            return json.load(f)

    def timeseries(self):
        """Every line of the time series, as written."""
        with open(self.ts_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def series(self, duration):
        """The seconds of the run proper. After them only a drain second may follow: requests
        still completing after the end, with nothing due."""
        ts = self.timeseries()
        self.assertEqual([r["t"] for r in ts[:duration]], list(range(duration)))
        for r in ts[duration:]:
            self.assertEqual(r["t"], duration, ts)
            self.assertEqual((r["target_rps"], r["sent"]), (0, 0), ts)
        return ts[:duration]

    def agent_process(self, p, name):
        """The pid of run p's local agent with this name."""
        found = [c for c in children(p.pid) if name.encode() in cmdline(c)]
        self.assertEqual(len(found), 1)
        return found[0]

    def degraded_end(self, p, url, what):
        """Waits for run p to end degraded (exit 9) with every request the target saw counted,
        but for a few in flight at a pause; the summary and what the target saw."""
        code = p.wait(60)
        s = self.summary()
        seen = targets.target_stats(url)["requests"]
        sent = s["requests"]["sent"]
        print("%s: target %d, summary sent %d, exit %d, status %s, incomplete %s"
              % (what, seen, sent, code, s.get("status"), s.get("incomplete_seconds")))
        self.assertEqual(code, 9, p.stderr())
        self.assertEqual(s["status"], "degraded")
        self.assertLessEqual(abs(seen - sent), 5, s)
        return s, seen

    def lost_agent(self, s, name):
        """The summary's only lost agent, which must be this one."""
        lost = [a for a in s["agents"] if a["lost"]]
        self.assertEqual([a["name"] for a in lost], [name])
        self.assertEqual(lost[0]["state"], "lost")
        return lost[0]

    def start_agent(self, coordinator, token, name, *extra):
        return self.start([harness.binary("stampede-agent"), "--coordinator", coordinator,
                           "--token", token, "--name", name, "--threads", 1] + list(extra))


class LocalRuns(RunCase):
    def test_three_local_agents_match_the_target(self):
        _, url = targets.start_target(self)
        s, p = self.completed_run(*load(url, 900, 3, 3))
        self.assertEqual(s["status"], "completed")
        self.assertEqual(s["requests"]["total"], 2700)
        self.assertEqual(targets.target_stats(url)["requests"], 2700)
        self.assertEqual(len(s["agents"]), 3)
        self.assertAlmostEqual(sum(a["share_rps"] for a in s["agents"]), 900, places=6)
        self.assertEqual(sum(a["requests"] for a in s["agents"]), 2700)
        for a in s["agents"]:
            self.assertFalse(a["lost"])
            self.assertEqual(a["requests"], 900)
        self.assertIsNotNone(s["start_skew_ms"])
        self.assertTrue(s["run_id"])
        ts = self.series(3)
        self.assertEqual(sum(r["sent"] for r in ts), 2700)
        for r in ts:
            self.assertEqual(r["agents"], 3)
            self.assertEqual(r["target_rps"], 900)
        self.assertIn("agents 3", p.stdout())

    def test_ramp_follows_the_profile(self):
        _, url = targets.start_target(self)
        code, p = self.run_stampede("--url", url + "/", "--rate", 800, "--duration", 4,
                                    "--ramp-up", 2, "--agents", 2, "--threads", 1)
        self.assertEqual(code, 0, p.stderr())
        s = self.summary()
        # 0 -> 800 over 2 s is 800 requests, then 2 s at 800.
        self.assertEqual(s["requests"]["total"], 2400)
        # The summary says what was asked, defaults included.
        self.assertEqual(s["plan"], {
            "engine": "auto", "duration_s": 4, "requests": 2400, "average_rps": 600,
            "send_window_ms": 1, "agents": 2, "threads_per_agent": 1,
            "connections_per_agent": 64, "timeout_ms": 10000, "late_ms": 10, "http2": False,
            "streams": 1, "insecure": False})
        ts = self.series(4)
        self.assertEqual([r["target_rps"] for r in ts], [200, 600, 800, 800])
        # Sends follow the schedule second by second (completions may straddle a boundary).
        for r in ts:
            self.assertLessEqual(abs(r["sent"] - r["target_rps"]), 8, ts)

    def test_fractional_rate_over_eight_agents(self):
        _, url = targets.start_target(self)
        s, p = self.completed_run(*load(url, 5, 4, 8), "--connections", 2)
        self.assertEqual(s["requests"]["total"], 20)
        self.assertEqual(targets.target_stats(url)["requests"], 20)
        self.assertAlmostEqual(sum(a["share_rps"] for a in s["agents"]), 5, places=9)

    def test_seed_payload_is_a_plan(self):
        _, url = targets.start_target(self)
        plan = os.path.join(self.dir, "seed.json")
        with open(plan, "w") as f:
            json.dump({"taskCount": 2, "targetUrl": url + "/", "vus": 4, "rate": 25,
                       "duration": 2}, f)
        s, p = self.completed_run(plan)
        self.assertEqual(len(s["agents"]), 2)
        self.assertEqual(s["requests"]["total"], 400)
        self.assertEqual(s["rate"]["target_rps"], 200)

    def test_closed_loop_counts_match(self):
        _, url = targets.start_target(self)
        s, p = self.completed_run(*load(url, 0, 2, 2), "--connections", 4)
        self.assertTrue(s["closed_loop"])
        self.assertGreater(s["requests"]["total"], 500)
        self.assertEqual(targets.target_stats(url)["requests"], s["requests"]["total"])

    def test_kill9_agent_moves_its_share(self):
        _, url = targets.start_target(self)
        p = self.start_run(*load(url, 600, 9, 3))
        p.wait_output("[    2s]", timeout=20)
        os.kill(self.agent_process(p, "local-2"), signal.SIGKILL)
        # A run that lost an agent is degraded, never "completed" with exit 0.
        self.assertEqual(p.wait(40), 9, p.stderr())
        s = self.summary()
        self.assertEqual(s["status"], "degraded")
        self.assertTrue(s["incomplete_seconds"])
        self.assertEqual(self.lost_agent(s, "local-2")["reason"], "its process exited")
        ts = self.series(9)
        # The survivors carry the whole profile again within a couple of seconds.
        for r in ts[-4:]:
            self.assertLessEqual(abs(r["sent"] - 600), 12, ts)
            self.assertEqual(r["agents"], 2)
        # What the dead agent measured but never reported is missing, nothing else.
        seen = targets.target_stats(url)["requests"]
        self.assertGreaterEqual(seen, s["requests"]["total"])
        self.assertLess(seen - s["requests"]["total"], 2 * 200 + 50)
        self.assertIn("lost", p.stderr())

    def test_paused_agent_sends_no_backlog_and_is_counted(self):
        # An agent paused for 4 s (longer than the loss bound) and resumed: it never sends the
        # backlog it finds on waking, and whatever it sent is in the summary.
        _, url = targets.start_target(self)
        p = self.start_run(*load(url, 300, 12, 3))
        p.wait_output("[    3s]", timeout=20)
        pause(self.agent_process(p, "local-2"), 4)
        # Every request the target saw is counted; only requests in flight at the pause (a few,
        # at 100 rps per agent and a millisecond each) may be on one side only.
        s, _ = self.degraded_end(p, url, "paused agent")
        self.assertIn("reason", self.lost_agent(s, "local-2"))
        self.assertTrue(s["incomplete_seconds"])
        self.assertLessEqual(min(s["incomplete_seconds"]), 4, s)
        # The survivors carry the whole profile by the end.
        ts = self.series(12)
        for r in ts[-3:]:
            self.assertLessEqual(abs(r["sent"] - 300), 8, ts)

    def test_paused_coordinator_keeps_the_records(self):
        # The coordinator paused for 4 s at 3 s of a 10 s run: the agents stop their load on
        # silence, keep their records, and the coordinator takes them when it resumes.
        _, url = targets.start_target(self)
        p = self.start_run(*load(url, 300, 10, 3))
        p.wait_output("[    2s]", timeout=20)
        pause(p.pid, 4)
        s, seen = self.degraded_end(p, url, "paused coordinator")
        self.assertEqual(s["requests"]["total"], seen)
        # The load stopped within the agents' silence bound of the pause, and the seconds from
        # then on are incomplete, each agent saying why.
        self.assertGreater(seen, 600)
        self.assertLess(seen, 300 * 6)
        self.assertEqual(s["incomplete_seconds"][-1], 9)
        for a in s["agents"]:
            self.assertEqual(a["state"], "lost")
            self.assertIn("stopped its load", a["reason"])
        ts = self.timeseries()
        # The seconds before the pause carry their load: nothing was lost with the records.
        for r in ts[:2]:
            self.assertLessEqual(abs(r["sent"] - 300), 8, ts)

    def test_sigint_stops_and_writes_the_summary(self):
        _, url = targets.start_target(self)
        p = self.start_run(*load(url, 200, 60, 2))
        p.wait_output("[    2s]", timeout=20)
        os.kill(p.pid, signal.SIGINT)
        self.assertEqual(p.wait(30), 8, p.stderr())
        s = self.summary()
        self.assertEqual(s["status"], "stopped")
        self.assertLess(s["duration_s"], 10)
        self.assertEqual(targets.target_stats(url)["requests"], s["requests"]["total"])
        # Every agent stopped at the same instant, which ends the duration: what was asked for
        # up to it is what was sent, and the rates agree.
        # (request q is due at q / 200 s: those due before the instant, to within the rounding
        # of duration_s in the summary)
        self.assertLessEqual(abs(s["requests"]["sent"] - 200 * s["duration_s"]), 1)
        self.assertEqual(s["requests"]["total"], s["requests"]["sent"])
        self.assertAlmostEqual(s["rate"]["achieved_rps"], s["rate"]["target_rps"], delta=0.5)
        self.assertIn("stopping: the load ends", p.stderr())
        for c in children(p.pid):
            self.assertNotIn(b"--coordinator", cmdline(c))

    def test_bad_plan_exits_2_naming_the_path(self):
        plan = os.path.join(self.dir, "plan.json")
        with open(plan, "w") as f:
            json.dump({"url": "http://127.0.0.1:1/", "rate": 10, "duration": 2,
                       "stages": [{"duration": 1, "rate": 5}]}, f)
        code, p = self.run_stampede(plan, timeout=10)
        self.assertEqual(code, 2)
        self.assertIn("$.stages", p.stderr())
        code, p = self.run_stampede("--url", "http://127.0.0.1:1/", "--rate", 5,
                                    "--duration", 1, "--launcher", "ecs2", timeout=10)
        self.assertEqual(code, 2)
        self.assertIn("--launcher", p.stderr())


    def write_plan(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def expect_dry_run_refused(self, args, needle):
        code, p = self.run_stampede(*args, "--dry-run", timeout=10)
        self.assertEqual(code, 2, (args, p.stdout(), p.stderr()))
        self.assertIn(needle, p.stderr(), args)

    def test_dry_run_refuses_what_the_run_would_fail_on(self):
        load = ["--url", "http://127.0.0.1:1/", "--rate", 5, "--duration", 1]
        self.expect_dry_run_refused(["--url", "https://127.0.0.1:1/", "--rate", 5,
                                     "--duration", 1, "--http2", "--engine", "fast"],
                                    "--engine fast")
        self.expect_dry_run_refused(load + ["--listen", "foo"], "--listen")
        # A run (not a dry one) is refused the same way, before any agent starts.
        code, p = self.run_stampede(*load, "--listen", "foo", timeout=10)
        self.assertEqual(code, 2, p.stderr())
        code, p = self.run_stampede(*load, "--listen", "tcp://127.0.0.1:0", "--dry-run",
                                    timeout=10)
        self.assertEqual(code, 0, p.stderr())

    def test_values_are_plain_decimal_and_given_once(self):
        base = ["--url", "http://127.0.0.1:1/", "--duration", 1]
        self.expect_dry_run_refused(base + ["--rate", "-0"], '--rate: "-0"')
        self.expect_dry_run_refused(base + ["--rate", "0x10"], '--rate: "0x10"')
        self.expect_dry_run_refused(base + ["--rate", 10, "--rate", 20], "--rate: given twice")
        self.expect_dry_run_refused(["--url", "http://127.0.0.1:1/", "--rate", 5,
                                     "--duration", "0x10s"], "--duration")

    def test_plans_are_refused_not_bent(self):
        cases = [
            ('{"url": "http://127.0.0.1:1/a\\u0000b", "rate": 1, "duration": 1}',
             "$.url: holds a NUL"),
            ('{"requests": [{"url": "http://127.0.0.1:1/", "headers": {"X-A": "\\u0000"}}], '
             '"rate": 1, "duration": 1}', "$.requests[0].headers.X-A: holds a NUL"),
            ('{"url": "http://127.0.0.1:1/", "rate": 1, "rate": 5, "duration": 1}',
             "$.rate: is given twice"),
            ('{"url": "http://127.0.0.1:1/", "rate": 1, "duration": 1}\n}', "line 2, column 1"),
            ('{"url": "http://127.0.0.1:1/", "start_rate": 2, "rate": 1, "duration": 1}',
             "$.start_rate"),
        ]
        for i, (text, needle) in enumerate(cases):
            self.expect_dry_run_refused([self.write_plan("p%d.json" % i, text)], needle)

    def test_only_regular_files_and_a_fifo_never_hangs(self):
        fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(fifo)
        body = self.write_plan("body.json", json.dumps(
            {"requests": [{"url": "http://127.0.0.1:1/", "body_file": "fifo"}],
             "rate": 1, "duration": 1}))
        # Each would hang or mislead before: run_stampede's timeout fails the test on a hang.
        self.expect_dry_run_refused([body], "body_file: file %s is a FIFO" % fifo)
        self.expect_dry_run_refused([fifo], "the plan file is a FIFO")
        self.expect_dry_run_refused([self.dir], "the plan file is a directory")
        dev = self.write_plan("dev.json", json.dumps(
            {"requests": [{"url": "http://127.0.0.1:1/", "body_file": "/dev/zero"}],
             "rate": 1, "duration": 1}))
        self.expect_dry_run_refused([dev], "/dev/zero is a device")
        d = self.write_plan("dir.json", json.dumps(
            {"requests": [{"url": "http://127.0.0.1:1/", "body_file": "."}],
             "rate": 1, "duration": 1}))
        self.expect_dry_run_refused([d], "is a directory")


class OutputFiles(RunCase):
    """A result file is written whole or not at all, and a write that fails is a failed run."""

    def run_to(self, url, *outputs, timeout=40):
        p = self.start([harness.binary("stampede"), "run", "--url", url + "/", "--rate", 20,
                        "--duration", 1, "--agents", 1] + [str(a) for a in outputs])
        return p.wait(timeout), p

    def test_summary_to_a_full_device_exits_1_naming_it(self):
        _, url = targets.start_target(self)
        full = fullfs.full_device(self)
        code, p = self.run_to(url, "--summary", full, "--timeseries", self.ts_path)
        self.assertEqual(code, 1, p.stderr())
        self.assertIn("--summary %s: cannot write it: No space left on device" % full, p.stderr())
        # The device is written in place: nothing was created or renamed beside it.
        self.assertEqual(os.listdir(os.path.dirname(full)), [os.path.basename(full)])
        # The other outputs still got everything.
        self.series(1)

    def test_timeseries_to_a_full_device_exits_1_naming_it(self):
        _, url = targets.start_target(self)
        full = fullfs.full_device(self)
        code, p = self.run_to(url, "--summary", self.summary_path, "--timeseries", full)
        self.assertEqual(code, 1, p.stderr())
        self.assertIn("--timeseries %s: cannot write it: No space left on device" % full,
                      p.stderr())
        self.assertEqual(self.summary()["status"], "completed")

    def test_a_full_filesystem_leaves_the_old_files_and_exits_1(self):
        _, url = targets.start_target(self)
        mnt = fullfs.small_tmpfs(self, 256)
        summary = os.path.join(mnt, "summary.json")
        series = os.path.join(mnt, "ts.jsonl")
        for path in (summary, series):
            with open(path, "w") as f:
                f.write("an earlier run's\n")
        fullfs.fill(mnt)
        code, p = self.run_to(url, "--summary", summary, "--timeseries", series)
        self.assertEqual(code, 1, p.stderr())
        self.assertIn("--summary %s: cannot write it: No space left on device" % summary,
                      p.stderr())
        self.assertIn("--timeseries %s: cannot write it: No space left on device" % series,
                      p.stderr())
        # Neither a part of the new files nor a temporary one: the earlier files, untouched.
        self.assertEqual(sorted(os.listdir(mnt)), ["filler", "summary.json", "ts.jsonl"])
        for path in (summary, series):
            with open(path) as f:
                self.assertEqual(f.read(), "an earlier run's\n")

    def test_files_appear_whole_at_the_end(self):
        _, url = targets.start_target(self)
        p = self.start([harness.binary("stampede"), "run", "--url", url + "/", "--rate", 20,
                        "--duration", 3, "--agents", 1, "--summary", self.summary_path,
                        "--timeseries", self.ts_path])
        p.wait_output("[    1s]", timeout=20)
        # While the run goes on, the files are written under temporary names only.
        self.assertFalse(os.path.exists(self.summary_path))
        self.assertFalse(os.path.exists(self.ts_path))
        self.assertEqual(p.wait(40), 0, p.stderr())
        self.assertEqual(sorted(os.listdir(self.dir)), ["summary.json", "ts.jsonl"])
        self.assertEqual(self.summary()["requests"]["total"], 60)
        self.series(3)

    def test_an_early_failure_leaves_no_file(self):
        code, p = self.run_to("http://127.0.0.1:1", "--listen", "bogus://x", "--summary",
                              self.summary_path, "--timeseries", self.ts_path, timeout=20)
        self.assertEqual(code, 2, p.stderr())
        self.assertIn("bogus://x", p.stderr())
        self.assertEqual(os.listdir(self.dir), [])

    def test_an_unwritable_folder_is_refused_before_the_run(self):
        missing = os.path.join(self.dir, "no-such-folder", "summary.json")
        code, p = self.run_to("http://127.0.0.1:1", "--summary", missing, timeout=20)
        self.assertEqual(code, 2, p.stderr())
        self.assertIn("--summary %s: cannot create a file in its folder" % missing, p.stderr())
        self.assertEqual(os.listdir(self.dir), [])


class FailureLatency(RunCase):
    def test_a_stall_is_no_responses_and_slow_with_timeouts(self):
        # Every answer takes 2 s, the timeout is 500 ms: no request gets a response.
        _, url = targets.start_target(self, "--latency-ms", "2000")
        s, p = self.completed_run(*load(url, 20, 3, 1), "--timeout", 500)
        self.assertEqual(s["errors"]["timeout"], 60)
        for block in ("latency_ms", "latency_uncorrected_ms"):
            self.assertEqual(set(s[block].values()), {None}, s[block])
        # Counted at the timeout, the stall reads as at least 500 ms, not as 0 ms.
        self.assertEqual(s["latency_with_timeouts_ms"]["p50"], 500)
        self.assertEqual(s["latency_with_timeouts_ms"]["p99"], 500)
        ts = self.timeseries()
        self.assertEqual(sum(r["timeouts"] for r in ts), 60)
        for r in ts:
            self.assertEqual((r["p50_ms"], r["p99_ms"], r["max_ms"]), (None, None, None), r)
            if r["timeouts"]:
                self.assertEqual(r["p99_with_timeouts_ms"], 500, r)
        out = p.stdout()
        self.assertNotIn("p50    0.000 ms", out)
        self.assertIn("no responses", out)
        self.assertIn("p99 >= 500.000 ms", out)
        self.assertIn("latency (corrected)    no responses", out)
        self.assertRegex(out, r"latency \(w/ timeouts\)  p50   500\.000")


class ExternalRuns(RunCase):
    TOKEN = "integration-token-1"

    def start_external(self, url, agents, *extra, rate=400, duration=6):
        port = harness.free_port()
        p = self.start_run(*load(url, rate, duration, agents), "--launcher", "external",
                           "--listen", "tcp://127.0.0.1:%d" % port, "--token", self.TOKEN, *extra)
        harness.wait_port(port)
        return p, "tcp://127.0.0.1:%d" % port

    def test_missing_agents_exit_6_with_a_summary(self):
        _, url = targets.start_target(self)
        p, _ = self.start_external(url, 2, "--register-timeout", 2)
        self.assertEqual(p.wait(20), 6, p.stderr())
        s = self.summary()
        self.assertEqual(s["status"], "failed")
        self.assertIn("0 of 2 agents", s["error"])
        self.assertEqual(targets.target_stats(url)["requests"], 0)

    def test_generated_token_is_shown_on_a_terminal_only(self):
        _, url = targets.start_target(self)
        args = [*load(url, 5, 1, 1),
                "--launcher", "external", "--register-timeout", 2]
        port = harness.free_port()
        code, p = self.run_stampede(*args, "--listen", "tcp://127.0.0.1:%d" % port, timeout=10)
        self.assertEqual(code, 2, p.stderr())
        self.assertIn("--token", p.stderr())
        self.assertNotRegex(p.stderr(), r"--token [0-9a-f]{16,}")
        # On a terminal the command that starts an agent is shown, token included.
        master, slave = pty.openpty()
        port = harness.free_port()
        proc = subprocess.Popen([harness.binary("stampede"), "run", "--summary", self.summary_path]
                                + [str(a) for a in args] + ["--listen", "tcp://127.0.0.1:%d" % port],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
                                start_new_session=True)
        os.close(slave)
        text = b""
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.5)
                if ready:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    text += chunk
                elif proc.poll() is not None:
                    break
            self.assertEqual(proc.wait(10), 6, text)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        self.assertRegex(text.decode(errors="replace"),
                         r"stampede-agent --coordinator tcp://\S+ --token [0-9a-f]{16,}")

    def test_wrong_token_is_refused(self):
        _, url = targets.start_target(self)
        p, coord = self.start_external(url, 1, "--register-timeout", 3)
        agent = self.start([harness.binary("stampede-agent"), "--coordinator", coord,
                            "--token", "not-the-token"])
        self.assertEqual(agent.wait(15), 3, agent.stderr())
        self.assertIn("refused", agent.stderr())
        self.assertEqual(p.wait(20), 6)
        self.assertIn("wrong token", p.stderr())

    def test_agents_with_one_name_are_told_apart(self):
        _, url = targets.start_target(self)
        p, coord = self.start_external(url, 2, rate=100, duration=2)
        self.start_agent(coord, self.TOKEN, "twin")
        self.start_agent(coord, self.TOKEN, "twin")
        self.assertEqual(p.wait(40), 0, p.stderr())
        names = sorted(a["name"] for a in self.summary()["agents"])
        self.assertEqual(names, ["twin", "twin#2"])
        self.assertIn('another agent has that name; this one is "twin#2"', p.stderr())

    def test_agent_joining_late_gets_a_share(self):
        _, url = targets.start_target(self)
        p, coord = self.start_external(url, 1, rate=400, duration=8)
        self.start_agent(coord, self.TOKEN, "first")
        p.wait_output("[    2s]", timeout=20)
        self.start_agent(coord, self.TOKEN, "late")
        self.assertEqual(p.wait(40), 0, p.stderr())
        s = self.summary()
        names = {a["name"]: a for a in s["agents"]}
        self.assertEqual(set(names), {"first", "late"})
        self.assertGreater(names["late"]["requests"], 400)
        self.assertAlmostEqual(names["late"]["share_rps"], 200, places=6)
        self.assertEqual(targets.target_stats(url)["requests"], s["requests"]["total"])
        ts = self.series(8)
        self.assertEqual(ts[-1]["agents"], 2)
        for r in ts:
            self.assertLessEqual(abs(r["sent"] - 400), 8, ts)
        self.assertEqual(s["requests"]["total"], 3200)

    def test_kill9_coordinator_stops_every_agent(self):
        _, url = targets.start_target(self)
        p, coord = self.start_external(url, 2, rate=300, duration=60)
        agents = [self.start_agent(coord, self.TOKEN, "a%d" % i) for i in range(2)]
        p.wait_output("[    2s]", timeout=20)
        p.kill9()
        killed_at = time.monotonic()
        # The target sees no request from them 5 s after the coordinator died.
        time.sleep(max(0.0, killed_at + 4 - time.monotonic()))
        seen = targets.target_stats(url)["requests"]
        time.sleep(max(0.0, killed_at + 5.5 - time.monotonic()))
        self.assertEqual(targets.target_stats(url)["requests"], seen)
        # They keep their records for a coordinator that might resume (30 s), then exit 7.
        for a in agents:
            self.assertEqual(a.wait(45), 7, a.stderr())
            self.assertIn("records of this agent are lost", a.stderr())

    def test_coordinator_ending_before_the_start_is_not_success(self):
        # The coordinator gives up waiting for a second agent: the one that registered exits 7
        # with a message, not 0 silently.
        _, url = targets.start_target(self)
        p, coord = self.start_external(url, 2, "--register-timeout", 2)
        agent = self.start_agent(coord, self.TOKEN, "early")
        self.assertEqual(p.wait(20), 6, p.stderr())
        self.assertEqual(agent.wait(20), 7, agent.stderr())
        self.assertIn("ended the run before it started", agent.stderr())
        self.assertEqual(targets.target_stats(url)["requests"], 0)

    def test_dropped_connection_loses_no_second(self):
        _, url = targets.start_target(self)
        port = harness.free_port()
        p = self.start_run(*load(url, 300, 7, 2),
                           "--launcher", "external", "--listen", "tcp://127.0.0.1:%d" % port,
                           "--token", self.TOKEN)
        harness.wait_port(port)
        proxy = tcpproxy.TcpProxy(port)
        self.addCleanup(proxy.close)
        via = "tcp://127.0.0.1:%d" % proxy.port
        for i in range(2):
            self.start_agent(via, self.TOKEN, "a%d" % i)
        p.wait_output("[    3s]", timeout=20)
        self.assertEqual(proxy.cut(), 2)
        self.assertEqual(p.wait(40), 0, p.stderr())
        s = self.summary()
        self.assertFalse(any(a["lost"] for a in s["agents"]))
        self.assertEqual(s["requests"]["total"], 2100)
        self.assertEqual(targets.target_stats(url)["requests"], 2100)
        # Every second was reported in time: no record arrived after its second was closed.
        ts = self.series(7)
        self.assertEqual(sum(r["sent"] for r in ts), 2100)
        self.assertEqual(s["late_records"], 0)

    def test_foreign_bytes_are_dropped_and_counted(self):
        _, url = targets.start_target(self)
        p, coord = self.start_external(url, 1, rate=100, duration=4)
        self.start_agent(coord, self.TOKEN, "only")
        p.wait_output("[    1s]", timeout=20)
        for data in ["garbage", "\x08\x01\x12\x03abc", ""]:
            subprocess.run(["nngcat", "--req0", "--dial", coord, "--data", data,
                            "--recv-timeout", "1"], capture_output=True, timeout=10)
        self.assertEqual(p.wait(30), 0, p.stderr())
        s = self.summary()
        self.assertGreaterEqual(s["malformed_messages"], 2)
        self.assertEqual(s["requests"]["total"], 400)


if __name__ == "__main__":
    unittest.main()
