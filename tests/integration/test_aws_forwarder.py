"""The forwarder against a scripted SQS stand-in: batch limits, entries refused inside a batch retried
alone, exactly-once delivery in the normal path, and the command-line surface of the AWS programs.
"""
import collections
import json
import os
import socket
import threading
import time

import aws_env
import fullfs
import harness
import targets


class ScriptedSqs:
    """Answers SendMessageBatch; refuse(batch_no, entry_index) decides which entries fail."""

    def __init__(self, refuse):
        self.refuse = refuse
        self.batches = []
        self.accepted = collections.Counter()
        self.lock = threading.Lock()
        self.server = aws_env.HttpStandIn(self.handle)

    def handle(self, method, path, headers, body):
        if headers.get("X-Amz-Target") != "AmazonSQS.SendMessageBatch":
            return 400, {}, b'{"__type":"com.amazonaws.sqs#UnsupportedOperation"}'
        req = json.loads(body)
        with self.lock:
            n = len(self.batches)
            self.batches.append(req["Entries"])
            ok, failed = [], []
            for i, e in enumerate(req["Entries"]):
                code = self.refuse(n, i, e)
                if code:
                    failed.append({"Id": e["Id"], "SenderFault": code != "InternalError",
                                   "Code": code, "Message": "refused by the test"})
                else:
                    ok.append({"Id": e["Id"], "MessageId": "m%d-%d" % (n, i),
                               "MD5OfMessageBody": "0"})
                    self.accepted[json.loads(e["MessageBody"])["run_id"] + "/" + e["Id"]] += 1
        reply = {"Successful": ok}
        if failed:
            reply["Failed"] = failed
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(reply).encode()

    def close(self):
        self.server.close()


