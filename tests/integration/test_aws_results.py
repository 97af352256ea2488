"""Results to AWS, end to end against real emulators: forwarder -> SQS (local-aws-sqs) -> stampede-sink
-> DynamoDB (dynalite), read back with the AWS CLI and `stampede results`, plus the failure paths.

The real distributed run (`stampede run --sqs-queue-url`, local agents against stampede-target) is
checked end to end, with SQS going down in the middle of it. The failure paths of the sink and the
forwarder that need exact, repeatable message streams use tests/fake_run.c (st-fake-run): it
builds a fixed run and drives the real forwarder the way the coordinator's output does.
"""
import json
import os
import signal
import time
import unittest

import aws_env
import harness
import targets

RPS = 20


class AwsResultsTest(aws_env.Emulators, harness.ProcTestCase):
    counter = 0  # names each test's queue and table

    def fresh(self, prefix, visibility_s=30):
        """A new queue (with its DLQ, maxReceiveCount 2) and table for one test.

        local-aws-sqs hands a message out twice in one long poll when its visibility timeout is
        shorter than the poll, which real SQS never does: keep visibility above --wait-seconds."""
        type(self).counter += 1
        name = "%s-%d" % (prefix, self.counter)
        queue, dlq = aws_env.create_queue_with_dlq(self.sqs_url, name, max_receive=2,
                                                   visibility_s=visibility_s)
        aws_env.create_table(self.ddb_url, name)
        return queue, dlq, name

    def run_forwarder(self, run_id, queue_url, seconds, spool=None, extra=(), env=None,
                      timeout=60):
        """Plays a run of `seconds` seconds that ships its results to queue_url."""
        spool = spool or aws_env.tmpdir(self, "st-spool-")
        p = self.start([harness.binary("st-fake-run"), "--run-id", run_id, "--seconds", seconds,
                        "--rps", RPS, "--sqs-queue-url", queue_url, "--spool", spool] + list(extra),
                       env=env or aws_env.aws_env())
        return p, spool

    def spool_run(self, run_id, seconds):
        """Plays a run of `seconds` seconds that leaves its results in a new spool; returns it."""
        spool = aws_env.tmpdir(self, "st-spool-")
        code, _, err = self.run_to_end([harness.binary("st-fake-run"), "--run-id", run_id,
                                        "--seconds", seconds, "--rps", RPS, "--spool", spool,
                                        "--spool-only"], timeout=30)
        self.assertEqual(code, 0, err)
        return spool

    def results(self, run_id, table, *extra, env=None):
        """Runs `stampede results RUN_ID --table TABLE` against the DynamoDB emulator."""
        return self.run_to_end([harness.binary("stampede"), "results", run_id, "--table", table,
                                "--endpoint-url", self.ddb_url] + list(extra), timeout=30,
                               env=env or aws_env.aws_env())

    def sqs_proxy(self):
        """A proxy in front of the SQS emulator, to take SQS down and bring it back."""
        proxy = aws_env.TcpProxy(int(self.sqs_url.rsplit(":", 1)[1]))
        self.addCleanup(proxy.close)
        return proxy

    def outage(self, proxy, spool):
        """Takes SQS down until the run spooled something, and a second longer; then up again."""
        proxy.down()
        deadline = time.monotonic() + 10
        while not os.listdir(spool) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(os.listdir(spool), "nothing was spooled while SQS was down")
        time.sleep(1.0)
        proxy.up()

    def spool_drained_by_sink(self, spool, queue, table):
        """The spool is empty, and the sink then takes queue into table with exit 0; its stderr."""
        self.assertEqual(os.listdir(spool), [])
        code, _, err = self.sink(queue, table)
        self.assertEqual(code, 0, err)
        return err

    def sink(self, queue, table, *extra, env=None, timeout=60):
        return self.run_to_end([harness.binary("stampede-sink"), "--queue-url", queue, "--table",
                                table, "--endpoint-url", self.ddb_url, "--exit-when-empty",
                                "--wait-seconds", "1"] + list(extra), timeout=timeout,
                               env=env or aws_env.aws_env())

    def items(self, table):
        return aws_env.cli_scan(self.ddb_url, table)

    def check_run_items(self, table, run_id, seconds):
        """Exactly one item per second plus the summary; counts exact; ttl now + 90 days."""
        items = [i for i in self.items(table) if i["testId"]["S"] == run_id]
        keys = sorted(i["sk"]["S"] for i in items)
        want = ["second#%06d" % k for k in range(seconds)] + ["summary"]
        self.assertEqual(keys, want)
        now = time.time()
        for i in items:
            self.assertAlmostEqual(int(i["ttl"]["N"]), now + 90 * 86400, delta=60)
        sent = sum(int(i["sent"]["N"]) for i in items if i["sk"]["S"] != "summary")
        self.assertEqual(sent, RPS * seconds)
        summary = [i for i in items if i["sk"]["S"] == "summary"][0]
        self.assertEqual(int(summary["summary"]["M"]["requests"]["M"]["sent"]["N"]), RPS * seconds)
        return items

    # ---- a real distributed run ----

    def real_run(self, queue, *extra, rate=200, duration=4, env=None, spool=None):
        """A distributed run of 2 local agents against stampede-target, shipping to queue."""
        _, url = targets.start_target(self)
        d = aws_env.tmpdir(self, "st-real-")
        spool = spool or os.path.join(d, "spool")
        paths = {"summary": os.path.join(d, "summary.json"), "ts": os.path.join(d, "ts.jsonl")}
        p = self.start([harness.binary("stampede"), "run", "--url", url + "/", "--rate", rate,
                        "--duration", duration, "--agents", 2, "--sqs-queue-url", queue,
                        "--spool", spool, "--summary", paths["summary"],
                        "--timeseries", paths["ts"]] + list(extra),
                       env=env or aws_env.aws_env())
        return p, spool, paths, url

    def check_real_items(self, table, paths):
        with open(paths["summary"]) as f:
            summary = json.load(f)
        with open(paths["ts"]) as f:
            seconds = [json.loads(line)["t"] for line in f if line.strip()]
        run_id = summary["run_id"]
        items = [i for i in self.items(table) if i["testId"]["S"] == run_id]
        keys = sorted(i["sk"]["S"] for i in items)
        self.assertEqual(keys, ["second#%06d" % k for k in seconds] + ["summary"])
        now = time.time()
        for i in items:
            self.assertAlmostEqual(int(i["ttl"]["N"]), now + 90 * 86400, delta=60)
        ok = sum(int(i["ok"]["N"]) for i in items if i["sk"]["S"] != "summary")
        self.assertEqual(ok, summary["requests"]["ok"])
        stored = [i for i in items if i["sk"]["S"] == "summary"][0]["summary"]["M"]
        self.assertEqual(int(stored["requests"]["M"]["total"]["N"]), summary["requests"]["total"])
        return run_id, summary

    def test_distributed_run_to_sqs_to_sink_to_table(self):
        queue, dlq, table = self.fresh("real")
        p, spool, paths, url = self.real_run(queue)
        self.assertEqual(p.wait(60), 0, p.stderr())
        self.spool_drained_by_sink(spool, queue, table)
        run_id, summary = self.check_real_items(table, paths)
        self.assertEqual(summary["requests"]["total"], 800)
        self.assertEqual(targets.target_stats(url)["requests"], 800)
        # Every second and the summary itself reached SQS, and the summary file says so.
        with open(paths["ts"]) as f:
            n_seconds = sum(1 for line in f if line.strip())
        self.assertEqual(summary["results_delivery"],
                         {"sent": n_seconds + 1, "spooled": 0, "lost": 0, "spool": spool})
        code, out, err = self.results(run_id, table)
        self.assertEqual(code, 0, err)
        self.assertIn("summary stored", out)

    def test_a_run_compared_with_a_stored_run_by_its_id(self):
        queue, dlq, table = self.fresh("baseline")
        p, spool, paths, url = self.real_run(queue)
        self.assertEqual(p.wait(60), 0, p.stderr())
        self.spool_drained_by_sink(spool, queue, table)
        old_id, old = self.check_real_items(table, paths)
        env = aws_env.aws_env(AWS_ENDPOINT_URL_DYNAMODB=self.ddb_url)
        d = aws_env.tmpdir(self, "st-base-")

        def run(target_url, name, *extra):
            summary = os.path.join(d, name + ".json")
            code, out, err = self.run_to_end(
                [harness.binary("stampede"), "run", "--url", target_url + "/", "--rate", 100,
                 "--duration", 2, "--agents", 1, "--headless", "--summary", summary,
                 "--baseline", old_id, "--baseline-table", table] + list(extra),
                timeout=60, env=env)
            s = None
            if os.path.exists(summary):
                with open(summary) as f:
                    s = json.load(f)
            return code, out, err, s

        # The stored summary is the baseline: its figures, named by run and table, not a file.
        code, out, err, s = run(url, "same", "--max-regression", "error_rate+5pt")
        self.assertEqual(code, 0, err)
        b = s["baseline"]
        self.assertEqual((b["run_id"], b["file"], b["table"]), (old_id, None, table))
        self.assertEqual(b["deltas"]["latency_ms.p99"]["baseline"], old["latency_ms"]["p99"])
        self.assertEqual(b["regressions"][0]["result"], "pass")
        self.assertIn("baseline               run %s (stored in %s)" % (old_id, table), out)
        # Half the answers failing against the stored 1%: the limit fails the run (exit 11).
        _, bad_url = targets.start_target(self, "--status", "200:1,503:1")
        code, out, err, s = run(bad_url, "worse", "--max-regression", "error_rate+5pt")
        self.assertEqual(code, 11, err)
        self.assertEqual(s["baseline"]["regressions"][0]["result"], "fail")
        self.assertAlmostEqual(s["baseline"]["regressions"][0]["baseline"],
                               old["requests"]["failed"] / old["requests"]["total"])
        # A run the table does not hold, and a table that does not exist: exit 5, nothing sent.
        before = targets.target_stats(url)["requests"]
        for run_id, tbl, want in (("20260101T000000Z-00000000", table, "holds no summary of run"),
                                  (old_id, "no-such-table", "no-such-table")):
            code, _, err = self.run_to_end(
                [harness.binary("stampede"), "run", "--url", url + "/", "--rate", 100,
                 "--duration", 2, "--baseline", run_id, "--baseline-table", tbl],
                timeout=60, env=env)
            self.assertEqual(code, 5, err)
            self.assertIn("--baseline %s" % run_id, err)
            self.assertIn(want, err)
        self.assertEqual(targets.target_stats(url)["requests"], before)

    def test_sqs_down_during_a_real_run_spools_then_delivers(self):
        queue, dlq, table = self.fresh("realdown")
        proxy = self.sqs_proxy()
        p, spool, paths, url = self.real_run(
            queue, "--endpoint-url", "http://127.0.0.1:%d" % proxy.port, duration=6)
        p.wait_output("[    1s]", timeout=30)
        self.outage(proxy, spool)
        self.assertEqual(p.wait(60), 0, p.stderr())
        self.spool_drained_by_sink(spool, queue, table)
        _, summary = self.check_real_items(table, paths)
        self.assertEqual(summary["requests"]["total"], 1200)

    def test_sqs_down_for_a_whole_real_run_is_exit_4_with_the_messages_counted(self):
        queue, dlq, table = self.fresh("realalldown")
        proxy = self.sqs_proxy()
        proxy.down()
        p, spool, paths, url = self.real_run(
            queue, "--endpoint-url", "http://127.0.0.1:%d" % proxy.port, duration=2)
        self.assertEqual(p.wait(60), 4, p.stderr())
        with open(paths["summary"]) as f:
            summary = json.load(f)
        with open(paths["ts"]) as f:
            n_seconds = sum(1 for line in f if line.strip())
        self.assertEqual(summary["requests"]["total"], 400)
        self.assertEqual(summary["results_delivery"],
                         {"sent": 0, "spooled": n_seconds + 1, "lost": 0, "spool": spool})
        self.assertEqual(len(os.listdir(spool)), n_seconds + 1)
        self.assertIn("wait in the spool", p.stderr())

    def test_real_run_without_credentials_does_not_start(self):
        queue, dlq, table = self.fresh("realnocreds")
        env = aws_env.aws_env()
        del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        p, spool, paths, url = self.real_run(queue, env=env)
        self.assertEqual(p.wait(30), 3, p.stderr())
        self.assertIn("credentials", p.stderr())
        self.assertEqual(targets.target_stats(url)["requests"], 0)

    # ---- the normal path ----

    def test_forwarder_to_sqs_to_sink_to_table(self):
        queue, dlq, table = self.fresh("e2e")
        p, spool = self.run_forwarder("e2e-run", queue, 12)
        self.assertEqual(p.wait(60), 0, p.stderr())
        report = json.loads(p.stdout())
        self.assertEqual((report["sent"], report["spooled"]), (13, 0))
        err = self.spool_drained_by_sink(spool, queue, table)
        self.assertIn("13 message(s) written", err)
        items = self.check_run_items(table, "e2e-run", 12)
        second = [i for i in items if i["sk"]["S"] == "second#000003"][0]
        for attr in ("ok", "failed", "p50_us", "p99_us", "achieved_rps", "target_rps",
                     "latency_us", "latency_uncorrected_us", "agents"):
            self.assertIn(attr, second)
        self.assertEqual(second["kind"]["S"], "second")
        self.assertGreater(len(second["latency_us"]["M"]["buckets"]["L"]), 5)
        self.assertEqual(aws_env.queue_messages(self.sqs_url, queue), [])

        code, out, err = self.results("e2e-run", table)
        self.assertEqual(code, 0, err)
        self.assertIn("12 second(s) stored (second 0 to 11), summary stored", out)
        self.assertIn("match the stored histograms", out)
        code, out, err = self.results("e2e-run", table, "--json")
        self.assertEqual(code, 0, err)
        doc = json.loads(out)
        self.assertEqual(len(doc["seconds"]), 12)
        self.assertEqual(doc["whole_run"]["counts"]["sent"], RPS * 12)
        self.assertEqual(doc["whole_run"]["latency_us"]["p99"], report["p99_us"])
        self.assertEqual(doc["whole_run"]["latency_us"]["p99"] / 1000.0,
                         doc["summary"]["latency_ms"]["p99"])
        self.assertEqual(doc["check"]["mismatched"], 0)
        self.assertGreaterEqual(doc["check"]["compared"], 20)

        code, _, err = self.results("no-such-run", table)
        self.assertEqual(code, 5, err)

    def test_sqs_down_during_run_spools_then_delivers(self):
        queue, dlq, table = self.fresh("down")
        proxy = self.sqs_proxy()
        # The forwarder reaches SQS through the proxy; the queue URL stays the emulator's.
        p, spool = self.run_forwarder("down-run", queue, 30,
                                      extra=["--interval-ms", "100", "--retry-interval-ms", "200",
                                             "--endpoint-url", "http://127.0.0.1:%d" % proxy.port])
        time.sleep(0.8)
        self.outage(proxy, spool)
        self.assertEqual(p.wait(60), 0, p.stderr())
        report = json.loads(p.stdout())
        self.assertEqual((report["sent"], report["spooled"], report["lost"]), (31, 0, 0))
        self.assertIn("SQS unreachable", p.stderr())
        self.spool_drained_by_sink(spool, queue, table)
        self.check_run_items(table, "down-run", 30)

    def test_stampede_forward_replays_a_spool(self):
        queue, dlq, table = self.fresh("replay")
        spool = self.spool_run("replay-run", "25")
        self.assertEqual(len(os.listdir(spool)), 26)

        # SQS unreachable: everything stays, exit code 4.
        dead = "http://127.0.0.1:%d" % harness.free_port()
        code, out, err = self.run_to_end([harness.binary("stampede"), "forward", "--spool", spool,
                                          "--sqs-queue-url", queue, "--endpoint-url", dead],
                                         timeout=60, env=aws_env.aws_env())
        self.assertEqual(code, 4, err)
        self.assertIn("26 message(s) remain", err)
        self.assertEqual(len(os.listdir(spool)), 26)

        code, out, err = self.run_to_end([harness.binary("stampede"), "forward", "--spool", spool,
                                          "--sqs-queue-url", queue], timeout=60,
                                         env=aws_env.aws_env())
        self.assertEqual(code, 0, err)
        self.assertIn("sent 26 result message(s)", out)
        self.spool_drained_by_sink(spool, queue, table)
        self.check_run_items(table, "replay-run", 25)

        code, _, err = self.run_to_end([harness.binary("stampede"), "forward", "--spool",
                                        spool + "/missing", "--sqs-queue-url", queue],
                                       timeout=30, env=aws_env.aws_env())
        self.assertEqual(code, 5, err)

    # ---- the sink's failure paths ----

    def test_dynamodb_throttling_and_unprocessed_items_are_retried(self):
        queue, dlq, table = self.fresh("throttle")
        calls = {"n": 0}

        def flaky(method, path, headers, body):
            target = headers.get("X-Amz-Target", "")
            if target.endswith("BatchWriteItem"):
                calls["n"] += 1
                if calls["n"] == 1:
                    return 400, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps({
                        "__type": "com.amazonaws.dynamodb.v20120810#"
                                  "ProvisionedThroughputExceededException",
                        "message": "The level of configured provisioned throughput for the table "
                                   "was exceeded."}).encode()
                if calls["n"] in (2, 3):
                    req = json.loads(body)
                    (tname, writes), = req["RequestItems"].items()
                    keep, rest = writes[:3], writes[3:]
                    status, out = aws_env.forward_to(
                        self.ddb_url, headers,
                        json.dumps({"RequestItems": {tname: keep}}).encode())
                    if status != 200:
                        return status, {}, out
                    return 200, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps({
                        "UnprocessedItems": {tname: rest} if rest else {}}).encode()
            status, out = aws_env.forward_to(self.ddb_url, headers, body)
            return status, {"Content-Type": "application/x-amz-json-1.0"}, out

        standin = aws_env.HttpStandIn(flaky)
        self.addCleanup(standin.close)
        p, _ = self.run_forwarder("throttle-run", queue, 9)
        self.assertEqual(p.wait(60), 0, p.stderr())
        code, _, err = self.run_to_end(
            [harness.binary("stampede-sink"), "--queue-url", queue, "--table", table,
             "--endpoint-url", standin.url, "--exit-when-empty", "--wait-seconds", "1"],
            timeout=60, env=aws_env.aws_env(STAMPEDE_LOG_LEVEL="debug"))
        self.assertEqual(code, 0, err)
        self.assertGreaterEqual(calls["n"], 4)
        self.assertIn("ProvisionedThroughputExceededException", err)
        self.assertIn("unprocessed; retrying", err)
        self.check_run_items(table, "throttle-run", 9)
        self.assertEqual(aws_env.queue_messages(self.sqs_url, queue), [])

    def test_poison_message_is_left_for_the_dlq(self):
        queue, dlq, table = self.fresh("poison", visibility_s=2)
        aws_env.sqs(self.sqs_url, "SendMessage", QueueUrl=queue,
                    MessageBody='{"schema":"stampede.result/1","kind":"second","run_id":"x"}')
        aws_env.sqs(self.sqs_url, "SendMessage", QueueUrl=queue, MessageBody="not json at all")
        p, _ = self.run_forwarder("poison-run", queue, 3)
        self.assertEqual(p.wait(60), 0, p.stderr())
        sink = self.start([harness.binary("stampede-sink"), "--queue-url", queue, "--table",
                           table, "--endpoint-url", self.ddb_url, "--wait-seconds", "1"],
                          env=aws_env.aws_env())
        # Received, refused and left twice (maxReceiveCount 2), then SQS moves them to the DLQ.
        deadline = time.monotonic() + 30
        moved = []
        while time.monotonic() < deadline:
            moved = aws_env.queue_messages(self.sqs_url, dlq)
            if len(moved) == 2:
                break
            for m in moved:  # look without taking: make them visible again
                aws_env.sqs(self.sqs_url, "ChangeMessageVisibility", QueueUrl=dlq,
                            ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
            time.sleep(0.3)
        sink.p.send_signal(signal.SIGTERM)
        self.assertEqual(sink.wait(20), 0, sink.stderr())
        self.assertEqual(sorted(m["Body"] for m in moved),
                         sorted(['{"schema":"stampede.result/1","kind":"second","run_id":"x"}',
                                 "not json at all"]))
        err = sink.stderr()
        self.assertIn("is not a stampede result ($.second: missing)", err)
        self.assertIn("is not a stampede result ($: not valid JSON", err)
        self.assertIn("dead-letter queue", err)
        self.check_run_items(table, "poison-run", 3)

    def test_duplicate_delivery_writes_one_item(self):
        queue, dlq, table = self.fresh("dup")
        spool = self.spool_run("dup-run", "2")
        with open(os.path.join(spool, "dup-run.s000001.json")) as f:
            body = f.read()
        # The same result three times: twice in one receive, once more later.
        aws_env.sqs(self.sqs_url, "SendMessage", QueueUrl=queue, MessageBody=body)
        aws_env.sqs(self.sqs_url, "SendMessage", QueueUrl=queue, MessageBody=body)
        code, _, err = self.sink(queue, table)
        self.assertEqual(code, 0, err)
        aws_env.sqs(self.sqs_url, "SendMessage", QueueUrl=queue, MessageBody=body)
        code, _, err = self.sink(queue, table)
        self.assertEqual(code, 0, err)
        items = [i for i in self.items(table) if i["testId"]["S"] == "dup-run"]
        self.assertEqual([i["sk"]["S"] for i in items], ["second#000001"])
        self.assertEqual(int(items[0]["sent"]["N"]), RPS)
        self.assertEqual(aws_env.queue_messages(self.sqs_url, queue), [])

    def test_missing_and_expired_credentials_fail_clearly(self):
        queue, dlq, table = self.fresh("creds")
        closed = "http://127.0.0.1:%d" % harness.free_port()
        no_creds = {"AWS_REGION": aws_env.REGION, "AWS_EC2_METADATA_SERVICE_ENDPOINT": closed}
        code, out, err = self.sink(queue, table, env=no_creds)
        self.assertEqual(code, 3, err)
        self.assertIn("no AWS credentials found: set AWS_ACCESS_KEY_ID", err)
        code, out, err = self.results("r", table, env=no_creds)
        self.assertEqual(code, 3, err)
        self.assertIn("DynamoDB Query: no AWS credentials found", err)

        expired_secret = "expired-secret-must-not-show"

        def container(method, path, headers, body):
            if headers.get("Authorization") != "Bearer ecs-token":
                return 401, {}, b"{}"
            return 200, {"Content-Type": "application/json"}, json.dumps({
                "AccessKeyId": "ASIAEXPIRED", "SecretAccessKey": expired_secret,
                "Token": "expired-token", "Expiration": "2020-01-01T00:00:00Z"}).encode()

        creds = aws_env.HttpStandIn(container)
        self.addCleanup(creds.close)
        expired = {"AWS_REGION": aws_env.REGION,
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI": creds.url + "/v2/credentials",
                   "AWS_CONTAINER_AUTHORIZATION_TOKEN": "Bearer ecs-token"}
        code, out, err = self.sink(queue, table, env=expired)
        self.assertEqual(code, 3, err)
        self.assertIn("the AWS credentials from the container endpoint expired at "
                      "2020-01-01T00:00:00Z", err)
        self.assertNotIn(expired_secret, err + out)
        self.assertNotIn("ecs-token", err + out)
        self.assertTrue(any(r[1] == "/v2/credentials" for r in creds.requests))

        # The forwarder keeps everything in its spool when it has no credentials.
        p, spool = self.run_forwarder("creds-run", queue, 2, env=no_creds,
                                      extra=["--flush-timeout-ms", "1500"])
        self.assertEqual(p.wait(30), 4, p.stderr())
        self.assertEqual(len(os.listdir(spool)), 3)
        self.assertIn("no AWS credentials found", p.stderr())

    def test_sigterm_stops_an_idle_sink_promptly(self):
        queue, dlq, table = self.fresh("term")
        sink = self.start([harness.binary("stampede-sink"), "--queue-url", queue, "--table",
                           table, "--endpoint-url", self.ddb_url], env=aws_env.aws_env())
        sink.wait_output("reading", stream="stderr", timeout=10)
        time.sleep(0.5)  # inside a 20 s long poll by now
        t0 = time.monotonic()
        sink.p.send_signal(signal.SIGTERM)
        self.assertEqual(sink.wait(10), 0, sink.stderr())
        self.assertLess(time.monotonic() - t0, 5)

    def test_bad_log_level_is_refused(self):
        # A setting that does not parse is an error, never a quiet fall back to info.
        queue, dlq, table = self.fresh("level")
        code, _, err = self.sink(queue, table, env=aws_env.aws_env(STAMPEDE_LOG_LEVEL="loud"),
                                 timeout=20)
        self.assertEqual(code, 2, err)
        self.assertIn('STAMPEDE_LOG_LEVEL is "loud": it must be debug, info, warn or error', err)

    def test_lambda_mode_reports_batch_item_failures(self):
        queue, dlq, table = self.fresh("lambda")
        spool = self.spool_run("lambda-run", "1")
        with open(os.path.join(spool, "lambda-run.s000000.json")) as f:
            good = f.read()
        event = {"Records": [
            {"messageId": "good-1", "receiptHandle": "rh1", "body": good,
             "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs"},
            {"messageId": "poison-2", "receiptHandle": "rh2", "body": "{\"schema\": 1}",
             "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs"},
        ]}
        state = {"served": 0}
        answers = []

        def runtime(method, path, headers, body):
            if method == "GET" and path == "/2018-06-01/runtime/invocation/next":
                state["served"] += 1
                if state["served"] == 1:
                    return 200, {"Lambda-Runtime-Aws-Request-Id": "req-1",
                                 "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 60000),
                                 "Content-Type": "application/json"}, json.dumps(event).encode()
                if state["served"] == 2:
                    return 200, {"Lambda-Runtime-Aws-Request-Id": "req-2"}, b'{"not": "sqs"}'
                time.sleep(30)  # no more work: the runtime keeps the function waiting
                return 500, {}, b""
            if method == "POST":
                answers.append((path, json.loads(body)))
                return 202, {"Content-Type": "application/json"}, b'{"status":"OK"}'
            return 404, {}, b""

        api = aws_env.HttpStandIn(runtime)
        self.addCleanup(api.close)
        env = aws_env.aws_env(AWS_LAMBDA_RUNTIME_API="127.0.0.1:%d" % api.port,
                              STAMPEDE_TABLE=table,
                              AWS_ENDPOINT_URL_DYNAMODB=self.ddb_url)
        sink = self.start([harness.binary("stampede-sink")], env=env)
        deadline = time.monotonic() + 20
        while len(answers) < 2 and time.monotonic() < deadline and sink.p.poll() is None:
            time.sleep(0.05)
        self.assertEqual(len(answers), 2, sink.stderr())
        self.assertEqual(answers[0], ("/2018-06-01/runtime/invocation/req-1/response",
                                      {"batchItemFailures": [{"itemIdentifier": "poison-2"}]}))
        self.assertEqual(answers[1][0], "/2018-06-01/runtime/invocation/req-2/error")
        self.assertEqual(answers[1][1]["errorType"], "Sink.InvalidEvent")
        items = [i for i in self.items(table) if i["testId"]["S"] == "lambda-run"]
        self.assertEqual([i["sk"]["S"] for i in items], ["second#000000"])
        # SIGTERM while waiting for the next invocation ends the runtime cleanly.
        sink.p.send_signal(signal.SIGTERM)
        self.assertEqual(sink.wait(10), 0, sink.stderr())


if __name__ == "__main__":
    unittest.main()
