"""The control channel over tls+tcp://: a run's counts, the pinned certificate, refusals that do
not disturb a run, and secrets that never reach a log."""
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import unittest

import harness
import targets
import tcpproxy

TOKEN = "tls-integration-token-7f3a"
FINGERPRINT_RE = r"SHA-256 fingerprint ([0-9a-f]{64})"


class RecordingSocket:
    """A socket whose received bytes are also kept, for the proxy to pump through."""

    def __init__(self, sock, record):
        self.sock = sock
        self.record = record

    def fileno(self):
        return self.sock.fileno()

    def recv(self, n):
        data = self.sock.recv(n)
        self.record(data)
        return data

    def __getattr__(self, name):
        return getattr(self.sock, name)


class RecordingProxy(tcpproxy.TcpProxy):
    """The loopback proxy, keeping every byte that passes it in either direction."""

    def __init__(self, target_port):
        self.seen = bytearray()
        self.seen_lock = threading.Lock()
        super().__init__(target_port)

    def _record(self, data):
        with self.seen_lock:
            self.seen += data

    def _accept(self):
        super()._accept()
        with self.lock:
            if self.pairs and not isinstance(self.pairs[-1][0], RecordingSocket):
                c, u = self.pairs[-1]
                self.pairs[-1] = (RecordingSocket(c, self._record), RecordingSocket(u, self._record))

    def bytes_seen(self):
        with self.seen_lock:
            return bytes(self.seen)


class TlsCase(harness.ProcTestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="st-tls-")
        self.summary_path = os.path.join(self.dir, "summary.json")

    def stampede(self, *args):
        return self.start([harness.binary("stampede"), "run", "--summary", self.summary_path]
                          + [str(a) for a in args])

    def summary(self):
        with open(self.summary_path) as f:
            return json.load(f)

    def agent(self, coordinator, name, *extra, env=None):
        return self.start([harness.binary("stampede-agent"), "--coordinator", coordinator,
                           "--name", name, "--threads", 1] + list(extra), env=env)

    def external(self, url, *extra, rate=100, duration=3):
        """An external run over TLS on a free port; returns (proc, agents' URL, fingerprint)."""
        port = harness.free_port()
        p = self.stampede("--url", url + "/", "--rate", rate, "--duration", duration,
                          "--agents", 1, "--launcher", "external", "--listen",
                          "tls+tcp://127.0.0.1:%d" % port, "--token", TOKEN, *extra)
        text = p.wait_output("SHA-256 fingerprint", timeout=10, stream="stderr")
        return p, port, re.search(FINGERPRINT_RE, text).group(1)

    def assertNoSecrets(self, texts, secrets):
        for text in texts:
            for s in secrets:
                self.assertNotIn(s, text)


