"""Starting the project's own target server (stampede-target) and nginx for integration tests."""
import os
import re
import tempfile
import textwrap

import harness


def start_target(case, *args):
    """Starts stampede-target on 127.0.0.1 with a free port; returns (proc, base_url)."""
    p = case.start([harness.binary("stampede-target"), "--listen", "127.0.0.1:0"] + list(args))
    text = p.wait_output("listening on", timeout=10)
    m = re.search(r"listening on (\S+):(\d+)", text)
    port = int(m.group(2))
    return p, "http://127.0.0.1:%d" % port


def target_stats(base_url):
    return harness.http_get_json(base_url + "/__target/stats")


def target_stall(base_url, ms):
    return harness.http_get_json("%s/__target/stall?ms=%d" % (base_url, ms), method="POST")


NGINX = "/usr/sbin/nginx"


def need_nginx():
    """Skips the test when Debian's nginx is not installed."""
    import unittest
    if not os.access(NGINX, os.X_OK):
        raise unittest.SkipTest("nginx is not installed")


def run_nginx(case, d, listen="", server="", http="", top="", worker_connections=4096):
    """Starts nginx from a configuration written in directory d (its pid file, error log and
    temporary files there too): one server on a free loopback port answering 200 "ok" at /, with
    `listen` after the address of its listen line ("ssl", "http2"), `server` lines in its block,
    `http` lines in the http block and `top` lines first. Returns (proc, port) once it listens;
    skips the test when nginx is not installed."""
    need_nginx()
    port = harness.free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(textwrap.dedent("""\
            %(top)s
            worker_processes 1;
            daemon off;
            pid %(d)s/nginx.pid;
            error_log %(d)s/error.log;
            events { worker_connections %(wc)d; }
            http {
              client_body_temp_path %(d)s; proxy_temp_path %(d)s; fastcgi_temp_path %(d)s;
              uwsgi_temp_path %(d)s; scgi_temp_path %(d)s;
              %(http)s
              server {
                listen 127.0.0.1:%(port)d %(listen)s;
                location / { return 200 "ok"; }
                %(server)s
              }
            }
            """) % {"d": d, "port": port, "listen": listen, "server": server, "http": http,
                    "top": top, "wc": worker_connections})
    p = case.start([NGINX, "-c", conf, "-e", os.path.join(d, "error.log")])
    harness.wait_port(port)
    return p, port


def start_nginx(case, extra_server=""):
    """Starts Debian's nginx on a free loopback port with a tiny static response, extra_server
    after the address of its listen line; returns (proc, base_url). Skips the test when nginx is
    not installed."""
    need_nginx()
    d = tempfile.mkdtemp(prefix="st-nginx-")
    p, port = run_nginx(case, d, listen=extra_server,
                        http="access_log off; keepalive_requests 10000000;")
    return p, "http://127.0.0.1:%d" % port
