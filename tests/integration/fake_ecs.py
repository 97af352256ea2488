#!/usr/bin/python3
"""A fake Amazon ECS endpoint for stampede's tests, on 127.0.0.1, that starts real processes.

Run with Debian's python3 (it imports Debian's python3-botocore):

    /usr/bin/python3 fake_ecs.py --agent-cmd /path/to/program [--agent-arg ARG ...] [--port 0]
    /usr/bin/python3 fake_ecs.py --taskdef family=F,container=C,cmd=PATH[,ip=A][,aws=1] ...

It prints "fake-ecs ready PORT" on stdout once it listens. Every AWS request (POST /) must be
SigV4-signed for service "ecs" with the test credentials (--key-id, --secret, --region): the
signature is recomputed with botocore's signer. Bodies are validated against botocore's published
ECS model (required members, types, enums, lengths), plus what the model does not say: RunTask's
count is 1..10, its overrides are at most 8192 characters, and its `clientToken` (newer than
Debian's model) is 1..64 ASCII characters. Violations answer ECS-shaped errors ({"__type",
"message"}, HTTP 400).

One cluster (--cluster) exists, and the task definitions: the agents' of --agent-cmd (family
--family, revision --revision, --cpu, --memory, container --container beside a "log-router" one),
and one per --taskdef family=F,container=C,cmd=PATH (--revision, --cpu, --memory, one container C;
keys ip=A: its tasks' private IPv4 is A, e.g. 127.0.0.1 for a coordinator its agents dial;
aws=1: its tasks get this fake's endpoint, region and credentials in their environment, as a
task role gives them through the credential chain). Subnets must start "subnet-", security groups
"sg-". Tasks go PROVISIONING -> PENDING -> RUNNING on a clock (--provision-ms, --pending-ms); on
RUNNING one real process is started: the task definition's program (its entryPoint) with the
RunTask command override as its arguments (else --agent-arg's for --agent-cmd, none for
--taskdef), the environment overrides, and ECS_CONTAINER_METADATA_URI_V4 pointing at a
task-metadata endpoint of the task's own (GET <uri>/task). StopTask kills the process
(TERM, then KILL) and the task goes DEPROVISIONING -> STOPPED with the reason; a process that exits
makes its task STOPPED with the exit code. RunTask is idempotent by clientToken. With
--docker-image IMAGE each task is a container of IMAGE instead (`docker run --rm --network host`
of the image's /usr/bin/NAME, NAME the program's file name), stopped with `docker stop` / `kill`.

Control, unsigned, for the tests (paths under /__fake/):
  POST /__fake/faults  a JSON list of rules, appended; each {"kind": K, "op": OP (default any),
                       "times": N (default 1)}:
                         throttle      answer ThrottlingException
                         deny          answer AccessDeniedException naming ecs:OP
                         server        answer ServerException (HTTP 500)
                         lose_answer   do the call, then answer ServerException (the answer is
                                       "lost": a retry must not launch again)
                         fail          RunTask: "count" of the tasks fail with "reason"
                         spot_capacity RunTask on FARGATE_SPOT: every task fails for capacity
                         pull_error    the next "times" tasks stop with CannotPullContainerError
                         no_process    the next "times" tasks run but their process never starts
                         list_page     ListTasks pages hold "size" ARNs
                         answer        answer "body" (HTTP 200) instead of doing the call
  POST /__fake/metadata?task=ID   the body is served as that task's /task answer from now on
  GET  /__fake/state   {"requests": [...], "launched": N, "tasks": [...]} (a task's "family",
                       "command", "env", "pid", "exit_code", ...)
  POST /__fake/reset   stops every task and forgets everything (faults included)
"""
import argparse
import ctypes
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

MODEL_PATH = "/usr/lib/python3/dist-packages/botocore/data/ecs/2014-11-13/service-2.json"
TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
OPERATIONS = ("RunTask", "DescribeTasks", "StopTask", "ListTasks", "DescribeTaskDefinition")
AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                     r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")
ACCOUNT = "123456789012"
AZS = ("a", "b", "c")
PULL_REASON = ("CannotPullContainerError: pull image manifest has been retried 5 time(s): failed "
               "to resolve ref stampede-agent:latest: not found")
