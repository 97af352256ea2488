"""The seed's flow, end to end, with only AWS's endpoints replaced, and the launcher's refusals.

stampede-launcher runs as a Lambda function under a local runtime-API stand-in and is invoked with
the seed's payload; it starts one coordinator task on the fake ECS (fake_ecs.py), whose process is
`stampede` with the launcher's command override; the coordinator starts its agents' tasks through
the same fake (stampede-agent processes), they send to stampede-target on 127.0.0.1, the coordinator
ships the results to the SQS emulator, an event-source stand-in polls the queue and invokes
stampede-sink (Lambda mode, its own runtime-API stand-in) with SQS events, the sink writes the
DynamoDB emulator, and `stampede results RUN_ID` reads the run back: its totals equal what the
target counted.
"""
import json
import os
import queue
import re
import signal
import tempfile
import threading
import time
import unittest
import urllib.request
import uuid

import aws_env
import harness
import targets

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_ecs.py")
RUN_ID_RE = r"^\d{8}T\d{6}Z-[0-9a-f]{8}$"


class LambdaRuntime:
    """The Lambda runtime API (2018-06-01) of one function on 127.0.0.1: invoke() hands an event
    to the function's next GET .../invocation/next and waits for what it posts back."""

    def __init__(self):
        self.events = queue.Queue()
        self.answers = {}
        self.init_errors = []
        self.cond = threading.Condition()
        self.closed = False
        self.api = aws_env.HttpStandIn(self._handle)
        # A function stopped while it waits for its next event has gone away: not an error.
        self.api.server.handle_error = lambda *args: None
        self.env = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % self.api.port}

    def _handle(self, method, path, headers, body):
        if method == "GET" and path == "/2018-06-01/runtime/invocation/next":
            while not self.closed:
                try:
                    rid, event = self.events.get(timeout=0.2)
                except queue.Empty:
                    continue
                return 200, {"Lambda-Runtime-Aws-Request-Id": rid,
                             "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 60000),
                             "Content-Type": "application/json"}, event
            return 500, {}, b""
        m = re.match(r"^/2018-06-01/runtime/invocation/([^/]+)/(response|error)$", path)
        if method == "POST" and (m or path == "/2018-06-01/runtime/init/error"):
            with self.cond:
                if m:
                    self.answers[m.group(1)] = (m.group(2), json.loads(body))
                else:
                    self.init_errors.append(json.loads(body))
                self.cond.notify_all()
            return 202, {"Content-Type": "application/json"}, b'{"status":"OK"}'
        return 404, {}, b""

    def invoke(self, event, timeout=30):
        """Invokes the function with event (an object, or bytes as they are); returns ("response"
        or "error", the posted document)."""
        rid = str(uuid.uuid4())
        self.events.put((rid, event if isinstance(event, bytes) else json.dumps(event).encode()))
        with self.cond:
            if not self.cond.wait_for(lambda: rid in self.answers, timeout):
                raise TimeoutError("no answer to invocation %s in %d s" % (rid, timeout))
            return self.answers[rid]

    def wait_init_error(self, timeout=10):
        with self.cond:
            self.cond.wait_for(lambda: self.init_errors, timeout)
            return self.init_errors[0] if self.init_errors else None

    def close(self):
        self.closed = True
        self.api.close()


