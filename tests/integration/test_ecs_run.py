"""stampede run --launcher ecs through the fake ECS endpoint (fake_ecs.py), whose tasks are real
stampede-agent processes configured by their environment only, sending to stampede-target on
127.0.0.1.

Each case checks the message and the exit code, that the fake saw StopTask for every task it
started and that no task's process is left, and that never were more tasks started than agents
asked for (from the fake's recorded requests).
"""
import json
import os
import re
import signal
import tempfile
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

    def ecs_args(self, agents, *extra, container="agent", subnets="subnet-1,subnet-2"):
        port = harness.free_port()
        return ["--launcher", "ecs", "--agents", agents, "--cluster", "stampede",
                "--task-definition", "stampede-agent:3", "--subnets", subnets,
                "--security-groups", "sg-1"] + (["--container", container] if container else []) + [
                "--listen", "tcp://127.0.0.1:%d" % port,
                "--advertise", "tcp://127.0.0.1:%d" % port,
                "--endpoint-url", self.ecs_url, "--threads", 1] + list(extra)

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
            self.assertIn('"%s" registered from ' % a["name"], err)
            self.assertIn("task %s in %s)" % (a["task"], a["availability_zone"]), err)
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
        self.assertNotIn(env["STAMPEDE_TOKEN"], err)
        self.assertEqual(self.assert_teardown(12)["launched"], 12)

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
        self.assertIn("--launcher ecs needs --advertise tcp://HOST:PORT: the agents run as tasks",
                      err)

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
                               "container": "agent", "advertise": "tcp://127.0.0.1:7400",
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
