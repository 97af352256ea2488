"""The container image (deploy/ecs/Dockerfile), built from the tree and run for real.

scripts/container.sh starts a private Docker daemon (vfs storage, no bridge: containers use the
host's network) with its data under ~/.cache/stampede/docker, makes the Debian 12 base image there
once (debootstrap + docker import), and builds the image. The agent container then runs with
environment configuration only, under a local coordinator on 127.0.0.1, against stampede-target on
127.0.0.1; and `stampede run --launcher ecs` runs through the ECS fake (fake_ecs.py) whose tasks are
containers of the image. Every container and the daemon are stopped at the end, on failure too.

Needs root (dockerd, debootstrap) and Debian's docker.io and debootstrap (container.sh installs
them when missing). A cold run (bootstrap + build) takes minutes; a warm one reuses the base image
and the build stage's package layer.
"""
import json
import os
import re
import subprocess
import tempfile
import time
import unittest
import uuid

import aws_env
import harness
import targets

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_ecs.py")
CONTAINER_SH = os.path.join(harness.SRC_DIR, "scripts", "container.sh")
DOCKER = os.environ.get("ST_DOCKER", "/usr/bin/docker")
IMAGE = "stampede:test"
PROGRAMS = ("stampede", "stampede-agent", "stampede-sink", "stampede-target")
TOKEN = "container-token-" + uuid.uuid4().hex[:8]

# Set by setUpModule: the daemon's DOCKER_HOST and pid, the build's report.
DAEMON = {}


def docker_env():
    return dict(os.environ, DOCKER_HOST=DAEMON["host"], DOCKER_BUILDKIT="0")


