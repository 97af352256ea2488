"""stampede run's thresholds, their exit code and the JUnit file, against stampede-target."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import harness
import targets

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "junit.xsd")
EXIT_USAGE = 2
EXIT_THRESHOLDS = 11


class ThresholdCase(harness.ProcTestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="st-thresholds-")
        self.summary_path = os.path.join(self.dir, "summary.json")
        self.junit_path = os.path.join(self.dir, "junit.xml")

    def tearDown(self):
        super().tearDown()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start_run(self, *args):
        return self.start([harness.binary("stampede"), "run", "--summary", self.summary_path,
                           "--junit", self.junit_path] + [str(a) for a in args])

    def summary(self):
        with open(self.summary_path) as f:
            return json.load(f)

    def plan(self, obj):
        path = os.path.join(self.dir, "plan.json")
        with open(path, "w") as f:
            json.dump(obj, f)
        return path

    def assert_junit_valid(self):
        if not shutil.which("xmllint"):
            self.fail("xmllint is missing: scripts/deps.sh installs libxml2-utils")
        r = subprocess.run(["xmllint", "--noout", "--schema", SCHEMA, self.junit_path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.junit_path) as f:
            return f.read()

    def test_passing_run_exits_0(self):
        _, url = targets.start_target(self, "--status", "200:99,500:1")
        plan = self.plan({"url": url + "/", "rate": 200, "duration": 3,
                          "thresholds": ["p(99)<500ms", "error_rate<=1%"]})
        p = self.start_run(plan, "--threshold", "achieved_ratio>=0.9",
                           "--threshold", "errors.http_5xx<2%")
        code = p.wait(60)
        self.assertEqual(code, 0, p.stderr())
        s = self.summary()
        # The thresholds come last; every other key keeps its place.
        self.assertEqual(list(s)[-2:], ["status", "thresholds"])
        self.assertEqual(s["status"], "completed")
        rows = s["thresholds"]
        self.assertEqual([r["expression"] for r in rows],
                         ["p(99)<500ms", "error_rate<=1%", "achieved_ratio>=0.9",
                          "errors.http_5xx<2%"])
        self.assertEqual([r["result"] for r in rows], ["pass"] * 4)
        self.assertEqual(rows[0]["unit"], "ms")
        self.assertEqual(rows[0]["observed"], s["latency_ms"]["p99"])
        total = s["requests"]["total"]
        self.assertEqual(total, 600)
        self.assertAlmostEqual(rows[1]["observed"], s["requests"]["failed"] / total, places=12)
        self.assertEqual(rows[1]["observed"], 0.01)  # 200:99,500:1 exactly, over 600 answers
        self.assertEqual(rows[1]["limit"], 0.01)
        self.assertFalse(any(r["aborted"] for r in rows))
        self.assertNotIn("is failing", p.stdout())
        self.assertIn("thresholds             4 of 4 passed", p.stdout())
        xml = self.assert_junit_valid()
        self.assertIn('tests="6" failures="0"', xml)
        self.assertNotIn("<failure", xml)
        self.assertIn('name="every agent completed"', xml)
        self.assertIn('name="no second missing"', xml)

    def test_failing_latency_threshold_exits_with_its_code(self):
        _, url = targets.start_target(self, "--latency-ms", "20")
        p = self.start_run("--url", url + "/", "--rate", 100, "--duration", "3s",
                           "--threshold", "p(99)<5ms", "--threshold", "error_rate<1%",
                           "--agents", 2)
        code = p.wait(60)
        self.assertEqual(code, EXIT_THRESHOLDS, p.stderr())
        s = self.summary()
        self.assertEqual(s["status"], "completed")
        lat, err = s["thresholds"]
        self.assertEqual(lat["result"], "fail")
        self.assertGreaterEqual(lat["observed"], 20.0)
        self.assertEqual(lat["observed"], s["latency_ms"]["p99"])
        self.assertFalse(lat["aborted"])
        self.assertEqual(err["result"], "pass")
        self.assertEqual(err["observed"], 0)
        out = p.stdout()
        # The breach is marked once, when it begins, not every second.
        self.assertEqual(out.count("threshold p(99)<5ms is failing"), 1, out)
        self.assertIn("FAIL  p(99)<5ms", out)
        xml = self.assert_junit_valid()
        self.assertIn('tests="4" failures="1"', xml)
        self.assertIn('<failure type="threshold" message="observed %.3f ms, wanted &lt; 5.000 ms"'
                      % lat["observed"], xml)

    def test_abort_after_delay_stops_the_load(self):
        target, url = targets.start_target(self, "--latency-ms", "20")
        p = self.start_run("--url", url + "/", "--rate", 200, "--duration", "30s",
                           "--threshold", "p(99)<5ms, abort after 2s")
        # The run's first second ends when its first progress line appears.
        p.wait_output("[    1s]", timeout=30)
        first_second = time.monotonic()
        counts = []
        while p.p.poll() is None and time.monotonic() < first_second + 25:
            counts.append((time.monotonic(), targets.target_stats(url)["requests"]))
            time.sleep(0.1)
        code = p.wait(30)
        self.assertEqual(code, EXIT_THRESHOLDS, p.stderr())
        # The count's last growth: the breach began at 1 s, the abort is due at 3 s of run time
        # (2 s after the first second's end), and the load stops within a second or two of it.
        last_growth = max(t for (t, n), (_, before) in zip(counts[1:], counts) if n > before)
        self.assertLess(last_growth - first_second, 2.0 + 2.0, counts)
        s = self.summary()
        self.assertEqual(s["status"], "stopped")
        (row,) = s["thresholds"]
        self.assertEqual(row["result"], "fail")
        self.assertTrue(row["aborted"])
        self.assertEqual(row["aborted_at_s"], 3)
        self.assertLess(s["requests"]["sent"], 200 * 6)
        self.assertIn("threshold p(99)<5ms, abort after 2s has failed since 1s: stopping the run",
                      p.stdout())
        self.assertIn("stopping: threshold p(99)<5ms, abort after 2s failed", p.stderr())
        xml = self.assert_junit_valid()
        self.assertIn("it stopped the run at 3s", xml)

    def test_bad_threshold_is_exit_2_naming_it(self):
        plan = self.plan({"url": "http://127.0.0.1:9/", "rate": 10, "duration": 1,
                          "thresholds": ["p(99)<250", "p(99)<250 ms"]})
        for extra in ([], ["--dry-run"]):
            code, out, err = self.run_to_end([harness.binary("stampede"), "run", plan] + extra,
                                             timeout=30)
            self.assertEqual(code, EXIT_USAGE)
            self.assertIn('plan.json: $.thresholds[1]: "p(99)<250 ms": at character 11: '
                          'unexpected "ms" after the threshold', err)
        code, out, err = self.run_to_end(
            [harness.binary("stampede"), "run", "--url", "http://127.0.0.1:9/", "--rate", "0",
             "--duration", "1s", "--threshold", "achieved_ratio>0.5"], timeout=30)
        self.assertEqual(code, EXIT_USAGE)
        self.assertIn('--threshold: "achieved_ratio>0.5": at character 1: achieved_ratio needs a '
                      'target rate, and the plan is closed loop', err)
        # Agents never take thresholds.
        code, out, err = self.run_to_end(
            [harness.binary("stampede-agent"), "--url", "http://127.0.0.1:9/", "--rate", "1",
             "--duration", "1s", "--threshold", "max<1"], timeout=30)
        self.assertEqual(code, EXIT_USAGE)
        self.assertIn("--threshold", err)
        # Nothing was written.
        self.assertFalse(os.path.exists(self.junit_path))


if __name__ == "__main__":
    unittest.main()