class ForwarderTest(harness.ProcTestCase):
    def run_fake(self, sqs, seconds, rps=20, extra=()):
        spool = aws_env.tmpdir(self, "st-fwd-spool-")
        code, out, err = self.run_to_end(
            [harness.binary("st-fake-run"), "--run-id", "fwd-run", "--seconds", seconds, "--rps",
             rps, "--sqs-queue-url", sqs.server.url + "/000000000000/q", "--spool", spool]
            + list(extra), timeout=60, env=aws_env.aws_env())
        return code, json.loads(out) if out.strip() else None, err, spool

    def check_limits(self, batches):
        for b in batches:
            self.assertLessEqual(len(b), 10)
            self.assertLessEqual(sum(len(e["MessageBody"].encode()) for e in b), 256 * 1024)
            self.assertEqual(len({e["Id"] for e in b}), len(b))

    def test_a_run_sends_each_message_once(self):
        sqs = ScriptedSqs(lambda n, i, e: None)
        self.addCleanup(sqs.close)
        code, report, err, spool = self.run_fake(sqs, 40, rps=500)
        self.assertEqual(code, 0, err)
        self.assertEqual(report["sent"], 41)
        self.assertEqual(os.listdir(spool), [])
        self.check_limits(sqs.batches)
        self.assertEqual(len(sqs.accepted), 41)
        self.assertEqual(set(sqs.accepted.values()), {1})
        self.assertIn("fwd-run/fwd-run_summary", sqs.accepted)
        self.assertIn("fwd-run/fwd-run_s000039", sqs.accepted)

    def test_batches_are_cut_at_ten_entries_and_256_kib(self):
        sqs = ScriptedSqs(lambda n, i, e: None)
        self.addCleanup(sqs.close)
        spool = aws_env.tmpdir(self, "st-fwd-spool-")
        # 2000 requests a second make messages of ~40 KiB: the byte limit binds before 10
        # entries; the small summary and the seconds of a 300 rps run fill batches of 10.
        for run, rps in (("big-run", 2000), ("small-run", 300)):
            code, _, err = self.run_to_end(
                [harness.binary("st-fake-run"), "--run-id", run, "--seconds", "30", "--rps", rps,
                 "--spool", spool, "--spool-only"], timeout=60)
            self.assertEqual(code, 0, err)
        code, out, err = self.run_to_end(
            [harness.binary("stampede"), "forward", "--spool", spool, "--sqs-queue-url",
             sqs.server.url + "/000000000000/q"], timeout=60, env=aws_env.aws_env())
        self.assertEqual(code, 0, err)
        self.assertIn("sent 62 result message(s)", out)
        self.check_limits(sqs.batches)
        sizes = [sum(len(e["MessageBody"]) for e in b) for b in sqs.batches]
        self.assertTrue(any(len(b) < 10 and size > 200 * 1024
                            for b, size in zip(sqs.batches, sizes)), "no batch was cut by size")
        self.assertTrue(any(len(b) == 10 for b in sqs.batches), "no batch of 10 entries")
        self.assertEqual(len(sqs.accepted), 62)
        self.assertEqual(set(sqs.accepted.values()), {1})

    def test_refused_entries_are_retried_alone(self):
        refused = set()

        def refuse(n, i, e):
            # The first time they are seen, seconds 1 and 3 are refused inside their batch.
            if e["Id"] in ("fwd-run_s000001", "fwd-run_s000003") and e["Id"] not in refused:
                refused.add(e["Id"])
                return "InternalError"
            return None

        sqs = ScriptedSqs(refuse)
        self.addCleanup(sqs.close)
        code, report, err, spool = self.run_fake(sqs, 5)
        self.assertEqual(code, 0, err)
        self.assertEqual(report["sent"], 6)
        self.assertEqual(len(refused), 2)
        first = {}
        for n, b in enumerate(sqs.batches):
            for e in b:
                first.setdefault(e["Id"], n)
        for eid in refused:
            retries = [b for b in sqs.batches[first[eid] + 1:] if any(e["Id"] == eid for e in b)]
            self.assertEqual([len(b) for b in retries], [1], eid)
        self.assertEqual(set(sqs.accepted.values()), {1})
        self.assertEqual(len(sqs.accepted), 6)
        self.assertIn("retrying it alone", err)

    def test_an_entry_refused_for_good_stays_in_the_spool(self):
        sqs = ScriptedSqs(lambda n, i, e: "InvalidMessageContents"
                          if e["Id"] == "fwd-run_s000002" else None)
        self.addCleanup(sqs.close)
        code, report, err, spool = self.run_fake(sqs, 5, extra=["--flush-timeout-ms", "3000"])
        self.assertEqual(code, 4, err)
        self.assertEqual((report["sent"], report["spooled"]), (5, 1))
        self.assertEqual(os.listdir(spool), ["fwd-run.s000002.json"])
        self.assertIn("SQS refused fwd-run.s000002: InvalidMessageContents", err)
        self.assertEqual(set(sqs.accepted.values()), {1})

    def test_flush_deadline_spools_what_is_in_flight(self):
        # An SQS that accepts connections and never answers: the run must still end on time.
        silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        self.addCleanup(silent.close)
        url = "http://127.0.0.1:%d/000000000000/q" % silent.getsockname()[1]
        spool = aws_env.tmpdir(self, "st-fwd-spool-")
        t0 = time.monotonic()
        code, out, err = self.run_to_end(
            [harness.binary("st-fake-run"), "--run-id", "slow-run", "--seconds", "4",
             "--sqs-queue-url", url, "--spool", spool, "--flush-timeout-ms", "1000"],
            timeout=30, env=aws_env.aws_env())
        self.assertLess(time.monotonic() - t0, 6)
        self.assertEqual(code, 4, err)
        report = json.loads(out)
        self.assertEqual((report["sent"], report["spooled"], report["lost"]), (0, 5, 0))
        self.assertEqual(len(os.listdir(spool)), 5)

    def test_command_line_surface(self):
        stampede = harness.binary("stampede")
        sink = harness.binary("stampede-sink")
        env = aws_env.aws_env()
        code, out, _ = self.run_to_end([stampede, "--help"], timeout=10)
        self.assertEqual(code, 0)
        self.assertIn("forward", out)
        self.assertIn("results", out)
        self.assertIn("run", out)
        for args in ([], ["nonsense"]):
            code, _, err = self.run_to_end([stampede] + args, timeout=10)
            self.assertEqual(code, 2, args)
            self.assertIn("usage: stampede COMMAND", err)
        code, _, err = self.run_to_end([stampede, "run"], timeout=10)
        self.assertEqual(code, 2)
        self.assertIn("nothing to request", err)
        code, _, err = self.run_to_end([stampede, "results", "r1"], timeout=10, env=env)
        self.assertEqual(code, 2)
        self.assertIn("--table is required", err)
        code, _, err = self.run_to_end([stampede, "results", "bad/id", "--table", "t"], timeout=10,
                                       env=env)
        self.assertEqual(code, 2)
        code, _, err = self.run_to_end([stampede, "forward", "--spool", "/tmp"], timeout=10,
                                       env=env)
        self.assertEqual(code, 2)
        self.assertIn("--spool and --sqs-queue-url are required", err)
        code, _, err = self.run_to_end([stampede, "results", "r1", "--table", "t"], timeout=10,
                                       env={"AWS_ACCESS_KEY_ID": "x"})
        self.assertEqual(code, 2)
        self.assertIn("no AWS region: pass --region or set AWS_REGION", err)
        code, _, err = self.run_to_end([sink, "--table", "t"], timeout=10, env=env)
        self.assertEqual(code, 2)
        self.assertIn("--queue-url is required", err)
        code, _, err = self.run_to_end([sink, "--queue-url", "http://127.0.0.1:1/q", "--table",
                                        "t", "--ttl-days", "0"], timeout=10, env=env)
        self.assertEqual(code, 2)
        self.assertIn("--ttl-days must be", err)
        code, out, _ = self.run_to_end([sink, "--help"], timeout=10)
        self.assertEqual(code, 0)
        self.assertIn("--exit-when-empty", out)


