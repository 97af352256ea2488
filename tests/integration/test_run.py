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

    def summary(self):
        with open(self.summary_path) as f:
            return json.load(f)

    def series(self, duration):
        """The seconds of the run proper. After them only a drain second may follow: requests
        still completing after the end, with nothing due."""
        with open(self.ts_path) as f:
            ts = [json.loads(line) for line in f if line.strip()]
        self.assertEqual([r["t"] for r in ts[:duration]], list(range(duration)))
        for r in ts[duration:]:
            self.assertEqual(r["t"], duration, ts)
            self.assertEqual((r["target_rps"], r["sent"]), (0, 0), ts)
        return ts[:duration]

    def start_agent(self, coordinator, token, name, *extra):
        return self.start([harness.binary("stampede-agent"), "--coordinator", coordinator,
                           "--token", token, "--name", name, "--threads", 1] + list(extra))


class LocalRuns(RunCase):
    def test_three_local_agents_match_the_target(self):
        _, url = targets.start_target(self)
        code, p = self.run_stampede("--url", url + "/", "--rate", 900, "--duration", 3,
                                    "--agents", 3)
        self.assertEqual(code, 0, p.stderr())
        s = self.summary()
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
                                    "--ramp-up", 2, "--agents", 2)
        self.assertEqual(code, 0, p.stderr())
        s = self.summary()
        # 0 -> 800 over 2 s is 800 requests, then 2 s at 800.
        self.assertEqual(s["requests"]["total"], 2400)
        ts = self.series(4)
        self.assertEqual([r["target_rps"] for r in ts], [200, 600, 800, 800])
        # Sends follow the schedule second by second (completions may straddle a boundary).
        for r in ts:
            self.assertLessEqual(abs(r["sent"] - r["target_rps"]), 8, ts)

    def test_fractional_rate_over_eight_agents(self):
        _, url = targets.start_target(self)
        code, p = self.run_stampede("--url", url + "/", "--rate", 5, "--duration", 4,
                                    "--agents", 8, "--connections", 2)
        self.assertEqual(code, 0, p.stderr())
        s = self.summary()
        self.assertEqual(s["requests"]["total"], 20)
        self.assertEqual(targets.target_stats(url)["requests"], 20)
        self.assertAlmostEqual(sum(a["share_rps"] for a in s["agents"]), 5, places=9)

    def test_seed_payload_is_a_plan(self):
        _, url = targets.start_target(self)
        plan = os.path.join(self.dir, "seed.json")
        with open(plan, "w") as f:
            json.dump({"taskCount": 2, "targetUrl": url + "/", "vus": 4, "rate": 25,
                       "duration": 2}, f)
        code, p = self.run_stampede(plan)
        self.assertEqual(code, 0, p.stderr())
        s = self.summary()
        self.assertEqual(len(s["agents"]), 2)
        self.assertEqual(s["requests"]["total"], 400)
        self.assertEqual(s["rate"]["target_rps"], 200)

    def test_closed_loop_counts_match(self):
        _, url = targets.start_target(self)
        code, p = self.run_stampede("--url", url + "/", "--rate", 0, "--duration", 2,
                                    "--agents", 2, "--connections", 4)
        self.assertEqual(code, 0, p.stderr())
        s = self.summary()
        self.assertTrue(s["closed_loop"])
        self.assertGreater(s["requests"]["total"], 500)
        self.assertEqual(targets.target_stats(url)["requests"], s["requests"]["total"])

    def test_kill9_agent_moves_its_share(self):
        _, url = targets.start_target(self)
        p = self.start_run("--url", url + "/", "--rate", 600, "--duration", 9, "--agents", 3)
        p.wait_output("[    2s]", timeout=20)
        victims = [c for c in children(p.pid) if b"local-2" in cmdline(c)]
        self.assertEqual(len(victims), 1)
        os.kill(victims[0], signal.SIGKILL)
        # A run that lost an agent is degraded, never "completed" with exit 0.
        self.assertEqual(p.wait(40), 9, p.stderr())
        s = self.summary()
        self.assertEqual(s["status"], "degraded")
        self.assertTrue(s["incomplete_seconds"])
        lost = [a for a in s["agents"] if a["lost"]]
        self.assertEqual([a["name"] for a in lost], ["local-2"])
        self.assertEqual(lost[0]["state"], "lost")
        self.assertEqual(lost[0]["reason"], "its process exited")
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
        p = self.start_run("--url", url + "/", "--rate", 300, "--duration", 12, "--agents", 3)
        p.wait_output("[    3s]", timeout=20)
        victims = [c for c in children(p.pid) if b"local-2" in cmdline(c)]
        self.assertEqual(len(victims), 1)
        os.kill(victims[0], signal.SIGSTOP)
        try:
            time.sleep(4)
        finally:
            os.kill(victims[0], signal.SIGCONT)
        code = p.wait(60)
        s = self.summary()
        seen = targets.target_stats(url)["requests"]
        sent = s["requests"]["sent"]
        print("paused agent: target %d, summary sent %d, exit %d, status %s, incomplete %s"
              % (seen, sent, code, s.get("status"), s.get("incomplete_seconds")))
        self.assertEqual(code, 9, p.stderr())
        self.assertEqual(s["status"], "degraded")
        # Every request the target saw is counted; only requests in flight at the pause (a few,
        # at 100 rps per agent and a millisecond each) may be on one side only.
        self.assertLessEqual(abs(seen - sent), 5, s)
        lost = [a for a in s["agents"] if a["lost"]]
        self.assertEqual([a["name"] for a in lost], ["local-2"])
        self.assertEqual(lost[0]["state"], "lost")
        self.assertIn("reason", lost[0])
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
        p = self.start_run("--url", url + "/", "--rate", 300, "--duration", 10, "--agents", 3)
        p.wait_output("[    2s]", timeout=20)
        os.kill(p.pid, signal.SIGSTOP)
        try:
            time.sleep(4)
        finally:
            os.kill(p.pid, signal.SIGCONT)
        code = p.wait(60)
        s = self.summary()
        seen = targets.target_stats(url)["requests"]
        sent = s["requests"]["sent"]
        print("paused coordinator: target %d, summary sent %d, exit %d, status %s, incomplete %s"
              % (seen, sent, code, s.get("status"), s.get("incomplete_seconds")))
        self.assertEqual(code, 9, p.stderr())
        self.assertEqual(s["status"], "degraded")
        self.assertLessEqual(abs(seen - sent), 5, s)
        self.assertEqual(s["requests"]["total"], seen)
        # The load stopped within the agents' silence bound of the pause, and the seconds from
        # then on are incomplete, each agent saying why.
        self.assertGreater(seen, 600)
        self.assertLess(seen, 300 * 6)
        self.assertEqual(s["incomplete_seconds"][-1], 9)
        for a in s["agents"]:
            self.assertEqual(a["state"], "lost")
            self.assertIn("stopped its load", a["reason"])
        with open(self.ts_path) as f:
            ts = [json.loads(line) for line in f if line.strip()]
        # The seconds before the pause carry their load: nothing was lost with the records.
        for r in ts[:2]:
            self.assertLessEqual(abs(r["sent"] - 300), 8, ts)

    def test_sigint_stops_and_writes_the_summary(self):
        _, url = targets.start_target(self)
        p = self.start_run("--url", url + "/", "--rate", 200, "--duration", 60, "--agents", 2)
        p.wait_output("[    2s]", timeout=20)
        os.kill(p.pid, signal.SIGINT)
        self.assertEqual(p.wait(30), 8, p.stderr())
        s = self.summary()
        self.assertEqual(s["status"], "stopped")
        self.assertLess(s["duration_s"], 10)
        self.assertEqual(targets.target_stats(url)["requests"], s["requests"]["total"])
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


class ExternalRuns(RunCase):
    TOKEN = "integration-token-1"

    def start_external(self, url, agents, *extra, rate=400, duration=6):
        port = harness.free_port()
        p = self.start_run("--url", url + "/", "--rate", rate, "--duration", duration,
                           "--agents", agents, "--launcher", "external", "--listen",
                           "tcp://127.0.0.1:%d" % port, "--token", self.TOKEN, *extra)
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
        args = ["--url", url + "/", "--rate", 5, "--duration", 1, "--agents", 1,
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
        p = self.start_run("--url", url + "/", "--rate", 300, "--duration", 7, "--agents", 2,
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
