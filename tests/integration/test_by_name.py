"""Results per request name: a weighted 3-request mix over 3 local agents against stampede-target,
the per-name figures against what the target counted per path."""
import json
import os
import shutil
import tempfile
import unittest
import urllib.request

import aws_env
import harness
import targets

NAMES = {"home": "/home", "login": "/login", "search": "/search"}
WEIGHTS = {"home": 5, "login": 2, "search": 3}
EXIT_THRESHOLDS = 11


class ByNameCase(harness.ProcTestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="st-by-name-")
        self.summary_path = os.path.join(self.dir, "summary.json")
        self.series_path = os.path.join(self.dir, "series.jsonl")

    def tearDown(self):
        super().tearDown()
        shutil.rmtree(self.dir, ignore_errors=True)

    def plan(self, url, **extra):
        obj = {"requests": [{"name": n, "url": url + NAMES[n], "weight": WEIGHTS[n]}
                            for n in ("home", "login", "search")],
               "rate": 300, "duration": 3}
        obj.update(extra)
        path = os.path.join(self.dir, "plan.json")
        with open(path, "w") as f:
            json.dump(obj, f)
        return path

    def run_plan(self, plan, *args, env=None):
        p = self.start([harness.binary("stampede"), "run", plan, "--agents", 3,
                        "--summary", self.summary_path, "--timeseries", self.series_path]
                       + [str(a) for a in args], env=env)
        code = p.wait(90)
        with open(self.summary_path) as f:
            return code, p, json.load(f)

    def test_per_name_figures_equal_the_targets_per_path_counts(self):
        _, url = targets.start_target(self, "--status", "200:9,503:1")
        code, p, s = self.run_plan(self.plan(url))
        self.assertEqual(code, 0, p.stderr())
        self.assertEqual(s["status"], "completed")
        seen = targets.target_stats(url)
        by_path = seen["by_path"]
        self.assertEqual(seen["other_paths"], 0)
        by = s["requests_by_name"]
        self.assertEqual(sorted(by), sorted(NAMES))
        total = 0
        for name, path in NAMES.items():
            r = by[name]
            self.assertEqual(list(r), ["requests", "errors", "latency_ms",
                                       "latency_uncorrected_ms"])
            self.assertEqual(r["requests"]["total"], by_path[path], name)
            self.assertEqual(r["requests"]["sent"], by_path[path], name)
            # 900 requests in a 10-request cycle of the weights: exactly the weights' share.
            self.assertEqual(r["requests"]["total"], 900 * WEIGHTS[name] // 10, name)
            self.assertEqual(r["requests"]["ok"] + r["errors"]["http_5xx"],
                             r["requests"]["total"])
            self.assertEqual(r["requests"]["failed"], r["errors"]["http_5xx"])
            self.assertGreater(r["latency_ms"]["p99"], 0)
            self.assertLessEqual(r["latency_ms"]["max"], s["latency_ms"]["max"])
            total += r["requests"]["total"]
        self.assertEqual(total, s["requests"]["total"])
        self.assertEqual(total, seen["requests"])
        self.assertEqual(sum(by[n]["errors"]["http_5xx"] for n in NAMES),
                         s["errors"]["http_5xx"])
        self.assertEqual(sum(by[n]["requests"]["ok"] for n in NAMES), s["requests"]["ok"])
        # The largest of the names' maxima is the run's: the parts hold every sample.
        self.assertEqual(max(by[n]["latency_ms"]["max"] for n in NAMES), s["latency_ms"]["max"])
        # The time series carries each name's figures per second, adding up to the second's.
        with open(self.series_path) as f:
            lines = [json.loads(l) for l in f]
        self.assertTrue(lines)
        ok_by_name = {n: 0 for n in NAMES}
        for line in lines:
            self.assertEqual(sorted(line["by_name"]), sorted(NAMES))
            self.assertEqual(sum(v["ok"] for v in line["by_name"].values()), line["ok"])
            self.assertEqual(sum(v["failed"] for v in line["by_name"].values()), line["failed"])
            for n in NAMES:
                ok_by_name[n] += line["by_name"][n]["ok"]
        # The final table has a block per name.
        out = p.stdout()
        self.assertIn("by request name", out)
        for n in NAMES:
            self.assertIn("    " + n + " ", out)

    def test_threshold_by_name(self):
        # Every answer waits 1 ms: the login max cannot be under 1 us, the others hold.
        _, url = targets.start_target(self, "--latency-ms", "1")
        plan = self.plan(url, rate=100, duration=2,
                         thresholds=["p(99){name=home}<2s", "max{name:\"login\"}<0.001ms",
                                     "error_rate{name=search}<1%"])
        code, p, s = self.run_plan(plan)
        self.assertEqual(code, EXIT_THRESHOLDS, p.stderr())
        rows = s["thresholds"]
        self.assertEqual([r["result"] for r in rows], ["pass", "fail", "pass"])
        self.assertEqual(rows[0]["observed"], s["requests_by_name"]["home"]["latency_ms"]["p99"])
        self.assertEqual(rows[1]["observed"], s["requests_by_name"]["login"]["latency_ms"]["max"])
        self.assertEqual(rows[2]["observed"], 0)

    def test_threshold_naming_no_request_is_refused(self):
        _, url = targets.start_target(self)
        plan = self.plan(url, thresholds=["p(99){name=checkout}<250"])
        p = self.start([harness.binary("stampede"), "run", plan, "--agents", 1])
        self.assertEqual(p.wait(30), 2)
        self.assertIn('the plan has no request named "checkout" (its names: "home", "login", '
                      '"search")', p.stderr())

    def test_target_counts_per_path(self):
        # The query is left out; the first 32 distinct paths are counted, the others apart.
        _, url = targets.start_target(self)
        paths = ["/a?x=1", "/a", "/a?y", "/b%22q", "/c\\d"] + ["/p%d" % i for i in range(30)]
        for p in paths:
            with urllib.request.urlopen(url + p, timeout=5) as r:
                r.read()
        seen = targets.target_stats(url)
        by = seen["by_path"]
        self.assertEqual(by["/a"], 3)
        self.assertEqual(by["/b%22q"], 1)
        self.assertEqual(by["/c\\d"], 1)
        self.assertEqual(len(by), 32)
        self.assertEqual(sum(by.values()) + seen["other_paths"], seen["requests"])
        self.assertEqual(seen["other_paths"], 1)  # 33 distinct paths: /p29 is the 33rd
        harness.http_get_json(url + "/__target/reset", method="POST")
        seen = targets.target_stats(url)
        self.assertEqual((seen["by_path"], seen["other_paths"]), ({}, 0))

    def test_plan_of_more_names_than_kept_keeps_the_whole_only(self):
        _, url = targets.start_target(self)
        path = os.path.join(self.dir, "many.json")
        with open(path, "w") as f:
            json.dump({"requests": [{"name": "r%d" % i, "url": "%s/%d" % (url, i)}
                                    for i in range(33)], "rate": 66, "duration": 1}, f)
        code, p, s = self.run_plan(path)
        self.assertEqual(code, 0, p.stderr())
        self.assertIn("the plan has 33 request names: results per name are kept for plans of at "
                      "most 32", p.stderr())
        self.assertNotIn("requests_by_name", s)
        self.assertEqual(s["malformed_messages"], 0)
        self.assertEqual(s["requests"]["total"], 66)

    def test_one_name_plan_has_no_per_name_keys(self):
        _, url = targets.start_target(self)
        path = os.path.join(self.dir, "one.json")
        with open(path, "w") as f:
            json.dump({"requests": [{"name": "a", "url": url + "/x", "weight": 1},
                                    {"name": "a", "url": url + "/y", "weight": 1}],
                       "rate": 50, "duration": 1}, f)
        code, p, s = self.run_plan(path)
        self.assertEqual(code, 0, p.stderr())
        self.assertNotIn("requests_by_name", s)
        with open(self.series_path) as f:
            self.assertTrue(all("by_name" not in json.loads(l) for l in f))


class ByNameAwsCase(aws_env.Emulators, ByNameCase):
    """The same run through SQS, stampede-sink and DynamoDB (the emulators), and read back by
    `stampede results`."""

    # Only the AWS path here: the local cases run in ByNameCase.
    test_threshold_by_name = None
    test_threshold_naming_no_request_is_refused = None
    test_one_name_plan_has_no_per_name_keys = None
    test_target_counts_per_path = None
    test_plan_of_more_names_than_kept_keeps_the_whole_only = None

    def test_per_name_figures_equal_the_targets_per_path_counts(self):
        queue, _ = aws_env.create_queue_with_dlq(self.sqs_url, "by-name", max_receive=2,
                                                 visibility_s=30)
        aws_env.create_table(self.ddb_url, "by-name")
        _, url = targets.start_target(self)
        spool = os.path.join(self.dir, "spool")
        code, p, s = self.run_plan(self.plan(url), "--sqs-queue-url", queue, "--spool", spool,
                                env=aws_env.aws_env())
        self.assertEqual(code, 0, p.stderr())
        code, _, err = self.run_to_end(
            [harness.binary("stampede-sink"), "--queue-url", queue, "--table", "by-name",
             "--endpoint-url", self.ddb_url, "--exit-when-empty", "--wait-seconds", "1"],
            timeout=60, env=aws_env.aws_env())
        self.assertEqual(code, 0, err)
        items = [i for i in aws_env.cli_scan(self.ddb_url, "by-name")
                 if i["testId"]["S"] == s["run_id"]]
        self.assertTrue(items)
        self.assertEqual({i["schema"]["S"] for i in items}, {"stampede.result/2"})
        by_path = targets.target_stats(url)["by_path"]
        stored = {n: 0 for n in NAMES}
        for i in items:
            for part in i.get("by_name", {"L": []})["L"]:
                m = part["M"]
                c = m["counts"]["M"]
                stored[m["name"]["S"]] += sum(int(c[k]["N"]) for k in (
                    "ok", "http_4xx", "http_5xx", "err_connect", "err_timeout", "err_other"))
        self.assertEqual(stored, {n: by_path[NAMES[n]] for n in NAMES})
        code, out, err = self.run_to_end(
            [harness.binary("stampede"), "results", s["run_id"], "--table", "by-name",
             "--endpoint-url", self.ddb_url], timeout=30, env=aws_env.aws_env())
        self.assertEqual(code, 0, err + out)
        self.assertIn("by request name, merged from the stored seconds:", out)
        self.assertIn("match the stored histograms", out)
        for n in NAMES:
            row = [l for l in out.splitlines() if l.startswith(n + " ")]
            self.assertEqual(len(row), 1, out)
            self.assertEqual(int(row[0].split()[1]), by_path[NAMES[n]])
        code, out, err = self.run_to_end(
            [harness.binary("stampede"), "results", s["run_id"], "--table", "by-name",
             "--endpoint-url", self.ddb_url, "--json"], timeout=30, env=aws_env.aws_env())
        self.assertEqual(code, 0, err)
        j = json.loads(out)
        by = j["whole_run"]["by_name"]
        for n in NAMES:
            self.assertEqual(by[n]["counts"]["ok"], s["requests_by_name"][n]["requests"]["ok"])
            self.assertEqual(by[n]["latency_us"]["p99"],
                             round(s["requests_by_name"][n]["latency_ms"]["p99"] * 1000))
        self.assertGreater(j["check"]["compared"], 40)
        self.assertEqual(j["check"]["mismatched"], 0)


if __name__ == "__main__":
    unittest.main()
