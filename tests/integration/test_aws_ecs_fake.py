"""The fake ECS endpoint (fake_ecs.py) itself: what it refuses must be refused, so that the C clients'
tests (tests/test_aws_ecs.c) prove something when it accepts their requests.

Requests are signed here with botocore's signer, as an AWS SDK would, and checked against what the
fake answers: signatures, botocore's ECS model (required members, types, enums, unknown members),
the limits the model does not carry (count, overrides, clientToken, 100 ARNs), and one real process
per task that StopTask ends.
"""
import json
import os
import time
import urllib.error
import urllib.request

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import aws_env
import harness

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_ecs.py")


def run_body(**extra):
    body = {"cluster": "stampede", "taskDefinition": "stampede-agent:3", "count": 1,
            "launchType": "FARGATE", "clientToken": "t-1",
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"],
                                                             "assignPublicIp": "DISABLED"}}}
    body.update(extra)
    return body


class FakeEcsTest(harness.ProcTestCase):
    def setUp(self):
        super().setUp()
        self.fake = self.start(["/usr/bin/python3", FAKE, "--agent-cmd", "/bin/sleep",
                                "--agent-arg", "60", "--provision-ms", "50",
                                "--pending-ms", "50"], name="fake-ecs")
        text = self.fake.wait_output("fake-ecs ready", timeout=20)
        self.url = "http://127.0.0.1:%d" % int(text.split()[2])

    def ecs(self, op, body, secret=aws_env.SECRET, sign=True):
        """Sends one ECS call; returns (HTTP status, decoded answer)."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/x-amz-json-1.1",
                   "X-Amz-Target": "AmazonEC2ContainerServiceV20141113." + op}
        if sign:
            signed = AWSRequest(method="POST", url=self.url + "/", data=data, headers=headers)
            SigV4Auth(Credentials(aws_env.KEY_ID, secret), "ecs", aws_env.REGION).add_auth(signed)
            headers = dict(signed.headers.items())
        try:
            with urllib.request.urlopen(urllib.request.Request(
                    self.url + "/", data=data, headers=headers, method="POST"), timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def refused(self, op, body, code, words):
        status, answer = self.ecs(op, body)
        self.assertEqual(status, 400, answer)
        self.assertEqual(answer["__type"], code, answer)
        self.assertIn(words, answer["message"])

    def state(self):
        return harness.http_get_json(self.url + "/__fake/state")

    def test_signatures_are_checked(self):
        status, answer = self.ecs("ListTasks", {"cluster": "stampede"}, sign=False)
        self.assertEqual((status, answer["__type"]), (403, "IncompleteSignatureException"))
        status, answer = self.ecs("ListTasks", {"cluster": "stampede"}, secret="other")
        self.assertEqual((status, answer["__type"]), (403, "InvalidSignatureException"))
        status, answer = self.ecs("ListTasks", {"cluster": "stampede"})
        self.assertEqual((status, answer), (200, {"taskArns": []}))

    def test_model_is_enforced(self):
        body = run_body()
        del body["taskDefinition"]
        self.refused("RunTask", body, "InvalidParameterException", "taskDefinition is required")
        self.refused("RunTask", run_body(count="3"), "SerializationException",
                     "count must be an integer")
        self.refused("RunTask", run_body(launchType="SPOT"), "InvalidParameterException",
                     "'SPOT' is not one of")
        self.refused("RunTask", run_body(colour="red"), "SerializationException",
                     "unknown member colour")
        self.refused("RunTask", run_body(networkConfiguration={"awsvpcConfiguration": {
            "subnets": ["subnet-1"], "assignPublicIp": True}}), "SerializationException",
            "assignPublicIp must be a string")
        self.refused("DescribeTasks", {"cluster": "stampede", "tasks": "x"},
                     "SerializationException", "tasks must be a list")
        self.refused("StopTask", {"cluster": "stampede"}, "InvalidParameterException",
                     "task is required")
        self.assertEqual(self.state()["tasks"], [])

    def test_limits_beyond_the_model(self):
        self.refused("RunTask", run_body(count=11), "InvalidParameterException",
                     "between 1 and 10")
        self.refused("RunTask", run_body(clientToken="x" * 65), "InvalidParameterException",
                     "clientToken")
        self.refused("RunTask", run_body(clientToken="caf\u00e9"), "InvalidParameterException",
                     "clientToken")
        over = {"containerOverrides": [{"name": "agent", "environment": [
            {"name": "A", "value": "x" * 8200}]}]}
        self.refused("RunTask", run_body(overrides=over), "InvalidParameterException", "8192")
        self.refused("DescribeTasks", {"cluster": "stampede", "tasks": ["a"] * 101},
                     "InvalidParameterException", "100")
        self.refused("RunTask", run_body(capacityProviderStrategy=[
            {"capacityProvider": "FARGATE_SPOT", "weight": 1}]), "InvalidParameterException",
            "both a launch type and capacity provider strategy")
        self.assertEqual(self.state()["tasks"], [])
        status, answer = self.ecs("RunTask", run_body(clientToken="x" * 64))
        self.assertEqual(status, 200, answer)

    def test_tasks_run_processes_until_stopped(self):
        status, answer = self.ecs("RunTask", run_body(count=2, clientToken="t-2", overrides={
            "containerOverrides": [{"name": "agent", "environment": [
                {"name": "STAMPEDE_TOKEN", "value": "abc"}]}]}))
        self.assertEqual(status, 200, answer)
        arns = [t["taskArn"] for t in answer["tasks"]]
        self.assertEqual(len(arns), 2)
        # The same token and body: the same tasks, nothing new.
        again = self.ecs("RunTask", run_body(count=2, clientToken="t-2", overrides={
            "containerOverrides": [{"name": "agent", "environment": [
                {"name": "STAMPEDE_TOKEN", "value": "abc"}]}]}))[1]
        self.assertEqual([t["taskArn"] for t in again["tasks"]], arns)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            tasks = self.state()["tasks"]
            if all(t["pid"] for t in tasks):
                break
            time.sleep(0.05)
        self.assertEqual(len(tasks), 2)
        pids = [t["pid"] for t in tasks]
        for t, pid in zip(tasks, pids):
            self.assertIsNotNone(pid)
            self.assertEqual(t["env"], {"STAMPEDE_TOKEN": "abc"})
            os.kill(pid, 0)
            meta = harness.http_get_json(t["meta_url"] + "/task")
            self.assertEqual(meta["TaskARN"], t["arn"])
            self.assertEqual(meta["Limits"], {"CPU": 1.0, "Memory": 2048})
        status, stopped = self.ecs("StopTask", {"cluster": "stampede", "task": arns[0],
                                                "reason": "run over"})
        self.assertEqual(status, 200, stopped)
        self.assertEqual(stopped["task"]["desiredStatus"], "STOPPED")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            described = self.ecs("DescribeTasks", {"cluster": "stampede", "tasks": arns})[1]
            if described["tasks"][0]["lastStatus"] == "STOPPED":
                break
            time.sleep(0.05)
        first, second = described["tasks"]
        self.assertEqual((first["lastStatus"], first["stoppedReason"]), ("STOPPED", "run over"))
        self.assertEqual(first["containers"][0]["exitCode"], 128 + 15)
        self.assertEqual(second["lastStatus"], "RUNNING")
        with self.assertRaises(ProcessLookupError):
            os.kill(pids[0], 0)
        os.kill(pids[1], 0)
        self.assertEqual(self.state()["launched"], 2)


if __name__ == "__main__":
    import unittest
    unittest.main()
