"""Process harness for stampede's integration tests.

Integration tests start real processes on loopback only (127.0.0.1 / ::1), with bounded durations
and request counts, and stop everything they start, even when a test fails. ctest runs each test
file with ST_BIN_DIR pointing at the build's bin/ folder.
"""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

BIN_DIR = os.environ.get("ST_BIN_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "bin")
SRC_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def binary(name):
    path = os.path.join(BIN_DIR, name)
    if not os.access(path, os.X_OK):
        raise FileNotFoundError("%s is not built" % path)
    return path


def free_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(port, host="127.0.0.1", timeout=10.0):
    deadline = time.monotonic() + timeout
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while time.monotonic() < deadline:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError("nothing listens on %s:%d after %.1fs" % (host, port, timeout))


class Proc:
    """A started process whose output goes to files; stop() ends it (TERM, then KILL)."""

    def __init__(self, args, env=None, cwd=None, name=None):
        self.args = [str(a) for a in args]
        self.name = name or os.path.basename(self.args[0])
        self.dir = tempfile.mkdtemp(prefix="st-%s-" % self.name)
        self.out_path = os.path.join(self.dir, "stdout")
        self.err_path = os.path.join(self.dir, "stderr")
        full_env = dict(os.environ)
        if env:
            full_env.update({k: str(v) for k, v in env.items()})
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.p = subprocess.Popen(self.args, stdout=self._out, stderr=self._err, env=full_env,
                                  cwd=cwd, start_new_session=True)

    @property
    def pid(self):
        return self.p.pid

    def wait(self, timeout):
        """Waits for exit and returns the exit code; kills and raises on timeout."""
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise

    def stop(self, grace=5.0):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(timeout=5)
        self._out.close()
        self._err.close()
        return self.p.returncode

    def kill9(self):
        os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(timeout=5)

    def stdout(self):
        self._out.flush()
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        self._err.flush()
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_output(self, needle, timeout=10.0, stream="stdout"):
        """Waits until needle appears in stdout (or stderr) and returns the text so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stdout() if stream == "stdout" else self.stderr()
            if needle in text:
                return text
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        raise TimeoutError("%s: %r not seen in %s; stderr:\n%s" %
                           (self.name, needle, stream, self.stderr()[-4000:]))


class ProcTestCase(unittest.TestCase):
    """A TestCase whose processes started through self.start() are always stopped."""

    def setUp(self):
        self._procs = []

    def tearDown(self):
        for p in reversed(self._procs):
            p.stop()

    def start(self, args, **kw):
        p = Proc(args, **kw)
        self._procs.append(p)
        return p

    def run_to_end(self, args, timeout, **kw):
        """Runs a command to completion; returns (exit code, stdout, stderr)."""
        p = self.start(args, **kw)
        code = p.wait(timeout)
        return code, p.stdout(), p.stderr()


def http_get_json(url, timeout=5.0, method="GET"):
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode())
