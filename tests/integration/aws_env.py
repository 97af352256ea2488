"""AWS fixtures for stampede's integration tests: emulators from the npm registry, signed JSON calls,
and small stand-ins (a TCP proxy that can drop SQS, an HTTP proxy that makes DynamoDB throttle).

Everything binds to 127.0.0.1 and is stopped by the test that started it. The emulators are
installed once into STAMPEDE_NPM_DIR (default ~/.cache/stampede/npm), as scripts/deps.sh's
st_need_npm does for CI.
"""
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import harness

DYNALITE = "dynalite@4.0.0"
LOCAL_SQS = "local-aws-sqs@2.0.2"
NPM_DIR = os.environ.get("STAMPEDE_NPM_DIR") or os.path.expanduser("~/.cache/stampede/npm")
HERE = os.path.dirname(os.path.abspath(__file__))
AWS_CLI = "/usr/bin/aws"
REGION = "us-east-1"
KEY_ID = "AKIDSTAMPEDETEST"
SECRET = "stampede-test-secret-never-printed"

# The tests decide which credentials each process sees: nothing is inherited.
for _name in list(os.environ):
    if _name.startswith("AWS_"):
        del os.environ[_name]


def tmpdir(tc, prefix):
    """A temporary directory removed when the test case tc ends."""
    d = tempfile.mkdtemp(prefix=prefix)
    tc.addCleanup(shutil.rmtree, d, True)
    return d


def aws_env(**extra):
    """Environment for a stampede program talking to the emulators with static credentials."""
    env = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": REGION,
           "AWS_EC2_METADATA_DISABLED": "true"}
    env.update(extra)
    return env


def ensure_emulators():
    """Installs dynalite and local-aws-sqs when they are missing; returns node_modules."""
    modules = os.path.join(NPM_DIR, "node_modules")
    need = [p for p, f in ((DYNALITE, "dynalite/cli.js"), (LOCAL_SQS, "local-aws-sqs/package.json"))
            if not os.path.exists(os.path.join(modules, f))]
    if need:
        if not shutil.which("npm"):
            raise RuntimeError("npm is missing: run scripts/test.sh, or apt-get install nodejs npm")
        os.makedirs(NPM_DIR, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", NPM_DIR,
                        DYNALITE, LOCAL_SQS], check=True, timeout=300,
                       stdout=subprocess.DEVNULL)
    return modules


def start_dynalite(tc_or_none=None):
    modules = ensure_emulators()
    port = harness.free_port()
    p = harness.Proc(["node", os.path.join(modules, "dynalite", "cli.js"), "--host", "127.0.0.1",
                      "--port", port, "--createTableMs", "0", "--deleteTableMs", "0"],
                     name="dynalite")
    harness.wait_port(port, timeout=20)
    return p, "http://127.0.0.1:%d" % port


def start_sqs():
    modules = ensure_emulators()
    port = harness.free_port()
    p = harness.Proc(["node", os.path.join(HERE, "sqs_server.js"), port],
                     env={"NODE_PATH": modules}, name="local-aws-sqs")
    p.wait_output("sqs ready", timeout=20)
    return p, "http://127.0.0.1:%d" % port


