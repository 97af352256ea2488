"""The h2 engine (agent/engine_h2.c) against Debian's nginx with HTTP/2 over cleartext (h2c with
prior knowledge) and over TLS (ALPN h2) on loopback: the connections nginx logged are exactly those asked for, nginx
served as many requests as the summary counts, several streams share one connection at once, and
GOAWAY (nginx's keepalive_requests) costs no request."""
import json
import os
import tempfile
import unittest

import harness
import targets


class H2Nginx(harness.ProcTestCase):
    def start_nginx(self, keepalive_requests=1000000, delay=False, tls=False, h2=True):
        targets.need_nginx()
        d = tempfile.mkdtemp(prefix="st-h2-")
        listen = "http2" if h2 else ""
        server = ""
        if tls:
            # A self-signed certificate for 127.0.0.1, made now.
            crt, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
            code, _, err = self.run_to_end(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                 "-out", crt, "-days", "1", "-subj", "/CN=127.0.0.1",
                 "-addext", "subjectAltName=IP:127.0.0.1"], timeout=30)
            self.assertEqual(code, 0, err)
            listen = "ssl " + listen
            server = "ssl_certificate %s; ssl_certificate_key %s;" % (crt, key)
        self.log = os.path.join(d, "access.log")
        # $connection numbers nginx's connections. The echo module (Debian's
        # libnginx-mod-http-echo) holds each response of /slow for 50 ms so that streams overlap.
        mods = ""
        echo = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
        if delay:
            if not os.path.exists(echo):
                raise unittest.SkipTest("nginx's echo module is not installed")
            mods = "load_module %s;" % echo
            server += ' location /slow { echo_sleep 0.05; echo "ok"; }'
        _, port = targets.run_nginx(
            self, d, listen=listen, server=server, top=mods,
            http="log_format c '$connection $status $server_protocol $msec'; access_log %s c; "
                 "keepalive_requests %d;" % (self.log, keepalive_requests))
        return "%s://127.0.0.1:%d" % ("https" if tls else "http", port)

    def agent(self, url, *args):
        cmd = [harness.binary("stampede-agent"), "--url", url, "--http2", "--json"]
        code, out, err = self.run_to_end(cmd + [str(a) for a in args], timeout=60)
        self.assertEqual(code, 0, err)
        return json.loads(out), err

    def logged(self):
        with open(self.log) as f:
            return [line.split() for line in f if line.strip()]

    def test_connections_as_asked_and_counts_agree(self):
        base = self.start_nginx()
        for conns, streams in ((20, 1), (1, 50), (4, 8)):
            open(self.log, "w").close()
            s, err = self.agent(base + "/", "--rate", 0, "--duration", 1, "--connections", conns,
                                "--streams", streams, "--threads", 2 if conns > 1 else 1)
            self.assertIn("engine h2", err)
            self.assertEqual(s["engine"], "h2")
            self.assertEqual(s["streams"], streams)
            lines = self.logged()
            self.assertEqual(s["requests"]["failed"], 0)
            self.assertGreater(s["requests"]["ok"], 1000)
            self.assertEqual(s["requests"]["ok"], len(lines), (conns, streams))
            self.assertTrue(all(l[1] == "200" and l[2] == "HTTP/2.0" for l in lines))
            self.assertEqual(len({l[0] for l in lines}), conns, (conns, streams))

    def test_streams_run_concurrently(self):
        base = self.start_nginx(delay=True)
        # 1 connection, 10 streams, each answer held 50 ms: about 200 a second, where one stream
        # at a time would make 20.
        s, _ = self.agent(base + "/slow", "--rate", 0, "--duration", 1, "--connections", 1,
                          "--streams", 10, "--threads", 1)
        lines = self.logged()
        self.assertEqual(s["requests"]["ok"], len(lines))
        self.assertEqual(len({l[0] for l in lines}), 1)
        self.assertGreater(s["requests"]["ok"], 120)
        self.assertLess(s["requests"]["ok"], 260)

    def test_goaway_costs_no_request(self):
        # nginx sends GOAWAY after 100 requests on a connection: the engine reopens it and sends
        # again what nginx did not process.
        base = self.start_nginx(keepalive_requests=100)
        s, _ = self.agent(base + "/", "--rate", 0, "--duration", 1, "--connections", 2,
                          "--streams", 10, "--threads", 1)
        lines = self.logged()
        self.assertEqual(s["requests"]["failed"], 0)
        self.assertEqual(s["requests"]["ok"], len(lines))
        per_conn = {}
        for l in lines:
            per_conn[l[0]] = per_conn.get(l[0], 0) + 1
        self.assertGreater(len(per_conn), 10)
        self.assertLessEqual(max(per_conn.values()), 100)

    def test_open_loop_exact(self):
        base = self.start_nginx()
        s, _ = self.agent(base + "/", "--rate", 400, "--duration", 1, "--connections", 3,
                          "--streams", 4, "--threads", 1)
        lines = self.logged()
        self.assertEqual(s["requests"]["ok"], 400)
        self.assertEqual(len(lines), 400)
        self.assertLessEqual(len({l[0] for l in lines}), 3)

    def test_tls_connections_as_asked_and_counts_agree(self):
        base = self.start_nginx(tls=True)
        s, err = self.agent(base + "/", "--insecure", "--rate", 0, "--duration", 1,
                            "--connections", 3, "--streams", 4, "--threads", 1)
        self.assertIn("engine h2", err)
        lines = self.logged()
        self.assertEqual(s["requests"]["failed"], 0)
        self.assertGreater(s["requests"]["ok"], 1000)
        self.assertEqual(s["requests"]["ok"], len(lines))
        self.assertTrue(all(l[2] == "HTTP/2.0" for l in lines))
        self.assertEqual(len({l[0] for l in lines}), 3)

    def test_tls_goaway_costs_no_request(self):
        base = self.start_nginx(tls=True, keepalive_requests=100)
        s, _ = self.agent(base + "/", "--insecure", "--rate", 0, "--duration", 1,
                          "--connections", 2, "--streams", 10, "--threads", 1)
        lines = self.logged()
        self.assertEqual(s["requests"]["failed"], 0)
        self.assertEqual(s["requests"]["ok"], len(lines))
        self.assertGreater(len({l[0] for l in lines}), 10)

    def test_tls_unverified_certificate_fails(self):
        # Verification is on by default: a self-signed certificate fails every request, and
        # nginx serves none.
        base = self.start_nginx(tls=True)
        s, _ = self.agent(base + "/", "--rate", 50, "--duration", 1, "--connections", 2,
                          "--threads", 1)
        self.assertEqual(s["requests"]["ok"], 0)
        self.assertEqual(s["requests"]["failed"], 50)
        self.assertEqual(self.logged(), [])

    def test_tls_server_without_h2_fails(self):
        # A server that does not choose h2 by ALPN: the handshake fails, nothing is sent.
        base = self.start_nginx(tls=True, h2=False)
        s, _ = self.agent(base + "/", "--insecure", "--rate", 50, "--duration", 1,
                          "--connections", 2, "--threads", 1)
        self.assertEqual(s["requests"]["ok"], 0)
        self.assertEqual(s["requests"]["failed"], 50)
        self.assertEqual(self.logged(), [])

    def test_forbidden_header_refused(self):
        base = self.start_nginx()
        d = tempfile.mkdtemp(prefix="st-h2-plan-")
        plan = os.path.join(d, "plan.json")
        with open(plan, "w") as f:
            json.dump({"requests": [{"url": base + "/", "headers": {"Connection": "close"}}],
                       "rate": 10, "duration": 1, "http2": True}, f)
        code, out, err = self.run_to_end([harness.binary("stampede-agent"), "--plan", plan],
                                         timeout=30)
        self.assertEqual(code, 2, err)
        self.assertIn("requests[0].headers[0]: Connection is a connection header", err)
        # The coordinator refuses it where it reads the plan, a dry run included.
        code, out, err = self.run_to_end([harness.binary("stampede"), "run", plan,
                                          "--dry-run"], timeout=30)
        self.assertEqual(code, 2, err)
        self.assertIn("requests[0].headers[0]: Connection is a connection header", err)
        self.assertEqual(self.logged(), [])


if __name__ == "__main__":
    unittest.main()
