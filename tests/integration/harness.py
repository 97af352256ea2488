"""Process harness for stampede's integration tests.

Integration tests start real processes on loopback only (127.0.0.1 / ::1), with bounded durations
and request counts, and stop everything they start, even when a test fails. ctest runs each test
file with ST_BIN_DIR pointing at the build's bin/ folder.
"""
import fnmatch
import json
import os
import signal
import socket
import subprocess
import sys
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


# Ports for the tests' servers come from a pool below the kernel's ephemeral range, so that no
# outgoing connection (a load's, anyone's) takes one between free_port() and the server's bind.
# Tests may run two at a time (ctest -j2): the pool is cut into blocks, and each test process
# holds one block for its lifetime by an flock on PORT_DIR/block-N (released by the kernel when
# the process ends, however it ends), so no two processes hand out the same port.
PORT_DIR = os.path.join(tempfile.gettempdir(), "stampede-test-ports-%d" % os.getuid())
PORT_BLOCKS = 64
_port_block = None  # [lock file, first port, ports in the block, next index]


def _port_pool():
    """(first, last) of the pool: below the ephemeral range, or above it if too little is below."""
    path = "/proc/sys/net/ipv4/ip_local_port_range"
    try:
        with open(path) as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    need = PORT_BLOCKS * 32
    if low - 20000 >= need:
        return 20000, low - 1
    if 65535 - high >= need:
        return high + 1, 65535
    raise RuntimeError("%s is %d-%d: fewer than %d ports are left outside it for the tests' "
                       "servers" % (path, low, high, need))


def _my_port_block():
    global _port_block
    if _port_block is None:
        import fcntl
        first, last = _port_pool()
        size = (last - first + 1) // PORT_BLOCKS
        os.makedirs(PORT_DIR, exist_ok=True)
        for n in range(PORT_BLOCKS):
            f = open(os.path.join(PORT_DIR, "block-%d" % n), "a")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            _port_block = [f, first + n * size, size, 0]
            break
        else:
            raise RuntimeError("all %d port blocks in %s are held by running tests" %
                               (PORT_BLOCKS, PORT_DIR))
    return _port_block


def free_port(host="127.0.0.1"):
    """A port of this process's block that nothing is bound to on host right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    block = _my_port_block()
    _, first, size, _ = block
    for _ in range(size):
        port = first + block[3] % size
        block[3] += 1
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port on %s in %d-%d" % (host, first, first + size - 1))


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


# A file's tests in parts, one ctest entry each (tests/CMakeLists.txt, st_integration_test):
#   python3 harness.py MODULE [--part NAME=PATTERN[,PATTERN]...]... --run NAME|rest [--list]
# A pattern is Class, Class.test_method or an fnmatch pattern of either. Every entry of the file
# is given every part, checks the whole split and runs its own part; "rest" runs the tests that no
# part names, so that a test added to the file runs without a change to the split. --list prints
# the part's tests instead of running them. Exit codes: 0
# passed, 1 a test failed, 2 a bad split (a pattern naming no test, a test in two parts, an
# unknown part), 77 (ctest's skip) when nothing is left for "rest".
SPLIT_SKIPPED = 77


class _TimedResult(unittest.TextTestResult):
    """Records each test's wall time, for the slowest-first list after the run."""

    def startTest(self, test):
        self._t0 = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self.times = getattr(self, "times", [])
        self.times.append((time.monotonic() - self._t0, test.id()))


def _flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _flatten(t)
        else:
            yield t


def _split_error(module, text):
    print("harness: %s: %s" % (module, text), file=sys.stderr)
    return 2


def run_part(argv):
    """Runs one part of a test file's split (see above); returns the exit code."""
    module, parts, run, listing = None, [], None, False
    args = list(argv)
    while args:
        a = args.pop(0)
        if a in ("--part", "--run") and not args:
            return _split_error(module, "%s needs a value" % a)
        if a == "--part":
            name, sep, pats = args.pop(0).partition("=")
            if not sep or not name or not pats or name == "rest" or "" in pats.split(","):
                return _split_error(module, "--part takes NAME=PATTERN[,PATTERN]... (NAME not "
                                    "\"rest\")")
            if name in (n for n, _ in parts):
                return _split_error(module, "part %s is given twice" % name)
            parts.append((name, pats.split(",")))
        elif a == "--run":
            run = args.pop(0)
        elif a == "--list":
            listing = True
        elif module is None and not a.startswith("-"):
            module = a
        else:
            return _split_error(module, "unknown argument %r" % a)
    if module is None or run is None:
        return _split_error(module, "usage: harness.py MODULE [--part NAME=PATTERNS]... "
                            "--run NAME|rest [--list]")
    if run != "rest" and run not in (n for n, _ in parts):
        return _split_error(module, "--run %s: no such part" % run)
    tests = list(_flatten(unittest.defaultTestLoader.loadTestsFromName(module)))
    owner = {}
    for name, pats in parts:
        for pat in pats:
            hits = [t for t in tests if fnmatch.fnmatchcase(t.id(), module + "." + pat) or
                    fnmatch.fnmatchcase(t.id(), module + "." + pat + ".*")]
            if not hits:
                return _split_error(module, "part %s: %s names no test" % (name, pat))
            for t in hits:
                if owner.get(t.id(), name) != name:
                    return _split_error(module, "%s is in parts %s and %s" %
                                        (t.id(), owner[t.id()], name))
                owner[t.id()] = name
    chosen = [t for t in tests if owner.get(t.id(), "rest") == run]
    if not chosen:
        print("harness: %s: every test is in a named part: nothing left for rest" % module)
        return SPLIT_SKIPPED
    if listing:
        print("\n".join(t.id() for t in chosen))
        return 0
    runner = unittest.TextTestRunner(verbosity=2, resultclass=_TimedResult)
    result = runner.run(unittest.TestSuite(chosen))
    for secs, name in sorted(getattr(result, "times", []), reverse=True):
        print("%7.2fs  %s" % (secs, name), file=sys.stderr)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    # The test modules import harness by name: run the split from that module, not this copy.
    import harness as _named
    sys.exit(_named.run_part(sys.argv[1:]))
