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


def start_nginx(case, extra_server=""):
    """Starts Debian's nginx on a free loopback port with a tiny static response; returns
    (proc, base_url). Skips the test when nginx is not installed."""
    import unittest
    nginx = "/usr/sbin/nginx"
    if not os.access(nginx, os.X_OK):
        raise unittest.SkipTest("nginx is not installed")
    port = harness.free_port()
    d = tempfile.mkdtemp(prefix="st-nginx-")
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(textwrap.dedent("""\
            worker_processes 1;
            daemon off;
            pid %(d)s/nginx.pid;
            error_log %(d)s/error.log;
            events { worker_connections 4096; }
            http {
              access_log off;
              client_body_temp_path %(d)s; proxy_temp_path %(d)s; fastcgi_temp_path %(d)s;
              uwsgi_temp_path %(d)s; scgi_temp_path %(d)s;
              keepalive_requests 10000000;
              server {
                listen 127.0.0.1:%(port)d %(extra)s;
                location / { return 200 "ok"; }
              }
            }
            """) % {"d": d, "port": port, "extra": extra_server})
    p = case.start([nginx, "-c", conf, "-e", os.path.join(d, "error.log")])
    harness.wait_port(port)
    return p, "http://127.0.0.1:%d" % port
