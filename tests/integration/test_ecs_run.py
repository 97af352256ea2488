"""stampede run --launcher ecs through the fake ECS endpoint (fake_ecs.py), whose tasks are real
stampede-agent processes configured by their environment only, sending to stampede-target on
127.0.0.1.

Each case checks the message and the exit code, that the fake saw StopTask for every task it
started and that no task's process is left, and that never were more tasks started than agents
asked for (from the fake's recorded requests).
"""
import http.server
import json
import os
import re
import signal
import tempfile
import threading
import time
import urllib.request

import aws_env
import harness
import targets

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_ecs.py")


class EcsRun(harness.ProcTestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="st-ecs-run-")
        self.summary_path = os.path.join(self.dir, "summary.json")
        self.fake = self.start(["/usr/bin/python3", FAKE, "--agent-cmd",
                                harness.binary("stampede-agent"), "--provision-ms", "100",
                                "--pending-ms", "100", "--log-dir", self.dir], name="fake-ecs")
        text = self.fake.wait_output("fake-ecs ready", timeout=20)
        self.ecs_url = "http://127.0.0.1:%d" % int(text.split()[2])

    def faults(self, *rules):
        req = urllib.request.Request(self.ecs_url + "/__fake/faults", method="POST",
                                     data=json.dumps(list(rules)).encode())
        urllib.request.urlopen(req, timeout=5).read()

    def state(self):
        return harness.http_get_json(self.ecs_url + "/__fake/state")

    def calls(self, op, accepted=True):
        return [r for r in self.state()["requests"]
                if r["op"] == op and (r["accepted"] or not accepted)]

    def ecs_args(self, agents, *extra, container="agent", subnets="subnet-1,subnet-2",
                 scheme="tcp", listen=True, advertise=None, threads=True):
        self.port = harness.free_port()
        url = "%s://127.0.0.1:%d" % (scheme, self.port)
        return ["--launcher", "ecs", "--agents", agents, "--cluster", "stampede",
                "--task-definition", "stampede-agent:3", "--subnets", subnets,
                "--security-groups", "sg-1"] + (["--container", container] if container else []) + (
                ["--listen", url] if listen else []) + (
                ["--advertise", advertise or url] if advertise != "" else []) + [
                "--endpoint-url", self.ecs_url] + (["--threads", 1] if threads else []) + list(extra)

    def serve_own_task(self, status=200, ip="127.0.0.1"):
        """A task metadata endpoint of the coordinator's own task (as ECS serves it); returns
        its base URL, for ECS_CONTAINER_METADATA_URI_V4. self.meta_paths gets what was asked."""
        self.meta_paths = []
        paths = self.meta_paths
        body = json.dumps({
            "Cluster": "stampede", "TaskARN": "arn:aws:ecs:us-east-1:123456789012:task/stampede/"
            "c00rd", "Family": "stampede-coordinator", "Revision": "1",
            "AvailabilityZone": "us-east-1a", "Limits": {"CPU": 1.0, "Memory": 2048},
            "Containers": [{"Name": "coordinator", "Networks": [
                {"NetworkMode": "awsvpc", "IPv4Addresses": [ip]}]}]}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                paths.append(self.path)
                ok = status == 200 and self.path == "/v4/coord/task"
                data = body if ok else b"404 page not found"
                self.send_response(200 if ok else 404)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return "http://127.0.0.1:%d/v4/coord" % server.server_address[1]

    @staticmethod
    def run_env(body):
        return {kv["name"]: kv["value"]
                for kv in body["overrides"]["containerOverrides"][0]["environment"]}

    def start_run(self, agents, *extra, summary=True, **kw):
        args = [harness.binary("stampede"), "run"] + self.ecs_args(agents, *extra, **kw)
        if summary:
            args += ["--summary", self.summary_path]
        return self.start(args, env=aws_env.aws_env())

    def run_ecs(self, agents, *extra, timeout=90, **kw):
        p = self.start_run(agents, *extra, **kw)
        code = p.wait(timeout)
        return code, p.stderr()

    def assert_teardown(self, asked, reason=r"^stampede run \d{8}T\d{6}Z-[0-9a-f]{8} "):
        """StopTask for every task, every task stopped and its process gone, never more tasks
        than asked."""
        st = self.state()
        self.assertLessEqual(len(st["tasks"]), asked)
        self.assertLessEqual(st["launched"], asked)
        stopped = {r["body"]["task"] for r in self.calls("StopTask")}
        self.assertEqual(stopped, {t["arn"] for t in st["tasks"]})
        for r in self.calls("StopTask"):
            self.assertRegex(r["body"]["reason"], reason)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            tasks = self.state()["tasks"]
            if all(t["last"] == "STOPPED" for t in tasks):
                break
            time.sleep(0.1)
        for t in tasks:
            self.assertEqual(t["last"], "STOPPED", t)
            if t["pid"]:
                with self.assertRaises(ProcessLookupError):
                    os.kill(t["pid"], 0)
        return st

    def summary(self):
        with open(self.summary_path) as f:
            return json.load(f)


class Launch(EcsRun):
    def test_twelve_agents_in_two_batches_load_exact(self):
        target, url = targets.start_target(self)
        code, err = self.run_ecs(12, "--url", url + "/", "--rate", 120, "--duration", 3)
        self.assertEqual(code, 0, err)
        s = self.summary()
        self.assertEqual(s["requests"]["total"], 360)
        self.assertEqual(targets.target_stats(url)["requests"], 360)
        self.assertEqual(len(s["agents"]), 12)
        # Each agent read its task from the task metadata endpoint and registered with it.
        arns = {t["arn"]: t for t in self.state()["tasks"]}
        self.assertEqual({a["task"] for a in s["agents"]}, set(arns))
        for a in s["agents"]:
            self.assertEqual(a["name"], a["task"].rsplit("/", 1)[1])
            self.assertRegex(a["availability_zone"], r"^us-east-1[abc]$")
            self.assertEqual(a["task_definition"], "stampede-agent:3")
            self.assertEqual(a["cpu_vcpus"], 1.0)
            self.assertIn('"%s" registered from ' % a["name"], err)
            self.assertIn("task %s in %s, 1 vCPU)" % (a["task"], a["availability_zone"]), err)
        runs = self.calls("RunTask")
        self.assertEqual([r["body"]["count"] for r in runs], [10, 2])
        tokens = [r["body"]["clientToken"] for r in runs]
        self.assertEqual(len(set(tokens)), 2)
        run_id = re.search(r"run (\d{8}T\d{6}Z-[0-9a-f]{8})", err).group(1)
        for r in runs:
            b = r["body"]
            self.assertTrue(b["clientToken"].startswith(run_id))
            self.assertEqual(b["startedBy"], "stampede-" + run_id)
            self.assertEqual(b["tags"], [{"key": "stampede:run", "value": run_id}])
            self.assertEqual(b["launchType"], "FARGATE")
            env = {kv["name"]: kv["value"]
                   for kv in b["overrides"]["containerOverrides"][0]["environment"]}
            self.assertEqual(set(env), {"STAMPEDE_COORDINATOR", "STAMPEDE_TOKEN",
                                        "STAMPEDE_LOG_LEVEL",
                                        "STAMPEDE_THREADS"})
            self.assertEqual(env["STAMPEDE_THREADS"], "1")
            self.assertEqual(b["networkConfiguration"]["awsvpcConfiguration"],
                             {"subnets": ["subnet-1", "subnet-2"], "securityGroups": ["sg-1"],
                              "assignPublicIp": "DISABLED"})
        self.assertIn("12 of 12 agents registered", err)
        # The largest ClockErrorBound of the tasks (the fake's 0.35 ms), beside the start skew.
        keys = list(s)
        self.assertEqual(s["clock_error_bound_ms"], 0.35)
        self.assertEqual(keys.index("clock_error_bound_ms"), keys.index("start_skew_ms") + 1)
        self.assertNotIn(env["STAMPEDE_TOKEN"], err)
        self.assertEqual(self.assert_teardown(12)["launched"], 12)

    def test_threads_follow_the_tasks_vcpus(self):
        # Half a vCPU per task: each agent runs one thread (and weighs one), whatever number of
        # CPUs the machine under the task shows.
        target, url = targets.start_target(self)
        code, err = self.run_ecs(2, "--url", url + "/", "--rate", 40, "--duration", 2,
                                 "--cpu", 512, "--memory", 1024, threads=False)
        self.assertEqual(code, 0, err)
        s = self.summary()
        self.assertEqual(s["requests"]["total"], 80)
        self.assertEqual(targets.target_stats(url)["requests"], 80)
        for a in s["agents"]:
            self.assertEqual(a["cpu_vcpus"], 0.5)
            self.assertIn('"%s" registered from ' % a["name"], err)
            line = [l for l in err.splitlines() if '"%s" registered from ' % a["name"] in l][0]
            self.assertIn("(1 threads,", line)
            self.assertIn(", 0.5 vCPU)", line)
        for r in self.calls("RunTask"):
            self.assertNotIn("STAMPEDE_THREADS", self.run_env(r["body"]))
        self.assert_teardown(2)

    def test_tasks_over_tls_pin_the_run_certificate(self):
        # Over tls+tcp:// the tasks get the certificate's fingerprint beside the token, in their
        # environment only, and count exactly what the target saw.
        target, url = targets.start_target(self)
        code, err = self.run_ecs(3, "--url", url + "/", "--rate", 60, "--duration", 2,
                                 scheme="tls+tcp")
        self.assertEqual(code, 0, err)
        s = self.summary()
        self.assertEqual(s["requests"]["total"], 120)
        self.assertEqual(targets.target_stats(url)["requests"], 120)
        fp = re.search(r"SHA-256 fingerprint (\S+)", err).group(1)
        for r in self.calls("RunTask"):
            env = {kv["name"]: kv["value"]
                   for kv in r["body"]["overrides"]["containerOverrides"][0]["environment"]}
            self.assertEqual(env["STAMPEDE_TLS_FINGERPRINT"], fp)
            self.assertTrue(env["STAMPEDE_COORDINATOR"].startswith("tls+tcp://"))
            self.assertNotIn(env["STAMPEDE_TOKEN"], err)
        self.assertNotIn("plaintext", err)
        self.assert_teardown(3)

    def test_a_coordinator_on_ecs_advertises_its_own_task_address(self):
        # Without --advertise, a coordinator that is an ECS task itself gives its agents its own
        # task's private IPv4 (here 127.0.0.1) with --listen's scheme and port.
        target, url = targets.start_target(self)
        meta = self.serve_own_task()
        args = [harness.binary("stampede"), "run"] + self.ecs_args(
            4, "--url", url + "/", "--rate", 40, "--duration", 2, "--summary", self.summary_path,
            scheme="tls+tcp", advertise="")
        self.assertNotIn("--advertise", args)
        code, out, err = self.run_to_end(
            args, 90, env=aws_env.aws_env(ECS_CONTAINER_METADATA_URI_V4=meta))
        self.assertEqual(code, 0, err)
        self.assertEqual(self.meta_paths, ["/v4/coord/task"])
        want = "tls+tcp://127.0.0.1:%d" % self.port
        self.assertIn("agents dial %s: this task's private address" % want, err)
        s = self.summary()
        self.assertEqual(s["requests"]["total"], 80)
        self.assertEqual(targets.target_stats(url)["requests"], 80)
        fp = re.search(r"SHA-256 fingerprint (\S+)", err).group(1)
        for r in self.calls("RunTask"):
            env = self.run_env(r["body"])
            self.assertEqual(env["STAMPEDE_COORDINATOR"], want)
            self.assertEqual(env["STAMPEDE_TLS_FINGERPRINT"], fp)
        # The start of the run logs its cost: 4 tasks of 1 vCPU, 2 GB for 2 s and a minute each.
        hours = 4 * (2 + 60.0) / 3600
        self.assertIn("ecs: about $%.6f on-demand ($0.04048 per vCPU-hour, $0.004445 per "
                      "GB-hour)" % (hours * (1 * 0.04048 + 2 * 0.004445)), err)
        self.assert_teardown(4)

    def test_partial_failures_are_asked_for_again(self):
        target, url = targets.start_target(self)
        self.faults({"kind": "fail", "op": "RunTask", "count": 3})
        code, err = self.run_ecs(5, "--url", url + "/", "--rate", 50, "--duration", 2)
        self.assertEqual(code, 0, err)
        self.assertEqual([r["body"]["count"] for r in self.calls("RunTask")], [5, 3])
        self.assertIn("ECS started 2 of 5 tasks (no capacity: RESOURCE:MEMORY)", err)
        self.assertEqual(targets.target_stats(url)["requests"], 100)
        self.assertEqual(self.summary()["requests"]["total"], 100)
        self.assertEqual(self.assert_teardown(5)["launched"], 5)

    def test_throttling_and_lost_answers_start_nothing_twice(self):
        target, url = targets.start_target(self)
        self.faults({"kind": "throttle", "op": "RunTask", "times": 2},
                    {"kind": "throttle", "op": "DescribeTasks", "times": 2},
                    {"kind": "lose_answer", "op": "RunTask", "times": 1})
        code, err = self.run_ecs(3, "--url", url + "/", "--rate", 30, "--duration", 2)
        self.assertEqual(code, 0, err)
        runs = self.calls("RunTask", accepted=False)
        self.assertIn("ThrottlingException", [r.get("error") for r in runs])
        accepted = [r for r in runs if r["accepted"]]
        self.assertTrue(accepted[0].get("answer_lost"))
        self.assertEqual({r["body"]["clientToken"] for r in accepted}, {
            accepted[0]["body"]["clientToken"]})
        self.assertEqual(targets.target_stats(url)["requests"], 60)
        self.assertEqual(self.assert_teardown(3)["launched"], 3)

    def test_spot_falls_back_to_fargate(self):
        target, url = targets.start_target(self)
        self.faults({"kind": "spot_capacity", "op": "RunTask"})
        code, err = self.run_ecs(2, "--spot", "--url", url + "/", "--rate", 20, "--duration", 1)
        self.assertEqual(code, 0, err)
        runs = self.calls("RunTask")
        self.assertEqual(runs[0]["body"]["capacityProviderStrategy"][0]["capacityProvider"],
                         "FARGATE_SPOT")
        self.assertEqual(runs[1]["body"]["launchType"], "FARGATE")
        self.assertEqual(runs[1]["body"]["count"], 2)
        self.assertEqual(self.assert_teardown(2)["launched"], 2)


class Failures(EcsRun):
    def test_cannot_pull_container(self):
        self.faults({"kind": "pull_error", "op": "RunTask", "times": 1})
        code, err = self.run_ecs(3, "--url", "http://127.0.0.1:9/", "--rate", 10, "--duration",
                                 2)
        self.assertEqual(code, 6, err)
        self.assertRegex(err, r"ECS task [0-9a-f]+ stopped before its agent registered: "
                              r"TaskFailedToStart: CannotPullContainerError")
        self.assertIn("container agent: CannotPullContainerError", err)
        self.assert_teardown(3)

    def test_access_denied_on_run_task(self):
        self.faults({"kind": "deny", "op": "RunTask"})
        code, err = self.run_ecs(2, "--url", "http://127.0.0.1:9/", "--rate", 10, "--duration",
                                 1)
        self.assertEqual(code, 3, err)
        self.assertIn("access denied: the coordinator may not call ecs:RunTask", err)
        self.assertEqual(self.state()["tasks"], [])

    def test_access_denied_on_describe_tasks(self):
        self.faults({"kind": "deny", "op": "DescribeTasks", "times": 5})
        code, err = self.run_ecs(2, "--url", "http://127.0.0.1:9/", "--rate", 10, "--duration",
                                 1)
        self.assertEqual(code, 3, err)
        self.assertIn("may not call ecs:DescribeTasks", err)
        self.assert_teardown(2)

    def test_invalid_subnet(self):
        code, err = self.run_ecs(1, "--url", "http://127.0.0.1:9/", "--rate", 10, "--duration",
                                 1, subnets="subnet-1,subnet-")
        self.assertEqual(code, 2, err)
        self.assertIn("--subnets: \"subnet-\" is not an id", err)
        self.assertEqual(self.calls("RunTask", accepted=False), [])

    def test_parameters_ecs_refuses(self):
        code, err = self.run_ecs(1, "--url", "http://127.0.0.1:9/", "--rate", 10, "--duration",
                                 1, container="nope")
        self.assertEqual(code, 2, err)
        self.assertIn("ECS refused ecs:RunTask: ECS RunTask: InvalidParameterException: Override "
                      "for container named nope", err)
        self.assertEqual(self.state()["tasks"], [])

    def test_quota_reached(self):
        self.faults({"kind": "fail", "op": "RunTask", "count": 2,
                     "reason": "You've reached the limit on the number of vCPUs you can run "
                               "concurrently"})
        code, err = self.run_ecs(3, "--url", "http://127.0.0.1:9/", "--rate", 10, "--duration",
                                 1)
        self.assertEqual(code, 6, err)
        self.assertIn("ECS started 1 of the 3 tasks asked for: quota reached", err)
        self.assert_teardown(3)

    def test_a_task_that_never_registers(self):
        self.faults({"kind": "no_process", "op": "RunTask", "times": 1})
        code, err = self.run_ecs(2, "--url", "http://127.0.0.1:9/", "--rate", 10, "--duration",
                                 1, "--register-timeout", 3)
        self.assertEqual(code, 6, err)
        self.assertRegex(err, r"task [0-9a-f]+ \(us-east-1[abc], 10\.0\.0\.\d+\) is RUNNING; 1 of "
                              r"2 agents registered")
        self.assert_teardown(2)

    def test_sigint_mid_run(self):
        target, url = targets.start_target(self)
        p = self.start_run(3, "--url", url + "/", "--rate", 30, "--duration", 30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and targets.target_stats(url)["requests"] < 30:
            time.sleep(0.1)
        p.p.send_signal(signal.SIGINT)
        code = p.wait(60)
        err = p.stderr()
        self.assertEqual(code, 8, err)
        self.assertEqual(self.summary()["requests"]["total"],
                         targets.target_stats(url)["requests"])
        self.assert_teardown(3)

    def test_sigterm_while_tasks_start(self):
        self.faults({"kind": "no_process", "op": "RunTask", "times": 2})
        p = self.start_run(2, "--url", "http://127.0.0.1:9/", "--rate", 10, "--duration", 1)
        p.wait_output("2 running", timeout=30, stream="stderr")
        p.p.send_signal(signal.SIGTERM)
        code = p.wait(30)
        self.assertEqual(code, 8, p.stderr())
        self.assert_teardown(2)


class Flags(EcsRun):
    def test_advertise_is_required(self):
        args = [harness.binary("stampede"), "run"] + [
            a for a in self.ecs_args(1) if not str(a).startswith("tcp://127.0.0.1")]
        args.remove("--advertise")
        args.remove("--listen")
        code, out, err = self.run_to_end(args + ["--url", "http://127.0.0.1:9/", "--rate", 1,
                                                 "--duration", 1], 30, env=aws_env.aws_env())
        self.assertEqual(code, 2, err)
        self.assertIn("--launcher ecs needs --advertise tls+tcp://HOST:PORT: the agents run as "
                      "tasks", err)
        self.assertIn("a coordinator running on ECS itself uses its own task's address", err)
        self.assertEqual(self.state()["requests"], [])

    def test_own_task_metadata_that_cannot_be_read(self):
        meta = self.serve_own_task(status=404)
        args = [harness.binary("stampede"), "run", "--dry-run"] + self.ecs_args(
            1, "--url", "http://127.0.0.1:9/", "--rate", 1, "--duration", 1, scheme="tls+tcp",
            advertise="")
        code, out, err = self.run_to_end(args, 30,
                                         env=aws_env.aws_env(ECS_CONTAINER_METADATA_URI_V4=meta))
        self.assertEqual(code, 2, err)
        self.assertIn("--launcher ecs without --advertise: ECS_CONTAINER_METADATA_URI_V4 is set, "
                      "but this task's address cannot be read (", err)
        self.assertIn("give --advertise", err)
        # A port chosen at listening cannot be advertised before it is known.
        args = [harness.binary("stampede"), "run", "--dry-run"] + [
            a if a != "tls+tcp://127.0.0.1:%d" % self.port else "tls+tcp://127.0.0.1:0"
            for a in args[3:]]
        code, out, err = self.run_to_end(
            [harness.binary("stampede"), "run", "--dry-run"] + args[3:], 30,
            env=aws_env.aws_env(ECS_CONTAINER_METADATA_URI_V4=meta))
        self.assertEqual(code, 2, err)
        self.assertIn("--listen tls+tcp://127.0.0.1:0: its port is chosen when listening", err)
        self.assertEqual(self.meta_paths, ["/v4/coord/task"])
        self.assertEqual(self.state()["requests"], [])

    def test_tls_is_the_default(self):
        # No --listen: tls+tcp://0.0.0.0:7400, the tasks get the certificate's fingerprint (a dry
        # run makes no certificate of the run's, so it shows where it goes).
        code, out, err = self.run_to_end(
            [harness.binary("stampede"), "run", "--dry-run"] + self.ecs_args(
                2, "--url", "http://127.0.0.1:9/", "--rate", 1, "--duration", 1,
                listen=False, advertise="tls+tcp://10.0.0.5:7400"), 30, env=aws_env.aws_env())
        self.assertEqual(code, 0, err)
        self.assertIn("listen      tls+tcp://0.0.0.0:7400 (agents dial tls+tcp://10.0.0.5:7400)",
                      out)
        self.assertNotIn("plaintext", err)
        bodies = [json.loads(b) for b in re.findall(r"^RunTask 1 of 1:\n(\{.*?^\})$", out,
                                                     re.S | re.M)]
        self.assertEqual(len(bodies), 1)
        env = self.run_env(bodies[0])
        self.assertEqual(env["STAMPEDE_COORDINATOR"], "tls+tcp://10.0.0.5:7400")
        self.assertEqual(env["STAMPEDE_TLS_FINGERPRINT"], "<the run's certificate's SHA-256>")

    def test_advertise_and_listen_schemes_must_match(self):
        for listen, advertise, words in (
                (False, "tcp://10.0.0.5:7400", "--advertise tcp://10.0.0.5:7400: the coordinator "
                 "listens on tls+tcp://0.0.0.0:7400, so the agents must dial tls+tcp:// too"),
                (True, "tls+tcp://10.0.0.5:7400", "--advertise tls+tcp://10.0.0.5:7400: the "
                 "coordinator listens on tcp://127.0.0.1:")):
            code, out, err = self.run_to_end(
                [harness.binary("stampede"), "run"] + self.ecs_args(
                    1, "--url", "http://127.0.0.1:9/", "--rate", 1, "--duration", 1,
                    listen=listen, advertise=advertise), 30, env=aws_env.aws_env())
            self.assertEqual(code, 2, err)
            self.assertIn(words, err)
        self.assertIn("so the agents must dial plain tcp:// (no tls+) too", err)
        self.assertEqual(self.state()["requests"], [])

    def test_plaintext_is_warned_about(self):
        code, out, err = self.run_to_end(
            [harness.binary("stampede"), "run", "--dry-run"] + self.ecs_args(
                1, "--url", "http://127.0.0.1:9/", "--rate", 1, "--duration", 1,
                "--cpu", 1024, "--memory", 2048), 30, env=aws_env.aws_env())
        self.assertEqual(code, 0, err)
        self.assertIn("warning: --listen tcp://127.0.0.1:%d: the control channel of the ecs "
                      "tasks is plaintext, so the run token travels in clear" % self.port, err)

    def test_dry_run_cost_from_the_table_and_from_prices_given(self):
        base = [harness.binary("stampede"), "run", "--dry-run"] + self.ecs_args(
            12, "--url", "http://127.0.0.1:9/", "--rate", 10, "--duration", 60, "--cpu", 2048,
            "--memory", 4096, scheme="tls+tcp")
        hours = 12 * (60 + 60.0) / 3600  # a minute of start-up per task
        code, out, err = self.run_to_end(base, 30, env=aws_env.aws_env())
        self.assertEqual(code, 0, err)
        self.assertIn("about %.3f task-hours (%.3f vCPU-hours, %.3f GB-hours)"
                      % (hours, hours * 2, hours * 4), out)
        self.assertIn("about $%.6f on-demand ($0.04048 per vCPU-hour, $0.004445 per GB-hour), "
                      "about $%.6f on Spot ($0.01334058, $0.00146489) in us-east-1"
                      % (hours * (2 * 0.04048 + 4 * 0.004445),
                         hours * (2 * 0.01334058 + 4 * 0.00146489)), out)
        self.assertRegex(out, r"prices as of \d{4}-\d\d-\d\d \(AWS Fargate Pricing page, "
                              r"Linux/x86\), .*: check the AWS Fargate pricing page")
        code, out, err = self.run_to_end(
            base + ["--price-vcpu-hour", "0.05", "--price-gb-hour", "0.0055"], 30,
            env=aws_env.aws_env())
        self.assertEqual(code, 0, err)
        self.assertIn("about $%.6f at the given prices ($0.05 per vCPU-hour, $0.0055 per "
                      "GB-hour)" % (hours * (2 * 0.05 + 4 * 0.0055)), out)
        self.assertNotIn("on Spot", out)
        code, out, err = self.run_to_end(base, 30, env=aws_env.aws_env(AWS_REGION="xx-north-9"))
        self.assertEqual(code, 0, err)
        self.assertIn("no Fargate price is known for region xx-north-9 (cost not estimated)", out)
        self.assertNotIn("$", out)
        for extra, words in ((["--price-vcpu-hour", "0.05"], "--price-vcpu-hour and "
                              "--price-gb-hour go together"),
                             (["--price-gb-hour", "-1", "--price-vcpu-hour", "1"],
                              "--price-gb-hour"),):
            code, out, err = self.run_to_end(base + extra, 30, env=aws_env.aws_env())
            self.assertEqual(code, 2, err)
            self.assertIn(words, err)
        code, out, err = self.run_to_end(
            [harness.binary("stampede"), "run", "--price-vcpu-hour", "1", "--url",
             "http://127.0.0.1:9/", "--rate", 1, "--duration", 1], 30)
        self.assertEqual(code, 2, err)
        self.assertIn("--price-vcpu-hour goes with --launcher ecs", err)
        self.assertEqual(self.calls("RunTask", accepted=False), [])

    def test_ecs_flags_need_the_ecs_launcher(self):
        code, out, err = self.run_to_end([harness.binary("stampede"), "run", "--cluster", "x",
                                          "--url", "http://127.0.0.1:9/", "--rate", 1,
                                          "--duration", 1], 30)
        self.assertEqual(code, 2, err)
        self.assertIn("--cluster goes with --launcher ecs", err)

    def test_dry_run_prints_the_requests(self):
        args = [harness.binary("stampede"), "run", "--dry-run"] + self.ecs_args(12) + [
            "--token", "secret-token-1234", "--url", "http://127.0.0.1:9/", "--rate", 10,
            "--duration", 60]
        code, out, err = self.run_to_end(args, 30, env=aws_env.aws_env())
        self.assertEqual(code, 0, err)
        self.assertIn("12 tasks in 2 RunTask calls on cluster stampede (FARGATE)", out)
        self.assertIn("1.00 vCPU and 2048 MiB per task (its task definition): 12.00 vCPU", out)
        self.assertIn("about 0.400 task-hours", out)
        self.assertEqual(out.count('"count":\t10'), 1)
        self.assertEqual(out.count('"count":\t2'), 1)
        self.assertIn('"<redacted>"', out)
        self.assertNotIn("secret-token-1234", out + err)
        self.assertEqual(self.calls("RunTask", accepted=False), [])
        self.assertEqual(len(self.calls("DescribeTaskDefinition")), 1)

    def test_the_plan_sets_ecs_settings_and_flags_override_them(self):
        plan = os.path.join(self.dir, "plan.json")
        with open(plan, "w") as f:
            json.dump({"url": "http://127.0.0.1:9/", "rate": 10, "duration": 1, "agents": 3,
                       "ecs": {"cluster": "stampede", "task_definition": "stampede-agent:3",
                               "subnets": "subnet-9", "security_groups": "sg-9",
                               "container": "agent", "advertise": "tls+tcp://127.0.0.1:7400",
                               "cpu": 512, "memory": 1024, "spot": True}}, f)
        code, out, err = self.run_to_end(
            [harness.binary("stampede"), "run", plan, "--dry-run", "--launcher", "ecs",
             "--subnets", "subnet-1", "--endpoint-url", self.ecs_url], 30,
            env=aws_env.aws_env())
        self.assertEqual(code, 0, err)
        self.assertIn("3 tasks in 1 RunTask calls on cluster stampede (FARGATE_SPOT, else "
                      "FARGATE)", out)
        self.assertIn("0.50 vCPU and 1024 MiB per task (the run's cpu and memory)", out)
        self.assertIn('"subnet-1"', out)
        self.assertNotIn("subnet-9", out)
        self.assertIn('"sg-9"', out)
        self.assertEqual(self.state()["requests"], [])
        with open(plan, "w") as f:
            json.dump({"url": "http://127.0.0.1:9/", "rate": 10, "duration": 1,
                       "ecs": {"cluster": "stampede", "colour": "red"}}, f)
        code, out, err = self.run_to_end(
            [harness.binary("stampede"), "run", plan, "--dry-run", "--launcher", "ecs"], 30,
            env=aws_env.aws_env())
        self.assertEqual(code, 2, err)
        self.assertIn("plan.json: $.ecs.colour: unknown key (the ecs settings are cluster, "
                      "task_definition,", err)
        for ecs, words in (({"cpu": "lots"}, "$.ecs.cpu: must be an integer from 256 to 16384"),
                           ({"cluster": {"name": "x"}},
                            "$.ecs: cluster: must be a string, a number, true or false"),
                           ([], "$.ecs: must be an object")):
            with open(plan, "w") as f:
                json.dump({"url": "http://127.0.0.1:9/", "rate": 10, "duration": 1,
                           "ecs": ecs}, f)
            code, out, err = self.run_to_end(
                [harness.binary("stampede"), "run", plan, "--dry-run", "--launcher", "ecs"], 30,
                env=aws_env.aws_env())
            self.assertEqual(code, 2, err)
            self.assertIn(words, err)

    def test_container_must_be_chosen(self):
        args = self.ecs_args(1, container=None)
        code, out, err = self.run_to_end(
            [harness.binary("stampede"), "run", "--dry-run"] + args +
            ["--url", "http://127.0.0.1:9/", "--rate", 1, "--duration", 1], 30,
            env=aws_env.aws_env())
        self.assertEqual(code, 2, err)
        self.assertIn("has 2 containers (agent, log-router): say which runs stampede-agent "
                      "with --container NAME", err)

    def test_agent_bad_environment_value(self):
        code, out, err = self.run_to_end(
            [harness.binary("stampede-agent")], 30,
            env={"STAMPEDE_COORDINATOR": "tcp://127.0.0.1:9", "STAMPEDE_TOKEN": "t" * 16,
                 "STAMPEDE_THREADS": "many"})
        self.assertEqual(code, 2, err)
        self.assertIn("environment variable STAMPEDE_THREADS: --threads:", err)


class Leftovers(EcsRun):
    def test_list_and_stop_what_a_dead_coordinator_left(self):
        self.faults({"kind": "no_process", "op": "RunTask", "times": 2})
        p = self.start_run(2, "--url", "http://127.0.0.1:9/", "--rate", 10, "--duration", 1,
                           "--register-timeout", 60)
        p.wait_output("2 running", timeout=30, stream="stderr")
        run_id = re.search(r"run (\d{8}T\d{6}Z-[0-9a-f]{8})", p.stderr()).group(1)
        p.kill9()
        ecs = [harness.binary("stampede"), "ecs"]
        where = ["--cluster", "stampede", "--endpoint-url", self.ecs_url]
        code, out, err = self.run_to_end(ecs + ["list"] + where, 30, env=aws_env.aws_env())
        self.assertEqual(code, 0, err)
        self.assertEqual(len(out.splitlines()), 2, out)
        self.assertIn("run " + run_id, out)
        code, out, err = self.run_to_end(ecs + ["list"] + where + ["--run", "20990101T000000Z-0"],
                                         30, env=aws_env.aws_env())
        self.assertEqual((code, out), (0, ""), err)
        code, out, err = self.run_to_end(ecs + ["stop"] + where + ["--run", run_id], 30,
                                         env=aws_env.aws_env())
        self.assertEqual(code, 0, err)
        self.assertIn("2 running tasks of %s on cluster stampede: stopped" % run_id, err)
        self.assert_teardown(2, reason="^stampede ecs stop: a leftover of run " + run_id)
        code, out, err = self.run_to_end(ecs + ["stop"] + where, 30, env=aws_env.aws_env())
        self.assertEqual((code, out), (0, ""), err)
        code, out, err = self.run_to_end(ecs + ["list", "--cluster", "nope", "--endpoint-url",
                                                self.ecs_url], 30, env=aws_env.aws_env())
        self.assertEqual(code, 5, err)


if __name__ == "__main__":
    import unittest
    unittest.main()
