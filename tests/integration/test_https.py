"""HTTPS against Debian's nginx with TLS on loopback: what stampede-agent counts equals what nginx's
access log saw, --engine auto picks the fast engine for https://, certificates are verified by
default (errors.cert), and a server that does not speak TLS is errors.tls."""
import os
import subprocess
import tempfile
import unittest

import harness
import targets
from test_agent import AgentCase


class HttpsCase(AgentCase):
    def nginx_tls(self):
        """Starts nginx with TLS (a self-signed certificate made here) and an access log; returns
        (base URL, access log path)."""
        targets.need_nginx()
        d = tempfile.mkdtemp(prefix="st-https-")
        self.addCleanup(subprocess.call, ["rm", "-rf", d])
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", d + "/key.pem", "-out",
                        d + "/cert.pem", "-days", "2", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)
        log = os.path.join(d, "access.log")
        _, port = targets.run_nginx(
            self, d, listen="ssl", worker_connections=1024, http="access_log %s;" % log,
            server="ssl_certificate %s/cert.pem; ssl_certificate_key %s/key.pem;" % (d, d))
        self.cert = d + "/cert.pem"
        return "https://127.0.0.1:%d/" % port, log

    @staticmethod
    def logged(log):
        with open(log) as f:
            return sum(1 for _ in f)

    def test_counts_match_nginx_and_auto_picks_fast(self):
        url, log = self.nginx_tls()
        s = self.completed("--url", url, "--rate", 100, "--duration", 2, "--connections", 4,
                           "--insecure")
        self.assertEqual(s["engine"], "fast")
        self.assertEqual(s["requests"]["failed"], 0, s)
        self.assertEqual(s["requests"]["ok"], 200, s)
        self.assertEqual(self.logged(log), s["requests"]["total"])

    def test_certificate_verified_by_default(self):
        url, log = self.nginx_tls()
        for engine in ("fast", "curl"):
            code, s, err = self.agent("--url", url, "--rate", 20, "--duration", 1,
                                      "--connections", 2, engine=engine)
            self.assertEqual(code, 0, err)
            self.assertEqual(s["errors"]["cert"], s["requests"]["total"], (engine, s))
            # Each failed handshake costs a new connection: on a slow build (sanitizers, libcurl
            # loading the system's CAs for each) a due request may find none free and is dropped,
            # counted as such; every one of the 20 is accounted for.
            self.assertEqual(s["requests"]["sent"] + s["requests"]["dropped"], 20, (engine, s))
            self.assertGreater(s["requests"]["total"], 0, (engine, s))
            self.assertEqual(s["requests"]["ok"], 0, (engine, s))
        self.assertEqual(self.logged(log), 0)

    def test_plain_http_server_is_a_tls_error(self):
        from targets import start_target
        _, base = start_target(self)
        url = base.replace("http://", "https://")
        for engine in ("fast", "curl"):
            code, s, err = self.agent("--url", url, "--rate", 20, "--duration", 1,
                                      "--connections", 2, "--insecure", engine=engine)
            self.assertEqual(code, 0, err)
            self.assertEqual(s["errors"]["tls"], 20, (engine, s))

    def test_cacert_trusts_the_servers_certificate(self):
        url, log = self.nginx_tls()
        for engine in ("fast", "curl"):
            code, s, err = self.agent("--url", url, "--rate", 20, "--duration", 1,
                                      "--connections", 2, "--cacert", self.cert, engine=engine)
            self.assertEqual(code, 0, err)
            self.assertEqual((s["requests"]["ok"], s["requests"]["failed"]), (20, 0), (engine, s))
        self.assertEqual(self.logged(log), 40)

    def test_cacert_reaches_the_agents_of_a_distributed_run(self):
        """The coordinator reads the file; its agents get the certificates, not the path."""
        url, log = self.nginx_tls()
        d = tempfile.mkdtemp(prefix="st-cacert-")
        self.addCleanup(subprocess.call, ["rm", "-rf", d])
        with open(self.cert) as f:
            pem = f.read()
        with open(os.path.join(d, "ca.pem"), "w") as f:
            f.write(pem)
        plan = os.path.join(d, "plan.json")
        with open(plan, "w") as f:
            f.write('{"url": "%s", "rate": 40, "duration": 1, "cacert": "ca.pem"}' % url)
        summary = os.path.join(d, "summary.json")
        code, _, err = self.run_to_end([harness.binary("stampede"), "run", plan, "--agents", 2,
                                        "--headless", "--summary", summary], timeout=60)
        self.assertEqual(code, 0, err)
        import json
        with open(summary) as f:
            s = json.load(f)
        self.assertEqual((s["requests"]["ok"], s["errors"]["cert"]), (40, 0), s)
        self.assertEqual(self.logged(log), 40)
        # A file that is missing or holds no certificate is refused before anything is sent.
        with open(os.path.join(d, "not.pem"), "w") as f:
            f.write("hello\n")
        for arg, want in ((os.path.join(d, "missing.pem"), "does not exist"),
                          (os.path.join(d, "not.pem"), "holds no PEM certificate")):
            code, _, err = self.run_to_end([harness.binary("stampede"), "run", plan,
                                            "--cacert", arg, "--dry-run"], timeout=30)
            self.assertEqual(code, 2, err)
            self.assertIn("--cacert: file %s %s" % (arg, want), err)
        self.assertEqual(self.logged(log), 40)


if __name__ == "__main__":
    unittest.main()