class FakeEcs:
    """fake_ecs.py with the coordinator's and the agents' task definitions, as the CDK app makes
    them: container "coordinator" running stampede (its task's address 127.0.0.1, the fake's
    endpoint and credentials in its environment) and container "agent" running stampede-agent."""

    def __init__(self, case, log_dir):
        self.log_dir = log_dir
        self.proc = case.start([
            "/usr/bin/python3", FAKE, "--provision-ms", "100", "--pending-ms", "100",
            "--log-dir", log_dir,
            "--taskdef", "family=stampede-coordinator,container=coordinator,cmd=%s,ip=127.0.0.1,"
                         "aws=1" % harness.binary("stampede"),
            "--taskdef", "family=stampede-agent,container=agent,cmd=%s" %
                         harness.binary("stampede-agent")],
            name="fake-ecs", env={"XDG_STATE_HOME": os.path.join(log_dir, "state")})
        text = self.proc.wait_output("fake-ecs ready", timeout=20)
        self.url = "http://127.0.0.1:%d" % int(text.split()[2])

    def post(self, path, body):
        req = urllib.request.Request(self.url + path, method="POST", data=json.dumps(body).encode())
        urllib.request.urlopen(req, timeout=10).read()

    def state(self):
        return harness.http_get_json(self.url + "/__fake/state")

    def calls(self, op):
        return [r for r in self.state()["requests"] if r["op"] == op and r["accepted"]]

    def logs(self):
        out = []
        for name in sorted(os.listdir(self.log_dir)):
            if name.startswith("task-"):
                with open(os.path.join(self.log_dir, name), "rb") as f:
                    out.append("--- %s\n%s" % (name, f.read().decode("utf-8", "replace")[-3000:]))
        return "\n".join(out)

    def wait_stopped(self, family, timeout):
        """Waits until every task of family is STOPPED; returns them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = [t for t in self.state()["tasks"] if t["family"] == family]
            if tasks and all(t["last"] == "STOPPED" for t in tasks):
                return tasks
            time.sleep(0.2)
        raise TimeoutError("the %s tasks did not stop in %d s:\n%s" % (family, timeout,
                                                                        self.logs()))


def launcher_env(ecs_url, queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/results",
                 table="stampede-results", **extra):
    env = aws_env.aws_env(
        AWS_ENDPOINT_URL_ECS=ecs_url, STAMPEDE_CLUSTER="stampede",
        STAMPEDE_COORDINATOR_TASK_DEFINITION="stampede-coordinator:3",
        STAMPEDE_AGENT_TASK_DEFINITION="stampede-agent:3",
        STAMPEDE_SUBNETS="subnet-1,subnet-2", STAMPEDE_COORDINATOR_SECURITY_GROUPS="sg-coord",
        STAMPEDE_AGENT_SECURITY_GROUPS="sg-agents", STAMPEDE_ASSIGN_PUBLIC_IP="DISABLED",
        STAMPEDE_SQS_QUEUE_URL=queue_url, STAMPEDE_TABLE=table)
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


class LauncherCase(harness.ProcTestCase):
    def setUp(self):
        super().setUp()
        self.dir = aws_env.tmpdir(self, "st-seed-")
        self.ecs = FakeEcs(self, self.dir)

    def start_launcher(self, env):
        rt = LambdaRuntime()
        self.addCleanup(rt.close)
        env = dict(env)
        env.update(rt.env)
        p = self.start([harness.binary("stampede-launcher")], env=env, name="launcher")
        return rt, p

    def assert_clean_exit(self, launcher):
        """SIGTERM while the function waits for its next invocation ends it with exit 0."""
        launcher.p.send_signal(signal.SIGTERM)
        self.assertEqual(launcher.wait(10), 0, launcher.stderr())

    def check_coordinator_request(self, answer, event, agents, listen):
        """The one RunTask of the coordinator: its task definition, network, token, tags and the
        command and plan of its container."""
        run_id = answer["run_id"]
        runs = [r for r in self.ecs.calls("RunTask")
                if r["body"]["taskDefinition"] == "stampede-coordinator:3"]
        self.assertEqual(len(runs), 1)
        b = runs[0]["body"]
        self.assertEqual(b["count"], 1)
        self.assertEqual(b["cluster"], "stampede")
        self.assertEqual(b["clientToken"], run_id + "-coordinator")
        self.assertEqual(b["startedBy"], run_id)
        self.assertEqual(b["tags"], [{"key": "stampede:run", "value": run_id}])
        self.assertEqual(b["networkConfiguration"]["awsvpcConfiguration"],
                         {"subnets": ["subnet-1", "subnet-2"], "securityGroups": ["sg-coord"],
                          "assignPublicIp": "DISABLED"})
        (c,) = b["overrides"]["containerOverrides"]
        self.assertEqual(c["name"], "coordinator")
        want = ["run", "--plan-env", "STAMPEDE_PLAN", "--launcher", "ecs", "--headless",
                "--agents", str(agents), "--cluster", "stampede", "--task-definition",
                "stampede-agent:3", "--subnets", "subnet-1,subnet-2", "--security-groups",
                "sg-agents", "--no-assign-public-ip", "--sqs-queue-url", answer["queue_url"],
                "--run-id", run_id] + (["--listen", listen] if listen else [])
        self.assertEqual(c["command"], want)
        self.assertEqual(c["environment"], [{"name": "STAMPEDE_PLAN",
                                             "value": json.dumps(event, separators=(",", ":"))}])
        self.assertEqual(answer["coordinator_task_arn"],
                         [t["arn"] for t in self.ecs.state()["tasks"]
                          if t["family"] == "stampede-coordinator"][0])


class SeedFlow(aws_env.Emulators, LauncherCase):
    def event_source(self, runtime, queue_url, stop, state):
        """SQS's event source mapping: receives batches, invokes the sink with them, and deletes
        the messages its answer does not list in batchItemFailures."""
        while not stop.is_set():
            msgs = aws_env.sqs(self.sqs_url, "ReceiveMessage", QueueUrl=queue_url,
                               MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=30,
                               AttributeNames=["All"]).get("Messages") or []
            if not msgs:
                continue
            state["last_batch"] = time.monotonic()
            event = {"Records": [{
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"], "attributes": {
                    "ApproximateReceiveCount": m["Attributes"]["ApproximateReceiveCount"]},
                "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:seed"} for m in msgs]}
            kind, doc = runtime.invoke(event)
            state["invocations"] += 1
            failed = {f["itemIdentifier"] for f in doc.get("batchItemFailures", [])} \
                if kind == "response" else {m["MessageId"] for m in msgs}
            state["failed"] += len(failed)
            done = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(msgs) if m["MessageId"] not in failed]
            if done:
                aws_env.sqs(self.sqs_url, "DeleteMessageBatch", QueueUrl=queue_url, Entries=done)
            state["delivered"] += len(done)

    def test_seed_payload_to_results(self):
        _, url = targets.start_target(self)
        name = "seed-%d" % os.getpid()
        queue_url, _ = aws_env.create_queue_with_dlq(self.sqs_url, name, max_receive=3,
                                                     visibility_s=30)
        aws_env.create_table(self.ddb_url, name)
        listen = "tls+tcp://127.0.0.1:%d" % harness.free_port()
        rt, launcher = self.start_launcher(launcher_env(
            self.ecs.url, queue_url=queue_url, table=name, STAMPEDE_COORDINATOR_LISTEN=listen))

        # The sink as a Lambda function fed by the queue's event source.
        sink_rt = LambdaRuntime()
        self.addCleanup(sink_rt.close)
        env = aws_env.aws_env(STAMPEDE_TABLE=name, AWS_ENDPOINT_URL_DYNAMODB=self.ddb_url)
        env.update(sink_rt.env)
        sink = self.start([harness.binary("stampede-sink")], env=env, name="sink")
        stop = threading.Event()
        state = {"invocations": 0, "delivered": 0, "failed": 0, "last_batch": 0.0}
        poller = threading.Thread(target=self.event_source,
                                  args=(sink_rt, queue_url, stop, state), daemon=True)
        poller.start()
        self.addCleanup(poller.join, 30)
        self.addCleanup(stop.set)

        event = {"taskCount": 2, "targetUrl": url + "/", "vus": 5, "rate": 20, "duration": 5}
        kind, answer = rt.invoke(event)
        self.assertEqual(kind, "response", (answer, launcher.stderr()))
        self.assertRegex(answer["run_id"], RUN_ID_RE)
        self.assertEqual({k: answer[k] for k in ("queue_url", "table", "agents", "target_rps",
                                                 "duration_s")},
                         {"queue_url": queue_url, "table": name, "agents": 2, "target_rps": 200,
                          "duration_s": 5})
        self.check_coordinator_request(answer, event, 2, listen)
        run_id = answer["run_id"]

        # The coordinator runs its 2 agents through the same ECS and ends by itself.
        (coord,) = self.ecs.wait_stopped("stampede-coordinator", 90)
        self.assertEqual(coord["exit_code"], 0, self.ecs.logs())
        agents = self.ecs.wait_stopped("stampede-agent", 20)
        self.assertEqual(len(agents), 2)
        agent_runs = [r["body"] for r in self.ecs.calls("RunTask")
                      if r["body"]["taskDefinition"] == "stampede-agent:3"]
        self.assertEqual([b["count"] for b in agent_runs], [2])
        self.assertEqual(agent_runs[0]["startedBy"], "stampede-" + run_id)
        self.assertEqual(agent_runs[0]["networkConfiguration"]["awsvpcConfiguration"][
            "securityGroups"], ["sg-agents"])
        self.assertEqual(targets.target_stats(url)["requests"], 1000)

        # Every result message reaches the table through the sink; then the queue stays empty.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            items = [i for i in aws_env.cli_scan(self.ddb_url, name)
                     if i["testId"]["S"] == run_id]
            if any(i["sk"]["S"] == "summary" for i in items) and \
                    time.monotonic() - state["last_batch"] > 3:
                break
            time.sleep(0.5)
        self.assertEqual(state["failed"], 0, sink.stderr())
        self.assertGreaterEqual(state["invocations"], 1)
        self.assertEqual(state["delivered"], len(items))
        self.assertIn("summary", [i["sk"]["S"] for i in items])

        code, out, err = self.run_to_end(
            [harness.binary("stampede"), "results", run_id, "--table", name, "--endpoint-url",
             self.ddb_url], timeout=30, env=aws_env.aws_env())
        self.assertEqual(code, 0, err)
        self.assertIn("run %s in table %s:" % (run_id, name), out)
        self.assertIn("summary stored", out)
        self.assertRegex(out, r"whole run, merged from \d+ histogram\(s\): sent 1000, ok 1000, "
                              r"failed 0;")
        self.assertIn("match the stored histograms", out)
        stop.set()
        poller.join(30)
        self.assert_clean_exit(sink)
        self.assert_clean_exit(launcher)


class Launcher(LauncherCase):
    def test_a_plan_event_runs_with_its_agents(self):
        # A stampede plan instead of the seed's payload: "agents" is the task count.
        _, url = targets.start_target(self)
        listen = "tls+tcp://127.0.0.1:%d" % harness.free_port()
        rt, launcher = self.start_launcher(launcher_env(self.ecs.url,
                                                        STAMPEDE_COORDINATOR_LISTEN=listen))
        event = {"name": "plan event", "url": url + "/", "rate": 15, "duration": 2, "agents": 3,
                 "connections": 2}
        kind, answer = rt.invoke(event)
        self.assertEqual(kind, "response", (answer, launcher.stderr()))
        self.assertEqual((answer["agents"], answer["target_rps"], answer["duration_s"]),
                         (3, 15, 2))
        self.assertEqual(answer["table"], "stampede-results")
        self.check_coordinator_request(answer, event, 3, listen)
        (coord,) = self.ecs.wait_stopped("stampede-coordinator", 90)
        # Nothing listens at the queue URL (port 9 of 127.0.0.1): the results wait in the
        # coordinator's spool (exit 4), but the load ran in full.
        self.assertEqual(coord["exit_code"], 4, self.ecs.logs())
        self.assertEqual(len(self.ecs.wait_stopped("stampede-agent", 20)), 3)
        self.assertEqual(targets.target_stats(url)["requests"], 30)
        # One launcher runs many invocations: a second one gets a run of its own.
        kind, second = rt.invoke(event)
        self.assertEqual(kind, "response", second)
        self.assertNotEqual(second["run_id"], answer["run_id"])
        self.assert_clean_exit(launcher)

    def refused(self, rt, event, error_type):
        kind, doc = rt.invoke(event)
        self.assertEqual(kind, "error", doc)
        self.assertEqual(doc["errorType"], error_type, doc)
        return doc["errorMessage"]

    def test_bad_payloads_name_the_field_and_launch_nothing(self):
        rt, launcher = self.start_launcher(launcher_env(self.ecs.url))
        good = {"taskCount": 2, "targetUrl": "http://127.0.0.1:9/", "vus": 5, "rate": 20,
                "duration": 5}
        cases = [
            (dict(good, rate=-1), "$.rate: "),
            (dict(good, taskCount="two"), "$.taskCount: "),
            (dict(good, targetUrl="ftp://x/"), "$.targetUrl: "),
            (dict(good, extra=1), "$.extra: unknown key"),
            ({k: v for k, v in good.items() if k != "targetUrl"}, "$: a launcher payload needs "
                                                                  "\"targetUrl\""),
            ({"url": "http://127.0.0.1:9/", "rate": 10, "duration": 1, "agents": 0}, "$.agents: "),
            ([1, 2], "$: a plan must be a JSON object"),
            ({"requests": [{"url": "http://127.0.0.1:9/", "body_file": "/etc/hostname"}],
              "rate": 1, "duration": 1}, "$.requests[0].body_file: "),
            (b"{\"taskCount\": 2,", "line 1, column 16: not valid JSON"),
        ]
        for event, want in cases:
            with self.subTest(event=event):
                msg = self.refused(rt, event, "Launcher.InvalidEvent")
                self.assertTrue(msg.startswith(want), msg)
        self.assertEqual(self.ecs.state()["requests"], [])
        self.assertEqual(self.ecs.state()["launched"], 0)
        # It is still waiting for the next invocation; SIGTERM ends it cleanly.
        self.assertIsNone(launcher.p.poll(), launcher.stderr())
        self.assert_clean_exit(launcher)

    def test_a_plan_too_large_for_ecs_is_refused_naming_its_size(self):
        rt, _ = self.start_launcher(launcher_env(self.ecs.url))
        event = {"requests": [{"url": "http://127.0.0.1:9/%04d?%s" % (i, "q" * 100)}
                              for i in range(80)], "rate": 10, "duration": 1}
        msg = self.refused(rt, event, "Launcher.PlanTooLarge")
        size = len(json.dumps(event, separators=(",", ":")))
        self.assertIn("the plan is %d characters" % size, msg)
        self.assertIn("above ECS's limit of 8192", msg)
        self.assertEqual(self.ecs.state()["requests"], [])

    def test_access_denied_on_runtask_names_the_action(self):
        self.ecs.post("/__fake/faults", [{"kind": "deny", "op": "RunTask"}])
        rt, launcher = self.start_launcher(launcher_env(self.ecs.url))
        msg = self.refused(rt, {"taskCount": 1, "targetUrl": "http://127.0.0.1:9/", "vus": 1,
                                "rate": 1, "duration": 1}, "Launcher.AccessDenied")
        self.assertIn("may not call ecs:RunTask", msg)
        self.assertEqual(self.ecs.state()["launched"], 0)
        self.assertIsNone(launcher.p.poll(), launcher.stderr())
        self.assert_clean_exit(launcher)

    def test_a_failed_task_names_ecs_reason(self):
        self.ecs.post("/__fake/faults", [{"kind": "fail", "op": "RunTask",
                                          "reason": "RESOURCE:ENI"}])
        rt, _ = self.start_launcher(launcher_env(self.ecs.url))
        msg = self.refused(rt, {"taskCount": 1, "targetUrl": "http://127.0.0.1:9/", "vus": 1,
                                "rate": 1, "duration": 1}, "Launcher.TaskFailed")
        self.assertIn("RESOURCE:ENI", msg)
        self.assertIn("stampede-coordinator:3", msg)
        self.assertEqual(self.ecs.state()["launched"], 0)

    def test_a_missing_or_malformed_setting_is_an_init_error(self):
        for env, want in [({"STAMPEDE_SUBNETS": None}, "STAMPEDE_SUBNETS is not set"),
                          ({"STAMPEDE_TABLE": ""}, "STAMPEDE_TABLE is not set"),
                          ({"STAMPEDE_ASSIGN_PUBLIC_IP": "yes"},
                           "STAMPEDE_ASSIGN_PUBLIC_IP is \"yes\": it must be ENABLED or DISABLED"),
                          ({"STAMPEDE_LOG_LEVEL": "loud"},
                           "STAMPEDE_LOG_LEVEL is \"loud\": it must be debug, info, warn or "
                           "error"),
                          ({"STAMPEDE_AGENT_SECURITY_GROUPS": "default"},
                           "STAMPEDE_AGENT_SECURITY_GROUPS: \"default\" is not an id like sg-")]:
            with self.subTest(env=env):
                rt, p = self.start_launcher(launcher_env(self.ecs.url, **env))
                self.assertEqual(p.wait(20), 2, p.stderr())
                doc = rt.wait_init_error()
                self.assertIsNotNone(doc, p.stderr())
                self.assertEqual(doc["errorType"], "Launcher.ConfigurationError")
                self.assertIn(want, doc["errorMessage"])
                self.assertIn(want, p.stderr())
        self.assertEqual(self.ecs.state()["requests"], [])

    def test_outside_lambda_it_says_so(self):
        code, out, err = self.run_to_end([harness.binary("stampede-launcher")], 10,
                                         env=launcher_env(self.ecs.url))
        self.assertEqual(code, 2)
        self.assertIn("AWS_LAMBDA_RUNTIME_API is not set", err)
        code, out, err = self.run_to_end([harness.binary("stampede-launcher"), "--help"], 10)
        self.assertEqual(code, 0)
        self.assertIn("STAMPEDE_COORDINATOR_TASK_DEFINITION", out)


class RunFlags(harness.ProcTestCase):
    """stampede run's --run-id and --plan-env, as the launcher's command uses them."""

    def run_dry(self, *args, env=None):
        return self.run_to_end([harness.binary("stampede"), "run", "--dry-run"] + list(args),
                               10, env=env)

    def test_run_id_is_checked(self):
        for bad in ("nope", "20261121T213500Z-3F9A1C2E", "20261121T213500Z-3f9a1c2e0"):
            with self.subTest(run_id=bad):
                code, _, err = self.run_dry("--url", "http://127.0.0.1:9/", "--rate", 1,
                                            "--duration", 1, "--run-id", bad)
                self.assertEqual(code, 2)
                self.assertIn("--run-id \"%s\": " % bad, err)

    def test_a_given_run_id_names_the_run(self):
        _, url = targets.start_target(self)
        run_id = "20261121T213500Z-3f9a1c2e"
        summary = os.path.join(tempfile.mkdtemp(prefix="st-runid-"), "s.json")
        code, _, err = self.run_to_end(
            [harness.binary("stampede"), "run", "--url", url + "/", "--rate", 10, "--duration",
             1, "--run-id", run_id, "--summary", summary], 30)
        self.assertEqual(code, 0, err)
        self.assertIn("run %s:" % run_id, err)
        with open(summary) as f:
            self.assertEqual(json.load(f)["run_id"], run_id)

    def test_the_plan_from_the_environment(self):
        plan = {"taskCount": 2, "targetUrl": "http://127.0.0.1:9/", "vus": 5, "rate": 20,
                "duration": 5}
        code, out, err = self.run_dry("--plan-env", "MY_PLAN", env={"MY_PLAN": json.dumps(plan)})
        self.assertEqual(code, 0, err)
        self.assertIn("1000 requests over 5.0 s (200.0 rps on average, 100.0 per agent)", out)
        code, _, err = self.run_dry("--plan-env", "MY_PLAN",
                                    env={"MY_PLAN": json.dumps(dict(plan, vus=0))})
        self.assertEqual(code, 2)
        self.assertIn("the plan in MY_PLAN: $.vus: ", err)
        code, _, err = self.run_dry("--plan-env", "NO_SUCH_PLAN")
        self.assertEqual(code, 2)
        self.assertIn("--plan-env NO_SUCH_PLAN: the environment has no NO_SUCH_PLAN", err)
        code, _, err = self.run_dry("plan.json", "--plan-env", "MY_PLAN",
                                    env={"MY_PLAN": json.dumps(plan)})
        self.assertEqual(code, 2)
        self.assertIn("one plan or the other", err)


if __name__ == "__main__":
    unittest.main()