SPOT_REASON = ("Capacity is unavailable at this time. Please try again later or in a different "
               "availability zone")


class ApiError(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


# ---- the model ----

class Model:
    def __init__(self, path):
        with open(path) as f:
            m = json.load(f)
        self.shapes = m["shapes"]
        self.ops = m["operations"]

    def check(self, op, body):
        shape = self.ops[op]["input"]["shape"]
        extra = {"clientToken"} if op == "RunTask" else set()
        if op == "RunTask" and "clientToken" in body:
            t = body["clientToken"]
            if not isinstance(t, str) or not 1 <= len(t) <= 64 or \
                    any(not 0x20 <= ord(ch) <= 0x7e for ch in t):
                raise ApiError("InvalidParameterException",
                               "clientToken must be 1 to 64 ASCII characters")
        self._value(shape, body, "", extra)

    def _value(self, name, v, path, extra=frozenset()):
        s = self.shapes[name]
        t = s["type"]
        where = path or "the request"
        if t == "structure":
            if not isinstance(v, dict):
                raise ApiError("SerializationException", "%s must be an object" % where)
            for r in s.get("required", []):
                if r not in v:
                    raise ApiError("InvalidParameterException",
                                   "%s: the member %s is required" % (where, r))
            for k, x in v.items():
                if k in extra:
                    continue
                if k not in s["members"]:
                    raise ApiError("SerializationException",
                                   "%s: unknown member %s" % (where, k))
                self._value(s["members"][k]["shape"], x, (path + "." if path else "") + k)
        elif t == "list":
            if not isinstance(v, list):
                raise ApiError("SerializationException", "%s must be a list" % where)
            self._length(s, len(v), where)
            for i, x in enumerate(v):
                self._value(s["member"]["shape"], x, "%s[%d]" % (path, i))
        elif t == "map":
            if not isinstance(v, dict):
                raise ApiError("SerializationException", "%s must be a map" % where)
            for k, x in v.items():
                self._value(s["key"]["shape"], k, path)
                self._value(s["value"]["shape"], x, "%s.%s" % (path, k))
        elif t == "string":
            if not isinstance(v, str):
                raise ApiError("SerializationException", "%s must be a string" % where)
            self._length(s, len(v), where)
            if "enum" in s and v not in s["enum"]:
                raise ApiError("InvalidParameterException",
                               "%s: %r is not one of %s" % (where, v, ", ".join(s["enum"])))
        elif t in ("integer", "long"):
            if not isinstance(v, int) or isinstance(v, bool):
                raise ApiError("SerializationException", "%s must be an integer" % where)
            if ("min" in s and v < s["min"]) or ("max" in s and v > s["max"]):
                raise ApiError("InvalidParameterException", "%s: %d is out of range" % (where, v))
        elif t == "boolean":
            if not isinstance(v, bool):
                raise ApiError("SerializationException", "%s must be a boolean" % where)
        elif t in ("double", "float", "timestamp"):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise ApiError("SerializationException", "%s must be a number" % where)
        else:
            raise ApiError("SerializationException", "%s: unsupported type %s" % (where, t))

    @staticmethod
    def _length(s, n, where):
        if ("min" in s and n < s["min"]) or ("max" in s and n > s["max"]):
            raise ApiError("InvalidParameterException",
                           "%s: length %d is outside %s..%s" % (where, n, s.get("min", 0),
                                                                 s.get("max", "")))


def pdeathsig():
    """In the child: die with the fake (PR_SET_PDEATHSIG = 1)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)
    except OSError:
        pass


# ---- what a task runs: a process, or a container of --docker-image ----

class ProcessRunner:
    """Each task is a process of its task definition's program, with the task's environment."""

    def __init__(self, a):
        self.a = a

    def start(self, t, argv, env, out):
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                preexec_fn=pdeathsig)

    def stop(self, t):
        t.proc.terminate()

    def kill(self, t):
        t.proc.kill()


class DockerRunner:
    """Each task is a container of --docker-image on the host's network (`docker run --rm`, the
    client in the foreground: its exit code is the container's) running /usr/bin/NAME of the
    image, NAME the task definition's program's file name, with only what the task adds to the
    fake's own environment (its overrides, metadata URI, AWS settings). StopTask is `docker
    stop`, a hard stop `docker kill`. The client is $ST_DOCKER (default docker) and reaches the
    daemon of $DOCKER_HOST."""

    def __init__(self, a):
        self.a = a
        self.docker = os.environ.get("ST_DOCKER", "docker")

    @staticmethod
    def name(t):
        return "st-task-" + t.id

    def start(self, t, argv, env, out):
        cmd = [self.docker, "run", "--rm", "--network", "host", "--name", self.name(t)]
        for k, v in sorted(env.items()):
            if os.environ.get(k) != v:
                cmd += ["-e", "%s=%s" % (k, v)]
        cmd += ["--entrypoint", "/usr/bin/" + os.path.basename(argv[0]), self.a.docker_image]
        return subprocess.Popen(cmd + argv[1:], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=out, preexec_fn=pdeathsig)

    def _docker(self, *args):
        subprocess.Popen([self.docker] + list(args), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self, t):
        self._docker("stop", "--time", "2", self.name(t))

    def kill(self, t):
        """`docker kill`, then the client too if it is still there (a container not created
        yet when it was killed)."""
        subprocess.run([self.docker, "kill", self.name(t)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
        try:
            t.proc.wait(5)
        except subprocess.TimeoutExpired:
            t.proc.kill()


# ---- task definitions ----

class TaskDef:
    """A registered task definition: its one stampede container and the program it runs."""

    def __init__(self, a, family, container, cmd, args=(), ip=None, aws=False, extra=()):
        self.family, self.revision, self.container = family, a.revision, container
        self.cmd, self.args, self.ip, self.aws, self.extra = cmd, list(args), ip, aws, list(extra)
        self.arn = "arn:aws:ecs:%s:%s:task-definition/%s:%d" % (a.region, ACCOUNT, family,
                                                                a.revision)

    def names(self):
        return (self.family, "%s:%d" % (self.family, self.revision), self.arn)

    @staticmethod
    def parse(a, spec):
        """--taskdef family=F,container=C,cmd=PATH[,ip=A][,aws=1]"""
        kv = {}
        for part in spec.split(","):
            k, sep, v = part.partition("=")
            if not sep or k not in ("family", "container", "cmd", "ip", "aws"):
                raise SystemExit("fake_ecs.py: --taskdef %s: %r is not one of family=, "
                                 "container=, cmd=, ip=, aws=" % (spec, part))
            kv[k] = v
        for k in ("family", "container", "cmd"):
            if not kv.get(k):
                raise SystemExit("fake_ecs.py: --taskdef %s: %s= is required" % (spec, k))
        return TaskDef(a, kv["family"], kv["container"], kv["cmd"], ip=kv.get("ip"),
                       aws=kv.get("aws") == "1")


# ---- tasks ----

class Task:
    def __init__(self, fake, n, req, launch, td):
        self.td = td
        self.id = uuid.uuid4().hex
        self.n = n
        self.arn = "arn:aws:ecs:%s:%s:task/%s/%s" % (fake.a.region, ACCOUNT, fake.a.cluster,
                                                     self.id)
        self.az = fake.a.region + AZS[n % len(AZS)]
        self.ip = td.ip or "10.0.%d.%d" % (n // 250, n % 250 + 4)
        self.created = time.monotonic()
        self.last = "PROVISIONING"
        self.desired = "RUNNING"
        self.stop_code = None
        self.stopped_reason = None
        self.exit_code = None
        self.container_reason = None
        self.container_status = "PENDING"
        self.started_by = req.get("startedBy")
        self.tags = req.get("tags", [])
        self.launch = launch
        self.overrides = req.get("overrides", {})
        self.env = {}
        self.command = None  # the container's command override: the program's arguments
        for c in self.overrides.get("containerOverrides", []):
            for kv in c.get("environment", []):
                self.env[kv["name"]] = kv["value"]
            if "command" in c:
                self.command = list(c["command"])
        self.cpu = self.overrides.get("cpu", fake.a.cpu)
        self.memory = self.overrides.get("memory", fake.a.memory)
        self.pull_error = False
        self.no_process = False
        self.proc = None
        self.kill_at = None
        self.meta_body = None
        self.meta = None

    def describe(self, fake, tags):
        cont = {"containerArn": self.arn.replace(":task/", ":container/") + "/agent",
                "taskArn": self.arn, "name": self.td.container, "image": "stampede-agent:test",
                "lastStatus": self.container_status}
        if self.exit_code is not None:
            cont["exitCode"] = self.exit_code
        if self.container_reason:
            cont["reason"] = self.container_reason
        d = {"taskArn": self.arn, "clusterArn": fake.cluster_arn, "taskDefinitionArn": self.td.arn,
             "lastStatus": self.last, "desiredStatus": self.desired, "availabilityZone": self.az,
             "cpu": self.cpu, "memory": self.memory, "group": "family:" + self.td.family,
             "overrides": self.overrides, "containers": [cont], "createdAt": time.time(),
             "attachments": [{"id": self.id[:8], "type": "ElasticNetworkInterface",
                              "status": "ATTACHED",
                              "details": [{"name": "subnetId", "value": "subnet-1"},
                                          {"name": "privateIPv4Address", "value": self.ip}]}]}
        if self.launch == "FARGATE_SPOT":
            d["capacityProviderName"] = "FARGATE_SPOT"
        else:
            d["launchType"] = "FARGATE"
        if self.started_by:
            d["startedBy"] = self.started_by
        if self.stop_code:
            d["stopCode"] = self.stop_code
        if self.stopped_reason:
            d["stoppedReason"] = self.stopped_reason
        if tags:
            d["tags"] = self.tags
        return d

    def metadata(self, fake):
        return {"Cluster": fake.cluster_arn, "TaskARN": self.arn, "Family": self.td.family,
                "Revision": str(self.td.revision), "DesiredStatus": self.desired,
                "KnownStatus": self.last, "AvailabilityZone": self.az, "LaunchType": "FARGATE",
                "Limits": {"CPU": int(self.cpu) / 1024.0, "Memory": int(self.memory)},
                "ClockDrift": {"ClockErrorBound": 0.35,
                               "ReferenceTimestamp": "2026-12-01T00:00:00Z",
                               "ClockSynchronizationStatus": "SYNCHRONIZED"},
                "Containers": [{"Name": self.td.container, "Image": "stampede-agent:test",
                                "Networks": [{"NetworkMode": "awsvpc",
                                              "IPv4Addresses": [self.ip]}]}]}


class MetaHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        task, fake = self.server.task, self.server.fake
        base = "/v4/" + task.id
        if self.path == base + "/task":
            with fake.lock:
                body = task.meta_body if task.meta_body is not None else \
                    json.dumps(task.metadata(fake)).encode()
            status = 200
        else:
            body, status = b"404 page not found", 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Fake:
    def __init__(self, a):
        self.a = a
        self.model = Model(MODEL_PATH)
        self.runner = DockerRunner(a) if a.docker_image else ProcessRunner(a)
        self.lock = threading.RLock()
        self.cluster_arn = "arn:aws:ecs:%s:%s:cluster/%s" % (a.region, ACCOUNT, a.cluster)
        self.taskdefs = []
        if a.agent_cmd:
            self.taskdefs.append(TaskDef(a, a.family, a.container, a.agent_cmd, a.agent_arg,
                                         extra=["log-router"]))
        self.taskdefs += [TaskDef.parse(a, spec) for spec in a.taskdef]
        if not self.taskdefs:
            raise SystemExit("fake_ecs.py: give --agent-cmd or --taskdef")
        self.url = None  # this endpoint's, once it listens
        self.reset()

    def reset(self):
        with self.lock:
            for t in getattr(self, "tasks", []):
                self._kill(t, hard=True)
                if t.meta:
                    t.meta.shutdown()
                    t.meta.server_close()
            self.tasks = []
            self.by_token = {}
            self.faults = []
            self.requests = []
            self.launched = 0

    # -- faults --
    def take_fault(self, op, kinds):
        for f in self.faults:
            if f["kind"] in kinds and f.get("op", op) == op and f.get("times", 1) > 0:
                f["times"] = f.get("times", 1) - 1
                return f
        return None

    # -- the clock --
    def tick(self):
        now = time.monotonic()
        with self.lock:
            for t in self.tasks:
                age = now - t.created
                if t.last == "PROVISIONING" and age >= self.a.provision_ms / 1000.0:
                    t.last = "PENDING"
                if t.last == "PENDING" and age >= (self.a.provision_ms + self.a.pending_ms) / 1000:
                    if t.pull_error:
                        self._stopped(t, "TaskFailedToStart", PULL_REASON)
                        t.container_reason = PULL_REASON
                    else:
                        t.last = "RUNNING"
                        t.container_status = "RUNNING"
                        if not t.no_process:
                            self._start(t)
                if t.proc is not None and t.exit_code is None:
                    rc = t.proc.poll()
                    if rc is not None:
                        t.exit_code = rc if rc >= 0 else 128 - rc
                        t.container_status = "STOPPED"
                        if t.desired == "RUNNING":
                            self._stopped(t, "EssentialContainerExited",
                                          "Essential container in task exited")
                        else:
                            t.last = "STOPPED"
                    elif t.kill_at is not None and now >= t.kill_at:
                        t.kill_at = None
                        self.runner.kill(t)
                if t.last == "DEPROVISIONING" and (t.proc is None or t.exit_code is not None):
                    t.last = "STOPPED"
                    t.container_status = "STOPPED"

    def _stopped(self, t, code, reason):
        t.desired = "STOPPED"
        t.last = "STOPPED"
        t.container_status = "STOPPED"
        t.stop_code = code
        t.stopped_reason = reason
        self._close_meta(t)

    def _close_meta(self, t):
        if t.meta:
            m, t.meta = t.meta, None
            threading.Thread(target=lambda: (m.shutdown(), m.server_close()), daemon=True).start()

    def _start(self, t):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MetaHandler)
        srv.daemon_threads = True
        srv.task, srv.fake = t, self
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        t.meta = srv
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        if t.td.aws:
            env.update({"AWS_ACCESS_KEY_ID": self.a.key_id, "AWS_SECRET_ACCESS_KEY": self.a.secret,
                        "AWS_REGION": self.a.region, "AWS_DEFAULT_REGION": self.a.region,
                        "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL_ECS": self.url})
        env.update(t.env)
        env["ECS_CONTAINER_METADATA_URI_V4"] = "http://127.0.0.1:%d/v4/%s" % (
            srv.server_address[1], t.id)
        out = subprocess.DEVNULL
        if self.a.log_dir:
            out = open(os.path.join(self.a.log_dir, "task-%s.log" % t.id), "wb")
        args = t.command if t.command is not None else t.td.args
        t.proc = self.runner.start(t, [t.td.cmd] + args, env, out)
        if out is not subprocess.DEVNULL:
            out.close()
        self.launched += 1

    def _kill(self, t, hard=False):
        if t.proc is not None and t.proc.poll() is None:
            if hard:
                self.runner.kill(t)
                t.proc.wait()
            else:
                self.runner.stop(t)
                t.kill_at = time.monotonic() + 2.0

    # -- operations --
    def call(self, op, body):
        f = self.take_fault(op, ("throttle", "deny", "server"))
        if f and f["kind"] == "throttle":
            raise ApiError("ThrottlingException", "Rate exceeded")
        if f and f["kind"] == "deny":
            raise ApiError("AccessDeniedException",
                           "User: arn:aws:iam::%s:user/stampede is not authorized to perform: "
                           "ecs:%s on resource: %s because no identity-based policy allows the "
                           "ecs:%s action" % (ACCOUNT, op, self.cluster_arn, op))
        if f and f["kind"] == "server":
            raise ApiError("ServerException", "Service unavailable", 500)
        self.model.check(op, body)
        f = self.take_fault(op, ("answer",))
        if f:
            return f["body"]
        if op in ("RunTask", "DescribeTasks", "StopTask", "ListTasks"):
            c = body.get("cluster", "default")
            if c not in (self.a.cluster, self.cluster_arn):
                raise ApiError("ClusterNotFoundException", "Cluster not found.")
        return getattr(self, "op_" + op)(body)

    def _taskdef(self, name):
        return next((td for td in self.taskdefs if name in td.names()), None)

    def op_RunTask(self, b):
        token = b.get("clientToken")
        key = json.dumps(b, sort_keys=True)
        if token is not None and token in self.by_token:
            old_key, old_reply = self.by_token[token]
            if old_key != key:
                raise ApiError("InvalidParameterException",
                               "The clientToken %s was used with other parameters" % token)
            return old_reply
        count = b.get("count", 1)
        if not 1 <= count <= 10:
            raise ApiError("InvalidParameterException", "count must be between 1 and 10")
        td = self._taskdef(b["taskDefinition"])
        if not td:
            raise ApiError("ClientException", "Unable to describe task definition.")
        if "launchType" in b and "capacityProviderStrategy" in b:
            raise ApiError("InvalidParameterException",
                           "Specifying both a launch type and capacity provider strategy is not "
                           "supported. Remove one and try again.")
        vpc = b.get("networkConfiguration", {}).get("awsvpcConfiguration")
        if not vpc:
            raise ApiError("InvalidParameterException",
                           "Network Configuration must be provided when networkMode 'awsvpc' is "
                           "specified.")
        for s in vpc["subnets"]:
            if not s.startswith("subnet-"):
                raise ApiError("InvalidParameterException",
                               "Error retrieving subnet information for [%s]: The subnet ID '%s' "
                               "does not exist (ErrorCode: InvalidSubnetID.NotFound)" % (s, s))
        for g in vpc.get("securityGroups", []):
            if not g.startswith("sg-"):
                raise ApiError("InvalidParameterException",
                               "Error retrieving security group information for [%s]: The "
                               "security group '%s' does not exist" % (g, g))
        ov = b.get("overrides")
        if ov is not None and len(json.dumps(ov, separators=(",", ":"))) > 8192:
            raise ApiError("InvalidParameterException",
                           "Container Overrides length must be at most 8192")
        for c in (ov or {}).get("containerOverrides", []):
            if c.get("name") != td.container:
                raise ApiError("InvalidParameterException",
                               "Override for container named %s is not a container in the "
                               "TaskDefinition." % c.get("name"))
        launch = "FARGATE"
        for item in b.get("capacityProviderStrategy", []):
            if item["capacityProvider"] not in ("FARGATE", "FARGATE_SPOT"):
                raise ApiError("InvalidParameterException", "The capacity provider %s is not "
                               "associated with the cluster" % item["capacityProvider"])
            if item["capacityProvider"] == "FARGATE_SPOT" and item.get("weight", 0) > 0:
                launch = "FARGATE_SPOT"
        failing = 0
        reason = None
        if launch == "FARGATE_SPOT" and self.take_fault("RunTask", ("spot_capacity",)):
            failing, reason = count, SPOT_REASON
        else:
            f = self.take_fault("RunTask", ("fail",))
            if f:
                failing, reason = min(count, f.get("count", count)), f.get("reason",
                                                                             "RESOURCE:MEMORY")
        tasks, failures = [], []
        for i in range(count):
            if i >= count - failing:
                failures.append({"arn": "arn:aws:ecs:%s:%s:container-instance/%s" % (
                    self.a.region, ACCOUNT, uuid.uuid4().hex), "reason": reason})
                continue
            t = Task(self, len(self.tasks), b, launch, td)
            t.pull_error = bool(self.take_fault("RunTask", ("pull_error",)))
            t.no_process = bool(self.take_fault("RunTask", ("no_process",)))
            self.tasks.append(t)
            tasks.append(t.describe(self, False))
        reply = {"tasks": tasks, "failures": failures}
        if token is not None:
            self.by_token[token] = (key, reply)
        return reply

    def _find(self, ref):
        for t in self.tasks:
            if ref in (t.arn, t.id):
                return t
        return None

    def op_DescribeTasks(self, b):
        if len(b["tasks"]) > 100:
            raise ApiError("InvalidParameterException", "Tasks cannot be longer than 100")
        if not b["tasks"]:
            raise ApiError("InvalidParameterException", "Tasks cannot be empty.")
        tags = "TAGS" in b.get("include", [])
        tasks, failures = [], []
        for ref in b["tasks"]:
            t = self._find(ref)
            if t:
                tasks.append(t.describe(self, tags))
            else:
                failures.append({"arn": ref, "reason": "MISSING"})
        return {"tasks": tasks, "failures": failures}

    def op_StopTask(self, b):
        t = self._find(b["task"])
        if not t:
            raise ApiError("InvalidParameterException", "The referenced task was not found.")
        reason = b.get("reason", "")
        if len(reason) > 255:
            raise ApiError("InvalidParameterException", "reason can be at most 255 characters")
        if t.desired != "STOPPED":
            t.desired = "STOPPED"
            t.stop_code = "UserInitiated"
            t.stopped_reason = reason or "Task stopped by user"
            if t.last != "STOPPED":
                t.last = "DEPROVISIONING"
            self._kill(t)
            self._close_meta(t)
        return {"task": t.describe(self, False)}

    def op_ListTasks(self, b):
        if "startedBy" in b and any(k in b for k in ("family", "serviceName",
                                                      "containerInstance")):
            raise ApiError("InvalidParameterException",
                           "startedBy must be the only filter when it is given")
        want = b.get("desiredStatus", "RUNNING")
        page = b.get("maxResults", 100)
        if not 1 <= page <= 100:
            raise ApiError("InvalidParameterException", "maxResults must be 1 to 100")
        f = next((x for x in self.faults if x["kind"] == "list_page"), None)
        if f:
            page = min(page, f["size"])
        arns = [t.arn for t in self.tasks if t.desired == want and
                ("startedBy" not in b or t.started_by == b["startedBy"])]
        start = 0
        if "nextToken" in b:
            try:
                start = int(b["nextToken"].split("-", 1)[1])
            except (IndexError, ValueError):
                raise ApiError("InvalidParameterException", "Invalid nextToken") from None
        reply = {"taskArns": arns[start:start + page]}
        if start + page < len(arns):
            reply["nextToken"] = "page-%d" % (start + page)
        return reply

    def op_DescribeTaskDefinition(self, b):
        td = self._taskdef(b["taskDefinition"])
        if not td:
            raise ApiError("ClientException", "Unable to describe task definition.")
        return {"taskDefinition": {
            "taskDefinitionArn": td.arn, "family": td.family,
            "revision": td.revision, "status": "ACTIVE", "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"], "compatibilities": ["EC2", "FARGATE"],
            "cpu": self.a.cpu, "memory": self.a.memory,
            "containerDefinitions": [{"name": td.container, "image": "stampede-agent:test",
                                      "essential": True}] + [
                {"name": name, "image": "fluent-bit:test", "essential": False}
                for name in td.extra]}}

    def state(self):
        return {"requests": self.requests, "launched": self.launched,
                "tasks": [{"arn": t.arn, "id": t.id, "last": t.last, "desired": t.desired,
                           "pid": t.proc.pid if t.proc else None, "exit_code": t.exit_code,
                           "family": t.td.family, "command": t.command,
                           "env": t.env, "launch": t.launch, "stopped_reason": t.stopped_reason,
                           "meta_url": "http://127.0.0.1:%d/v4/%s" % (t.meta.server_address[1],
                                                                     t.id) if t.meta else None}
                          for t in self.tasks]}


# ---- HTTP ----

def verify_signature(a, method, path, headers, body):
    auth = headers.get("Authorization", "")
    m = AUTH_RE.match(auth)
    if not m:
        raise ApiError("IncompleteSignatureException", "Authorization header is not SigV4", 403)
    key_id, day, region, svc, signed, signature = m.groups()
    if key_id != a.key_id:
        raise ApiError("UnrecognizedClientException",
                       "The security token included in the request is invalid.", 403)
    if region != a.region or svc != "ecs":
        raise ApiError("InvalidSignatureException",
                       "Credential should be scoped to region %s and service ecs" % a.region, 403)
    amz_date = headers.get("X-Amz-Date", "")
    if amz_date[:8] != day:
        raise ApiError("InvalidSignatureException", "X-Amz-Date does not match the scope", 403)
    names = signed.split(";")
    lower = {k.lower(): v for k, v in headers.items()}
    for need in ("host", "x-amz-date", "x-amz-target", "content-type"):
        if need not in names:
            raise ApiError("InvalidSignatureException", "%s must be signed" % need, 403)
    req = AWSRequest(method=method, url="http://%s%s" % (lower["host"], path), data=body,
                     headers={n: lower.get(n, "") for n in names})
    req.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(a.key_id, a.secret, lower.get("x-amz-security-token")), "ecs",
                       a.region)
    canonical = signer.canonical_request(req)
    expected = signer.signature(signer.string_to_sign(req, canonical), req)
    if expected != signature:
        raise ApiError("InvalidSignatureException",
                       "The request signature we calculated does not match the signature you "
                       "provided.", 403)


def make_handler(fake):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status, obj, ctype="application/x-amz-json-1.1"):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def do_GET(self):
            if self.path == "/__fake/state":
                with fake.lock:
                    self._send(200, fake.state(), "application/json")
            else:
                self._send(404, {"message": "no such path"}, "application/json")

        def do_POST(self):
            body = self._body()
            url = urllib.parse.urlsplit(self.path)
            if url.path.startswith("/__fake/"):
                return self._control(url, body)
            if url.path != "/":
                return self._send(404, {"message": "no such path"})
            target = self.headers.get("X-Amz-Target", "")
            op = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
            entry = {"op": op or target, "accepted": False}
            with fake.lock:
                fake.requests.append(entry)
                try:
                    verify_signature(fake.a, "POST", self.path, dict(self.headers.items()), body)
                    if self.headers.get("Content-Type") != "application/x-amz-json-1.1":
                        raise ApiError("SerializationException",
                                       "Content-Type must be application/x-amz-json-1.1")
                    if op not in OPERATIONS:
                        raise ApiError("UnknownOperationException", "Unknown operation %s" % target)
                    try:
                        req = json.loads(body)
                    except ValueError:
                        raise ApiError("SerializationException", "the body is not JSON") from None
                    entry["body"] = req
                    reply = fake.call(op, req)
                    entry["accepted"] = True
                    if fake.take_fault(op, ("lose_answer",)):
                        entry["answer_lost"] = True
                        raise ApiError("ServerException", "the answer was lost", 500)
                except ApiError as e:
                    entry["error"] = e.code
                    return self._send(e.status, {"__type": e.code, "message": e.message})
            self._send(200, reply)

        def _control(self, url, body):
            with fake.lock:
                if url.path == "/__fake/faults":
                    fake.faults.extend(json.loads(body))
                elif url.path == "/__fake/reset":
                    fake.reset()
                elif url.path == "/__fake/metadata":
                    t = fake._find(urllib.parse.parse_qs(url.query).get("task", [""])[0])
                    if not t:
                        return self._send(404, {"message": "no such task"}, "application/json")
                    t.meta_body = body
                else:
                    return self._send(404, {"message": "no such path"}, "application/json")
            self._send(200, {}, "application/json")

        def log_message(self, *args):
            pass

    return H


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--agent-cmd")
    p.add_argument("--agent-arg", action="append", default=[])
    p.add_argument("--taskdef", action="append", default=[],
                   help="family=F,container=C,cmd=PATH[,ip=A][,aws=1] (repeatable)")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--key-id", default="AKIDSTAMPEDETEST")
    p.add_argument("--secret", default="stampede-test-secret-never-printed")
    p.add_argument("--cluster", default="stampede")
    p.add_argument("--family", default="stampede-agent")
    p.add_argument("--revision", type=int, default=3)
    p.add_argument("--container", default="agent")
    p.add_argument("--cpu", default="1024")
    p.add_argument("--memory", default="2048")
    p.add_argument("--provision-ms", type=int, default=200)
    p.add_argument("--pending-ms", type=int, default=200)
    p.add_argument("--log-dir")
    p.add_argument("--docker-image", help="start each task as a container of this image "
                   "(see DockerRunner)")
    a = p.parse_args()
    fake = Fake(a)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(fake))
    srv.daemon_threads = True
    stop = threading.Event()

    def on_signal(*_):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    fake.url = "http://127.0.0.1:%d" % srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("fake-ecs ready %d" % srv.server_address[1], flush=True)
    while not stop.wait(0.02):
        fake.tick()
    srv.shutdown()
    fake.reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