class RunSpoolTest(harness.ProcTestCase):
    """stampede run against an SQS that cannot be reached: results wait in the spool (exit 4)
    only when they really are there; when the spool cannot take them they are lost (exit 10)."""

    def run_unreachable(self, spool):
        _, url = targets.start_target(self)
        d = aws_env.tmpdir(self, "st-run-out-")
        summary, ts = os.path.join(d, "summary.json"), os.path.join(d, "ts.jsonl")
        queue = "http://127.0.0.1:%d/000000000000/q" % harness.free_port()  # nothing listens
        p = self.start([harness.binary("stampede"), "run", "--url", url + "/", "--rate", 20,
                        "--duration", 2, "--agents", 1, "--sqs-queue-url", queue, "--spool",
                        spool, "--summary", summary, "--timeseries", ts], env=aws_env.aws_env())
        code = p.wait(60)
        with open(summary) as f:
            self.assertEqual(json.load(f)["status"], "completed")
        with open(ts) as f:
            messages = len([line for line in f if line.strip()]) + 1  # the seconds, the summary
        return code, p.stderr(), messages

    def test_results_the_spool_cannot_take_are_lost_exit_10(self):
        mnt = fullfs.small_tmpfs(self, 256)
        spool = os.path.join(mnt, "spool")
        os.mkdir(spool)
        fullfs.fill(mnt)
        code, err, messages = self.run_unreachable(spool)
        self.assertEqual(code, 10, err)
        self.assertIn("sqs: %d of the run's %d result messages are lost (neither delivered nor "
                      "spooled); 0 delivered, 0 wait in the spool %s" % (messages, messages, spool),
                      err)
        self.assertIn("%d result message(s) lost" % messages, err)
        self.assertNotIn("stampede forward", err)
        self.assertEqual(os.listdir(spool), [])

    def test_results_all_in_the_spool_exit_4(self):
        spool = aws_env.tmpdir(self, "st-run-spool-")
        code, err, messages = self.run_unreachable(spool)
        self.assertEqual(code, 4, err)
        self.assertIn("0 result messages delivered, %d wait in the spool" % messages, err)
        self.assertEqual(len(os.listdir(spool)), messages)


if __name__ == "__main__":
    import unittest
    unittest.main()