def docker(*args, timeout=60, check=True):
    """Runs the docker client against the private daemon; returns (code, stdout, stderr)."""
    p = subprocess.run([DOCKER] + [str(a) for a in args], env=docker_env(), timeout=timeout,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError("docker %s: exit %d\n%s" % (" ".join(map(str, args)), p.returncode,
                                                        p.stderr))
    return p.returncode, p.stdout, p.stderr


def containers():
    """Every container on the private daemon, running or not (all of them are this test's)."""
    return docker("ps", "-aq")[1].split()


def remove_containers():
    ids = containers()
    if ids:
        docker("rm", "-f", *ids, check=False)


def stop_daemon():
    if "pid" in DAEMON:
        remove_containers()
        subprocess.run(["bash", CONTAINER_SH, "stop", DAEMON.pop("pid")], timeout=60)


def setUpModule():
    unittest.addModuleCleanup(stop_daemon)
    p = subprocess.run(["bash", CONTAINER_SH, "start"], capture_output=True, text=True,
                       timeout=1000)
    if p.returncode != 0:
        raise RuntimeError("container.sh start: exit %d\n%s" % (p.returncode, p.stderr))
    m = re.fullmatch(r"DOCKER_HOST=(\S+) PID=(\d+)\n", p.stdout)
    if not m:
        raise RuntimeError("container.sh start printed %r" % p.stdout)
    DAEMON["host"], DAEMON["pid"] = m.group(1), m.group(2)
    remove_containers()
    started = time.monotonic()
    p = subprocess.run(["bash", CONTAINER_SH, "build", IMAGE], capture_output=True, text=True,
                       timeout=1500, env=docker_env())
    if p.returncode != 0:
        raise RuntimeError("container.sh build: exit %d\n%s" % (p.returncode, p.stderr))
    DAEMON["report"] = p.stdout
    # The build's time and the image's size, for the log of the suite.
    print("\n%simage built in %.0f s\n%s" % (p.stderr, time.monotonic() - started, p.stdout),
          flush=True)


class ContainerCase(harness.ProcTestCase):
    def run_in_image(self, entrypoint, *args):
        return docker("run", "--rm", "--network", "host", "--entrypoint", entrypoint, IMAGE,
                      *args, check=False)

    def assert_no_containers_left(self):
        deadline = time.monotonic() + 15
        while containers() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(docker("ps", "-a", "--format", "{{.Names}} {{.Status}}")[1], "")


class Image(ContainerCase):
    def test_the_report_names_the_size_and_what_the_layers_add(self):
        m = re.search(r"image %s: (\d+) MB; base \S+: (\d+) MB; added by the layers: (\d+) MB"
                      % IMAGE, DAEMON["report"])
        self.assertIsNotNone(m, DAEMON["report"])
        size, base, added = map(int, m.groups())
        self.assertEqual(size - base, added)
        self.assertGreater(added, 0)
        self.assertEqual(int(docker("image", "inspect", "-f", "{{.Size}}", IMAGE)[1]) // 1000000,
                         size)

    def test_entrypoint_is_the_agent_and_the_user_not_root(self):
        cfg = json.loads(docker("image", "inspect", "-f", "{{json .Config}}", IMAGE)[1])
        self.assertEqual(cfg["Entrypoint"], ["/usr/bin/stampede-agent"])
        self.assertIsNone(cfg["Cmd"])
        self.assertEqual(cfg["User"], "stampede:stampede")
        code, out, err = self.run_in_image("/usr/bin/id")
        self.assertEqual(code, 0, err)
        self.assertEqual(out.strip(), "uid=10001(stampede) gid=10001(stampede) groups=10001(stampede)")
        # Its home is its own: the coordinator's default spool (~/.local/state/stampede/spool)
        # can be made there.
        code, out, err = self.run_in_image("/bin/sh", "-c",
                                           'mkdir -p "$HOME/.local/state/stampede/spool" && '
                                           'echo "$HOME"')
        self.assertEqual(code, 0, err)
        self.assertEqual(out.strip(), "/home/stampede")

    def test_programs_run_and_nothing_to_build_with_is_left(self):
        for prog in ("stampede", "stampede-sink", "stampede-agent"):
            code, out, err = self.run_in_image("/usr/bin/" + prog, "--help")
            self.assertEqual(code, 0, err)
            self.assertIn("usage: " + prog, out + err)
        # What the host build installs is what the image holds: every program of bin/ that
        # cmake --install installs (stampede-launcher too once it exists).
        code, out, err = self.run_in_image("/bin/sh", "-c", "ls /usr/bin | grep '^stampede'")
        self.assertEqual(code, 0, err)
        held = set(out.split())
        self.assertTrue(set(PROGRAMS) <= held, held)
        if os.path.exists(os.path.join(harness.BIN_DIR, "stampede-launcher")):
            self.assertIn("stampede-launcher", held)
        code, out, err = self.run_in_image(
            "/bin/sh", "-c", "for c in gcc cc cc1 c99 ld make cmake; do command -v $c; done; "
            "find /usr/include -name '*.h' | head -n 3; "
            "dpkg-query -W -f '${Package} ${Status}\\n' | grep -E -- '-dev .*installed$' || true")
        self.assertEqual(code, 0, err)
        self.assertEqual(out, "", "a compiler, headers or -dev packages are in the image")
        code, out, err = self.run_in_image("/bin/sh", "-c", "test -s /etc/ssl/certs/ca-certificates.crt")
        self.assertEqual(code, 0, "no CA certificates in the image")


class AgentContainers(ContainerCase):
    def tearDown(self):
        super().tearDown()
        remove_containers()

    def test_two_agent_containers_under_a_local_coordinator_send_exactly_the_load(self):
        _, url = targets.start_target(self)
        summary = os.path.join(tempfile.mkdtemp(prefix="st-container-"), "summary.json")
        port = harness.free_port()
        coord = "tcp://127.0.0.1:%d" % port
        run = self.start([harness.binary("stampede"), "run", "--url", url + "/", "--rate", 50,
                          "--duration", 3, "--agents", 2, "--launcher", "external", "--listen",
                          coord, "--token", TOKEN, "--register-timeout", 60,
                          "--summary", summary])
        harness.wait_port(port)
        names = ["st-agent-%d-%s" % (i, uuid.uuid4().hex[:6]) for i in range(2)]
        for name in names:
            docker("run", "-d", "--name", name, "--network", "host",
                   "-e", "STAMPEDE_COORDINATOR=" + coord, "-e", "STAMPEDE_TOKEN=" + TOKEN,
                   "-e", "STAMPEDE_NAME=" + name, "-e", "STAMPEDE_THREADS=1", IMAGE)
        code = run.wait(90)
        self.assertEqual(code, 0, run.stderr())
        with open(summary) as f:
            s = json.load(f)
        self.assertEqual(s["requests"]["total"], 150)
        self.assertEqual(targets.target_stats(url)["requests"], 150)
        self.assertEqual(sorted(a["name"] for a in s["agents"]), sorted(names))
        for name in names:
            # Each agent exits 0 once the run is over, and its container with it.
            self.assertEqual(docker("wait", name, timeout=30)[1].strip(), "0",
                             docker("logs", name, check=False)[2])
        remove_containers()
        self.assert_no_containers_left()


class EcsContainers(ContainerCase):
    def test_ecs_run_through_the_fake_starts_and_stops_containers(self):
        _, url = targets.start_target(self)
        work = tempfile.mkdtemp(prefix="st-container-ecs-")
        summary = os.path.join(work, "summary.json")
        fake = self.start(["/usr/bin/python3", FAKE, "--agent-cmd", "/usr/bin/stampede-agent",
                           "--docker-image", IMAGE, "--provision-ms", "100", "--pending-ms", "100",
                           "--log-dir", work], env={"DOCKER_HOST": DAEMON["host"],
                                                    "ST_DOCKER": DOCKER}, name="fake-ecs")
        ecs_url = "http://127.0.0.1:%d" % int(fake.wait_output("fake-ecs ready", 20).split()[2])
        port = harness.free_port()
        listen = "tcp://127.0.0.1:%d" % port
        code, _, err = self.run_to_end(
            [harness.binary("stampede"), "run", "--launcher", "ecs", "--agents", 2, "--cluster",
             "stampede", "--task-definition", "stampede-agent:3", "--subnets", "subnet-1",
             "--security-groups", "sg-1", "--container", "agent", "--listen", listen,
             "--advertise", listen, "--endpoint-url", ecs_url, "--threads", 1, "--url", url + "/",
             "--rate", 40, "--duration", 3, "--summary", summary], 120, env=aws_env.aws_env())
        self.assertEqual(code, 0, err)
        with open(summary) as f:
            s = json.load(f)
        self.assertEqual(s["requests"]["total"], 120)
        self.assertEqual(targets.target_stats(url)["requests"], 120)
        st = harness.http_get_json(ecs_url + "/__fake/state")
        self.assertEqual(st["launched"], 2)
        arns = {t["arn"] for t in st["tasks"]}
        self.assertEqual({a["task"] for a in s["agents"]}, arns)
        # StopTask stopped each task's container (docker stop), and --rm removed it.
        stopped = {r["body"]["task"] for r in st["requests"] if r["op"] == "StopTask"}
        self.assertEqual(stopped, arns)
        self.assert_no_containers_left()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            tasks = harness.http_get_json(ecs_url + "/__fake/state")["tasks"]
            if all(t["last"] == "STOPPED" for t in tasks):
                break
            time.sleep(0.1)
        self.assertEqual([t["last"] for t in tasks], ["STOPPED", "STOPPED"])


if __name__ == "__main__":
    unittest.main()