class Emulators:
    """A test case mixin: the DynamoDB and SQS emulators for the whole class (ddb_url, sqs_url)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ddb_proc, cls.ddb_url = start_dynalite()
        cls.sqs_proc, cls.sqs_url = start_sqs()

    @classmethod
    def tearDownClass(cls):
        cls.sqs_proc.stop()
        cls.ddb_proc.stop()
        super().tearDownClass()


class AwsError(Exception):
    def __init__(self, status, body):
        super().__init__("HTTP %d: %s" % (status, body))
        self.status = status
        self.body = body


def call(endpoint, service, target, payload, timeout=30):
    """A signed AWS JSON call (botocore's signer); returns the decoded reply."""
    body = json.dumps(payload).encode()
    ctype = "application/x-amz-json-1.0"
    req = AWSRequest(method="POST", url=endpoint + "/", data=body,
                     headers={"Content-Type": ctype, "X-Amz-Target": target})
    SigV4Auth(Credentials(KEY_ID, SECRET), service, REGION).add_auth(req)
    r = urllib.request.Request(endpoint + "/", data=body, method="POST",
                               headers=dict(req.headers.items()))
    try:
        with urllib.request.urlopen(r, timeout=timeout) as resp:
            text = resp.read().decode()
    except urllib.error.HTTPError as e:
        raise AwsError(e.code, e.read().decode()) from None
    return json.loads(text) if text.strip() else {}


def sqs(endpoint, op, **payload):
    return call(endpoint, "sqs", "AmazonSQS." + op, payload)


def ddb(endpoint, op, **payload):
    return call(endpoint, "dynamodb", "DynamoDB_20120810." + op, payload)


def create_queue_with_dlq(endpoint, name, max_receive=2, visibility_s=1):
    """Creates NAME-dlq and NAME redriving to it; returns (queue URL, DLQ URL)."""
    dlq = sqs(endpoint, "CreateQueue", QueueName=name + "-dlq")["QueueUrl"]
    arn = sqs(endpoint, "GetQueueAttributes", QueueUrl=dlq,
              AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receive)})
    url = sqs(endpoint, "CreateQueue", QueueName=name,
              Attributes={"RedrivePolicy": policy,
                          "VisibilityTimeout": str(visibility_s)})["QueueUrl"]
    return url, dlq


def create_table(endpoint, name):
    ddb(endpoint, "CreateTable", TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "testId", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "testId", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = ddb(endpoint, "DescribeTable", TableName=name)["Table"]["TableStatus"]
        if status == "ACTIVE":
            return
        time.sleep(0.05)
    raise TimeoutError("table %s never became ACTIVE" % name)


def queue_messages(endpoint, url, wait_s=0):
    """Everything receivable in a queue now (made visible again right away)."""
    out = []
    while True:
        r = sqs(endpoint, "ReceiveMessage", QueueUrl=url, MaxNumberOfMessages=10,
                WaitTimeSeconds=wait_s, VisibilityTimeout=30, AttributeNames=["All"])
        msgs = r.get("Messages") or []
        if not msgs:
            return out
        out.extend(msgs)
        wait_s = 0


def cli_scan(endpoint, table):
    """Reads a table back with the real AWS CLI (Debian's awscli)."""
    env = dict(os.environ)
    env.update({"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_DEFAULT_REGION": REGION, "AWS_PAGER": ""})
    out = subprocess.run([AWS_CLI, "dynamodb", "scan", "--endpoint-url", endpoint,
                          "--table-name", table, "--output", "json"],
                         check=True, capture_output=True, env=env, timeout=60).stdout
    return json.loads(out)["Items"]


class TcpProxy:
    """Forwards 127.0.0.1:port to a target port; down() refuses connections until up()."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = harness.free_port()
        self._lock = threading.Lock()
        self._conns = []
        self._listener = None
        self._stop = False
        self.up()

    def up(self):
        with self._lock:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", self.port))
            s.listen(64)
            self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def down(self):
        with self._lock:
            if self._listener:
                # shutdown() wakes the thread blocked in accept(); close() alone would not.
                try:
                    self._listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._listener.close()
                self._listener = None
            for c in self._conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self._conns = []

    def close(self):
        self.down()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    # down() ran while this connection was being set up: it must not survive
                    # the outage (a kept-alive connection would carry every later request).
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class HttpStandIn:
    """A threaded HTTP server on 127.0.0.1 whose handler is a function
    handler(method, path, headers, body) -> (status, headers dict, body bytes)."""

    def __init__(self, handler):
        outer = self
        self.requests = []

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                outer.requests.append((self.command, self.path, dict(self.headers.items()), body))
                status, headers, out = handler(self.command, self.path, self.headers, body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def forward_to(endpoint, headers, body, timeout=30):
    """Sends a captured AWS request on to endpoint; returns (status, body bytes)."""
    keep = {k: v for k, v in headers.items()
            if k.lower() not in ("host", "content-length", "connection", "expect")}
    r = urllib.request.Request(endpoint + "/", data=body, method="POST", headers=keep)
    try:
        with urllib.request.urlopen(r, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
