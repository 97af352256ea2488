"""stampede-target, the controllable HTTP/1.1 server the load generator's tests aim at.

Every test starts its own target on loopback and checks one behaviour from the outside: through
http.client, urllib, or a raw socket where the bytes on the wire are the point (pipelining, HEAD,
chunked bodies, malformed requests).
"""
import http.client
import json
import os
import re
import signal
import socket
import tempfile
import threading
import time
import unittest

from harness import ProcTestCase, binary, http_get_json

TARGET = "stampede-target"


def read_response(f, head=False):
    """Reads one HTTP/1.1 response from a binary file object: (status, headers dict, body bytes)."""
    line = f.readline()
    if not line:
        raise EOFError("connection closed before a status line")
    m = re.match(rb"HTTP/1\.1 (\d{3}) ([^\r\n]*)\r\n$", line)
    if not m:
        raise AssertionError("bad status line %r" % line)
    status = int(m.group(1))
    headers = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if not head and "content-length" in headers:
        n = int(headers["content-length"])
        body = f.read(n)
        if len(body) != n:
            raise EOFError("body cut short: %d of %d bytes" % (len(body), n))
    return status, headers, body


class TargetTestCase(ProcTestCase):
    proc = None

    def tearDown(self):
        # Every target must stop cleanly on SIGTERM: exit 0, and no sanitizer report (the ASan
        # build's leak check runs at that exit).
        p = self.proc
        if p is not None and p.p.poll() is None:
            p.p.send_signal(signal.SIGTERM)
            try:
                code = p.p.wait(timeout=10)
            except Exception:
                code = None
            err = p.stderr()
            super().tearDown()
            self.assertEqual(code, 0, "target did not exit cleanly; stderr:\n" + err[-4000:])
            self.assertNotIn("Sanitizer", err)
            self.assertNotIn("runtime error", err)
        else:
            super().tearDown()

    def start_target(self, *flags, host="127.0.0.1"):
        listen = "[%s]:0" % host if ":" in host else "%s:0" % host
        p = self.start([binary(TARGET), "--listen", listen] + [str(f) for f in flags])
        text = p.wait_output("\n", timeout=10)
        m = re.match(r"listening on (\S+):(\d+)\n", text)
        self.assertIsNotNone(m, "unexpected first line: %r" % text)
        self.proc = p
        self.host = host
        self.port = int(m.group(2))
        return p

    def url(self, path):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d%s" % (h, self.port, path)

    def stats(self):
        return http_get_json(self.url("/__target/stats"))

    def raw(self, timeout=5.0):
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        self.addCleanup(s.close)
        return s, s.makefile("rb")

    def get(self, path="/", method="GET", body=None, headers=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()


class TestStartup(TargetTestCase):
    def test_listening_line_and_port_file(self):
        port_file = os.path.join(tempfile.mkdtemp(prefix="st-target-"), "port")
        p = self.start_target("--port-file", port_file)
        with open(port_file) as f:
            self.assertEqual(f.read().strip(), str(self.port))
        self.assertNotEqual(self.port, 0)
        self.assertEqual(self.get()[0], 200)
        lines = p.stdout().splitlines()
        self.assertEqual(lines, ["listening on 127.0.0.1:%d" % self.port])

    def test_ipv6_listen(self):
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
                probe.bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback here")
        p = self.start_target(host="::1")
        self.assertIn("listening on [::1]:%d" % self.port, p.stdout())
        self.assertEqual(self.get(), (200, b"ok"))

    def test_help_exits_0(self):
        code, out, _ = self.run_to_end([binary(TARGET), "--help"], timeout=10)
        self.assertEqual(code, 0)
        for flag in ("--listen", "--latency-ms", "--status", "--close-every", "--stall-at"):
            self.assertIn(flag, out)

    def test_bad_flags_exit_2_naming_the_flag(self):
        cases = [
            (["--latency-ms", "abc"], "--latency-ms"),
            (["--latency-ms", "10-5"], "--latency-ms"),
            (["--status", "200:95,700:5"], "--status"),
            (["--status", "200:x"], "--status"),
            (["--listen", "127.0.0.1"], "--listen"),
            (["--body-bytes", "-1"], "--body-bytes"),
            (["--close-every", "0"], "--close-every"),
            (["--stall-at", "1"], "--stall-ms"),
            (["--bogus"], "--bogus"),
            (["--seed"], "--seed"),
        ]
        for args, flag in cases:
            with self.subTest(args=args):
                code, out, err = self.run_to_end([binary(TARGET)] + args, timeout=10)
                self.assertEqual(code, 2)
                self.assertIn(flag, err)
                self.assertNotIn("listening on", out)

    def test_sigterm_exits_0_with_final_stats(self):
        p = self.start_target()
        for _ in range(3):
            self.assertEqual(self.get()[0], 200)
        os.kill(p.pid, signal.SIGTERM)
        self.assertEqual(p.wait(10), 0)
        lines = p.stdout().strip().splitlines()
        self.assertEqual(len(lines), 2)
        final = json.loads(lines[-1])
        self.assertEqual(final["requests"], 3)
        self.assertEqual(final["responses"], 3)
        self.assertEqual(final["by_status"], {"200": 3})
        self.assertEqual(final["connections_open"], 0)

    def test_sigint_exits_0(self):
        p = self.start_target()
        s, _ = self.raw()
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # left half-sent on purpose
        time.sleep(0.1)
        os.kill(p.pid, signal.SIGINT)
        self.assertEqual(p.wait(10), 0)
        self.assertEqual(json.loads(p.stdout().strip().splitlines()[-1])["requests"], 0)


class TestHttp(TargetTestCase):
    def test_keep_alive_several_requests_on_one_connection(self):
        self.start_target("--body-bytes", 100)
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        self.addCleanup(c.close)
        first_sock = None
        for i in range(10):
            c.request("GET", "/item/%d" % i)
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(len(r.read()), 100)
            self.assertFalse(r.will_close)
            if first_sock is None:
                first_sock = c.sock
            self.assertIs(c.sock, first_sock)
        st = self.stats()
        self.assertEqual(st["requests"], 10)
        self.assertEqual(st["connections_accepted"], 1)  # the stats query is not counted
        self.assertEqual(st["connections_open"], 1)

    def test_head_has_headers_only(self):
        self.start_target("--body-bytes", 50)
        s, f = self.raw()
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(f, head=True)
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-length"], "50")
        # The next bytes on the wire must be the GET's status line, not a body.
        status, headers, body = read_response(f)
        self.assertEqual((status, len(body)), (200, 50))

    def test_chunked_request_body_is_consumed(self):
        self.start_target()
        s, f = self.raw()
        req = (b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        nxt = b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n"
        s.sendall(req + nxt)
        self.assertEqual(read_response(f)[0], 200)
        self.assertEqual(read_response(f)[0], 200)
        st = self.stats()
        self.assertEqual(st["requests"], 2)
        self.assertEqual(st["rejected"], 0)
        self.assertEqual(st["bytes_in"], len(req) + len(nxt))

    def test_content_length_body_and_expect_continue(self):
        self.start_target()
        s, f = self.raw()
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        self.assertEqual(f.readline(), b"HTTP/1.1 100 Continue\r\n")
        self.assertEqual(f.readline(), b"\r\n")
        s.sendall(b"abcdGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(read_response(f)[0], 200)
        self.assertEqual(read_response(f)[0], 200)
        self.assertEqual(self.stats()["requests"], 2)

    def test_pipelined_requests_answered_in_order(self):
        # Random latencies finish out of order; the statuses cycle 200, 201, 202 in arrival order,
        # so any reordering on the wire shows.
        self.start_target("--latency-ms", "0-60", "--seed", 7, "--status", "200:1,201:1,202:1")
        s, f = self.raw()
        n = 30
        s.sendall(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(n)))
        got = [read_response(f)[0] for _ in range(n)]
        self.assertEqual(got, [200, 201, 202] * (n // 3))

    def test_http10_closes_and_connection_close_closes(self):
        self.start_target()
        for req in (b"GET / HTTP/1.0\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
            with self.subTest(req=req):
                s, f = self.raw()
                s.sendall(req)
                status, headers, body = read_response(f)
                self.assertEqual((status, body), (200, b"ok"))
                self.assertEqual(headers.get("connection"), "close")
                self.assertEqual(f.read(), b"")  # EOF: the server closed

    def test_http10_keep_alive_stays_open(self):
        self.start_target()
        s, f = self.raw()
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, _ = read_response(f)
            self.assertEqual(status, 200)
            self.assertEqual(headers.get("connection"), "keep-alive")

    def test_malformed_request_gets_400_and_close(self):
        self.start_target()
        s, f = self.raw()
        s.sendall(b"GARBAGE\x01 / HTTP/1.1\r\n\r\n")
        status, headers, _ = read_response(f)
        self.assertEqual(status, 400)
        self.assertEqual(headers.get("connection"), "close")
        self.assertEqual(f.read(), b"")
        st = self.stats()
        self.assertEqual((st["requests"], st["responses"], st["rejected"]), (0, 0, 1))

    def test_oversized_headers_431_and_body_413(self):
        self.start_target("--max-body-bytes", 1000)
        s, f = self.raw()
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n")
        self.assertEqual(read_response(f)[0], 431)
        s, f = self.raw()
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        self.assertEqual(read_response(f)[0], 413)
        s, f = self.raw()
        chunk = b"%x\r\n%s\r\n" % (600, b"b" * 600)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2)
        self.assertEqual(read_response(f)[0], 413)
        # Just below the limit is fine.
        self.assertEqual(self.get("/", "POST", body=b"c" * 1000)[0], 200)
        st = self.stats()
        self.assertEqual((st["requests"], st["rejected"]), (1, 3))


class TestControl(TargetTestCase):
    def test_status_mix_counts_exact(self):
        self.start_target("--status", "200:95,500:5")
        seen = []
        conns = [http.client.HTTPConnection("127.0.0.1", self.port, timeout=5) for _ in range(2)]
        for c in conns:
            self.addCleanup(c.close)
        for i in range(500):
            c = conns[i % 2]
            c.request("GET", "/")
            r = c.getresponse()
            r.read()
            seen.append(r.status)
        self.assertEqual(seen.count(200), 475)
        self.assertEqual(seen.count(500), 25)
        # Interleaved, not bunched: 500s are about 20 answers apart.
        where = [i for i, s in enumerate(seen) if s == 500]
        self.assertGreaterEqual(min(b - a for a, b in zip(where, where[1:])), 15)
        st = self.stats()
        self.assertEqual(st["requests"], 500)
        self.assertEqual(st["responses"], 500)
        self.assertEqual(st["by_status"], {"200": 475, "500": 25})
        self.assertEqual(st["connections_accepted"], 2)

    def test_reason_phrases(self):
        self.start_target("--status", "503:1,404:1")
        s, f = self.raw()
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2 +
                  b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        wire = f.read()
        self.assertEqual(re.findall(rb"HTTP/1\.1 [^\r]*", wire),
                         [b"HTTP/1.1 503 Service Unavailable", b"HTTP/1.1 404 Not Found",
                          b"HTTP/1.1 503 Service Unavailable"])

    def test_latency_delays_answers_but_not_control(self):
        self.start_target("--latency-ms", 400)
        t0 = time.monotonic()
        self.assertEqual(self.get()[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        t0 = time.monotonic()
        self.stats()
        self.assertLess(time.monotonic() - t0, 0.3)

    def test_latency_range(self):
        self.start_target("--latency-ms", "80-120", "--seed", 3)
        for _ in range(3):
            t0 = time.monotonic()
            self.assertEqual(self.get()[0], 200)
            self.assertGreaterEqual(time.monotonic() - t0, 0.08)

    def test_close_every_closes_after_n_answers(self):
        self.start_target("--close-every", 3)
        s, f = self.raw()
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 5)
        answers = [read_response(f) for _ in range(3)]
        self.assertEqual([a[0] for a in answers], [200, 200, 200])
        self.assertNotIn("connection", answers[0][1])
        self.assertEqual(answers[2][1].get("connection"), "close")
        self.assertEqual(f.read(), b"")  # closed; the 4th and 5th were never read
        self.assertEqual(self.stats()["requests"], 3)
        # Sequential clients reconnect: 7 requests need 3 connections.
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        self.addCleanup(c.close)
        for _ in range(7):
            c.request("GET", "/")
            c.getresponse().read()
        self.assertEqual(self.stats()["connections_accepted"], 1 + 3)

    def test_stall_endpoint_holds_then_answers(self):
        self.start_target()
        status, body = self.get("/__target/stall?ms=1000", "POST")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {"stall_ms": 1000})
        t0 = time.monotonic()
        result = {}

        def fetch():
            result["answer"] = self.get("/held")
            result["elapsed"] = time.monotonic() - t0

        th = threading.Thread(target=fetch)
        th.start()
        time.sleep(0.25)
        # Held: received and counted, not yet answered; control still answers at once.
        q0 = time.monotonic()
        st = self.stats()
        self.assertLess(time.monotonic() - q0, 0.5)
        self.assertEqual((st["requests"], st["responses"]), (1, 0))
        th.join(5)
        self.assertFalse(th.is_alive())
        self.assertEqual(result["answer"], (200, b"ok"))
        self.assertGreaterEqual(result["elapsed"], 0.8)
        self.assertLess(result["elapsed"], 3.0)
        self.assertEqual(self.stats()["responses"], 1)
        t0 = time.monotonic()
        self.get()
        self.assertLess(time.monotonic() - t0, 0.5)  # the stall is over

    def test_stall_with_latency_adds_up(self):
        self.start_target("--latency-ms", 200)
        self.get("/__target/stall?ms=300", "POST")
        t0 = time.monotonic()
        self.assertEqual(self.get()[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)

    def test_scheduled_stall(self):
        self.start_target("--stall-at", 1.0, "--stall-ms", 1000)
        started = time.monotonic()
        self.assertEqual(self.get()[0], 200)
        self.assertLess(time.monotonic() - started, 0.6)  # before the stall: not held
        time.sleep(max(0, started + 1.2 - time.monotonic()))
        t0 = time.monotonic()
        self.assertEqual(self.get()[0], 200)  # inside it: held until about 2.0 s
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)

    def test_bad_control_requests(self):
        self.start_target()
        for method, path, want in (("POST", "/__target/stall", 400),
                                   ("POST", "/__target/stall?ms=abc", 400),
                                   ("GET", "/__target/stall?ms=5", 405),
                                   ("POST", "/__target/stats", 405),
                                   ("GET", "/__target/nothing", 404)):
            with self.subTest(path=path):
                self.assertEqual(self.get(path, method)[0], want)
        st = self.stats()
        self.assertEqual((st["requests"], st["responses"], st["by_status"]), (0, 0, {}))

    def test_reset_zeroes_counters(self):
        self.start_target("--status", "200:1,500:1")
        for _ in range(5):
            self.get()
        self.assertEqual(self.stats()["requests"], 5)
        status, body = self.get("/__target/reset", "POST")
        self.assertEqual(status, 200)
        st = self.stats()
        for key in ("requests", "responses", "connections_accepted", "bytes_in", "bytes_out",
                    "rejected"):
            self.assertEqual(st[key], 0, key)
        self.assertEqual(st["by_status"], {})
        # The mix starts again from its beginning too.
        self.assertEqual(self.get()[0], 200)
        self.assertEqual(self.stats()["by_status"], {"200": 1})

    def test_client_disconnects_mid_request_and_while_delayed(self):
        p = self.start_target("--latency-ms", 300)
        s1 = socket.create_connection(("127.0.0.1", self.port))
        s1.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s2 = socket.create_connection(("127.0.0.1", self.port))
        s2.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        time.sleep(0.05)
        s1.close()
        s2.close()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            st = self.stats()
            if st["connections_open"] == 0:
                break
            time.sleep(0.05)
        self.assertEqual(st["connections_open"], 0)
        self.assertEqual(st["requests"], 1)
        self.assertEqual(self.get()[0], 200)  # still serving
        self.assertIsNone(p.p.poll())


if __name__ == "__main__":
    unittest.main()