class TlsRuns(TlsCase):
    def test_local_agents_over_tls_count_what_plaintext_counts(self):
        _, url = targets.start_target(self)
        totals = []
        for listen in ["tls+tcp://127.0.0.1:0", "tcp://127.0.0.1:0"]:
            before = targets.target_stats(url)["requests"]
            p = self.stampede("--url", url + "/", "--rate", 200, "--duration", 2, "--agents", 2,
                              "--listen", listen, "--token", TOKEN)
            self.assertEqual(p.wait(40), 0, p.stderr())
            s = self.summary()
            self.assertEqual(s["status"], "completed")
            self.assertEqual(targets.target_stats(url)["requests"] - before,
                             s["requests"]["total"])
            totals.append(s["requests"]["total"])
            if listen.startswith("tls"):
                self.assertRegex(p.stderr(), FINGERPRINT_RE)
            else:
                self.assertNotIn("fingerprint", p.stderr())
            self.assertNoSecrets([p.stderr(), p.stdout(), json.dumps(s)], [TOKEN])
        self.assertEqual(totals, [400, 400])

    def test_the_token_is_not_on_the_wire_and_reconnects_stay_pinned(self):
        _, url = targets.start_target(self)
        for tls in [True, False]:
            port = harness.free_port()
            scheme = "tls+tcp" if tls else "tcp"
            before = targets.target_stats(url)["requests"]
            p = self.stampede("--url", url + "/", "--rate", 100, "--duration", 3, "--agents", 1,
                              "--launcher", "external", "--listen",
                              "%s://127.0.0.1:%d" % (scheme, port), "--token", TOKEN)
            harness.wait_port(port)
            proxy = RecordingProxy(port)
            self.addCleanup(proxy.close)
            extra = []
            if tls:
                fp = re.search(FINGERPRINT_RE, p.wait_output("fingerprint", stream="stderr"))
                extra = ["--tls-fingerprint", fp.group(1)]
            a = self.agent("%s://127.0.0.1:%d" % (scheme, proxy.port), "via-proxy", "--token",
                           TOKEN, *extra)
            p.wait_output("[    1s]", timeout=20)
            # Every connection is cut: the agent dials again, through TLS with the same pin.
            self.assertGreaterEqual(proxy.cut(), 1)
            self.assertEqual(p.wait(40), 0, p.stderr() + a.stderr())
            self.assertEqual(a.wait(20), 0, a.stderr())
            self.assertEqual(self.summary()["requests"]["total"], 300)
            self.assertEqual(targets.target_stats(url)["requests"] - before, 300)
            wire = proxy.bytes_seen()
            self.assertGreater(len(wire), 1000)
            # The control: in plaintext the token travels in clear; over TLS it does not.
            if tls:
                self.assertNotIn(TOKEN.encode(), wire)
                self.assertNotIn(b"via-proxy", wire)
            else:
                self.assertIn(TOKEN.encode(), wire)

    def test_wrong_fingerprint_and_wrong_token_are_refused_while_a_good_agent_runs(self):
        _, url = targets.start_target(self)
        p, port, fp = self.external(url, rate=100, duration=3)
        coord = "tls+tcp://127.0.0.1:%d" % port
        wrong = "%064x" % (int(fp, 16) ^ 1)
        bad = self.agent(coord, "impostor-check", "--token", TOKEN, "--tls-fingerprint", wrong)
        self.assertEqual(bad.wait(15), 3, bad.stderr())
        self.assertIn("refusing the coordinator", bad.stderr())
        self.assertIn(fp, bad.stderr())
        self.assertIn(wrong, bad.stderr())
        self.assertNotIn("registered", bad.stderr())
        # Right certificate, wrong token: the coordinator refuses it over TLS.
        liar = self.agent(coord, "liar", "--token", "not-the-token", "--tls-fingerprint", fp)
        self.assertEqual(liar.wait(15), 3, liar.stderr())
        self.assertIn("refused", liar.stderr())
        # The fingerprint from the environment, as colon-separated uppercase.
        colons = ":".join(fp[i:i + 2] for i in range(0, 64, 2)).upper()
        good = self.agent(coord, "good", "--token", TOKEN,
                          env={"STAMPEDE_TLS_FINGERPRINT": colons})
        self.assertEqual(p.wait(40), 0, p.stderr())
        self.assertEqual(good.wait(20), 0, good.stderr())
        s = self.summary()
        self.assertEqual([a["name"] for a in s["agents"]], ["good"])
        self.assertEqual(s["requests"]["total"], 300)
        self.assertEqual(targets.target_stats(url)["requests"], 300)
        self.assertIn("wrong token", p.stderr())
        self.assertNoSecrets([p.stderr(), p.stdout(), bad.stderr(), liar.stderr(),
                              good.stderr(), json.dumps(s)], [TOKEN])

    def test_plaintext_bytes_to_the_tls_port_do_not_disturb_a_run(self):
        _, url = targets.start_target(self)
        p, port, fp = self.external(url, rate=100, duration=3)
        coord = "tls+tcp://127.0.0.1:%d" % port
        good = self.agent(coord, "good", "--token", TOKEN, "--tls-fingerprint", fp)
        p.wait_output("[    1s]", timeout=20)
        for payload in [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00\x53\x50\x00\x00\x30\x00\x00",
                        TOKEN.encode()]:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(payload)
                s.settimeout(5)
                try:
                    while s.recv(4096):
                        pass
                except (ConnectionResetError, socket.timeout):
                    pass
        r = subprocess.run(["nngcat", "--req0", "--dial", "tcp://127.0.0.1:%d" % port, "--data",
                            "hello", "--recv-timeout", "1"], capture_output=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(p.wait(40), 0, p.stderr())
        self.assertEqual(good.wait(20), 0, good.stderr())
        s = self.summary()
        self.assertEqual(s["requests"]["total"], 300)
        self.assertEqual(targets.target_stats(url)["requests"], 300)
        self.assertFalse(any(a["lost"] for a in s["agents"]))
        self.assertRegex(p.stderr(), r"refused \d+ connections? to the TLS port that failed the "
                                     r"TLS handshake")
        self.assertEqual(s["malformed_messages"], 0)


class TlsGivenCertificate(TlsCase):
    def make_cert(self, name="coordinator"):
        cert = os.path.join(self.dir, name + ".pem")
        key = os.path.join(self.dir, name + ".key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=coordinator.example"],
                       check=True, capture_output=True)
        out = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-fingerprint",
                              "-sha256"], check=True, capture_output=True, text=True).stdout
        fp = out.strip().split("=", 1)[1].replace(":", "").lower()
        with open(key) as f:
            key_lines = [l for l in f.read().splitlines() if l and not l.startswith("-----")]
        return cert, key, fp, key_lines

    def test_given_certificate_is_pinned_and_its_key_never_shown(self):
        _, url = targets.start_target(self)
        cert, key, fp, key_lines = self.make_cert()
        self.assertTrue(key_lines)
        listen = "tls+tcp://127.0.0.1:0"
        dry = self.stampede("--url", url + "/", "--rate", 100, "--duration", 2, "--listen",
                            listen, "--tls-cert", cert, "--tls-key", key, "--token", TOKEN,
                            "--dry-run")
        self.assertEqual(dry.wait(20), 0, dry.stderr())
        p = self.stampede("--url", url + "/", "--rate", 100, "--duration", 2, "--agents", 2,
                          "--listen", listen, "--tls-cert", cert, "--tls-key", key,
                          "--token", TOKEN, "--log-level", "debug")
        self.assertEqual(p.wait(40), 0, p.stderr())
        # The fingerprint stampede pins is the one OpenSSL computes for the file.
        self.assertEqual(re.search(FINGERPRINT_RE, p.stderr()).group(1), fp)
        self.assertIn('"coordinator.example"', p.stderr())
        self.assertEqual(self.summary()["requests"]["total"], 200)
        self.assertEqual(targets.target_stats(url)["requests"], 200)
        self.assertNoSecrets([dry.stdout(), dry.stderr(), p.stdout(), p.stderr(),
                              json.dumps(self.summary())], key_lines + [TOKEN])

    def test_bad_certificates_and_flags_exit_2(self):
        _, url = targets.start_target(self)
        cert, key, _, key_lines = self.make_cert()
        other_cert, _, _, _ = self.make_cert("other")
        base = ["--url", url + "/", "--rate", 10, "--duration", 1, "--dry-run"]
        tls = ["--listen", "tls+tcp://127.0.0.1:0"]
        cases = [
            (["--tls-cert", cert, "--tls-key", key], "--tls-cert and --tls-key go together"),
            (tls + ["--tls-cert", cert], "--tls-cert and --tls-key go together"),
            (tls + ["--tls-cert", key, "--tls-key", key], "no PEM certificate"),
            (tls + ["--tls-cert", cert, "--tls-key", cert], "no unencrypted PEM private key"),
            (tls + ["--tls-cert", os.path.join(self.dir, "nope.pem"), "--tls-key", key],
             "nope.pem"),
            (["--listen", "tls+udp://127.0.0.1:1"], "--listen"),
        ]
        for args, needle in cases:
            p = self.stampede(*(base + args))
            self.assertEqual(p.wait(20), 2, (args, p.stderr()))
            self.assertIn(needle, p.stderr())
            self.assertNoSecrets([p.stderr(), p.stdout()], key_lines)
        # The coordinator refuses a key that is not its certificate's, before anything starts.
        p = self.stampede(*(base + tls + ["--tls-cert", other_cert, "--tls-key", key]))
        self.assertEqual(p.wait(20), 2, p.stderr())
        self.assertIn("is not the one of the certificate", p.stderr())
        self.assertNoSecrets([p.stderr()], key_lines)
        agent = harness.binary("stampede-agent")
        for args, needle in [
                (["--coordinator", "tls+tcp://127.0.0.1:1", "--token", TOKEN],
                 "needs the fingerprint"),
                (["--coordinator", "tls+tcp://127.0.0.1:1", "--token", TOKEN,
                  "--tls-fingerprint", "abcd"], "not a SHA-256 fingerprint"),
                (["--coordinator", "tcp://127.0.0.1:1", "--token", TOKEN, "--tls-fingerprint",
                  "ab" * 32], "goes with a tls+tcp:// coordinator")]:
            code, _, err = self.run_to_end([agent] + args, timeout=10)
            self.assertEqual(code, 2, err)
            self.assertIn(needle, err)
            self.assertNotIn(TOKEN, err)


if __name__ == "__main__":
    unittest.main()
