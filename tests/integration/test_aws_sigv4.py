"""SigV4 signatures made by stampede (libcurl's CURLOPT_AWS_SIGV4) checked against botocore's own signer.

A stand-in endpoint captures each request and re-signs it with botocore.auth.SigV4Auth using the
same credentials, region, service and timestamp; the signatures must be identical. Covered: SQS
(`stampede forward`) and DynamoDB (`stampede results`), with and without a session token.
"""
import json
import os
import re

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import aws_env
import harness

AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                     r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE/session+token=="


def answer(method, path, headers, body):
    target = headers.get("X-Amz-Target", "")
    if target == "AmazonSQS.SendMessageBatch":
        entries = json.loads(body)["Entries"]
        reply = {"Successful": [{"Id": e["Id"], "MessageId": "m-" + e["Id"],
                                 "MD5OfMessageBody": "0"} for e in entries]}
    elif target == "DynamoDB_20120810.Query":
        reply = {"Items": [], "Count": 0, "ScannedCount": 0}
    else:
        return 400, {}, b'{"__type":"UnknownOperationException"}'
    return 200, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(reply).encode()


class SigV4Test(harness.ProcTestCase):
    def setUp(self):
        super().setUp()
        self.standin = aws_env.HttpStandIn(answer)
        self.addCleanup(self.standin.close)

    def verify(self, request, service, token):
        method, path, headers, body = request
        m = AUTH_RE.match(headers["Authorization"])
        self.assertIsNotNone(m, headers["Authorization"])
        key_id, day, region, svc, signed_headers, signature = m.groups()
        self.assertEqual((key_id, region, svc), (aws_env.KEY_ID, aws_env.REGION, service))
        amz_date = headers["X-Amz-Date"]
        self.assertEqual(day, amz_date[:8])
        names = signed_headers.split(";")
        for needed in ("host", "x-amz-date", "content-type", "x-amz-target"):
            self.assertIn(needed, names)
        if token:
            self.assertIn("x-amz-security-token", names)
            self.assertEqual(headers["X-Amz-Security-Token"], token)
        else:
            self.assertNotIn("x-amz-security-token", names)
            self.assertNotIn("X-Amz-Security-Token", headers)
        lower = {k.lower(): v for k, v in headers.items()}
        req = AWSRequest(method=method, url="http://%s%s" % (lower["host"], path), data=body,
                         headers={n: lower[n] for n in names})
        auth = SigV4Auth(Credentials(aws_env.KEY_ID, aws_env.SECRET, token), service,
                         aws_env.REGION)
        req.context["timestamp"] = amz_date
        self.assertEqual(auth.signed_headers(auth.headers_to_sign(req)), signed_headers)
        canonical = auth.canonical_request(req)
        expected = auth.signature(auth.string_to_sign(req, canonical), req)
        self.assertEqual(signature, expected, "botocore signs this request differently:\n" +
                         canonical)
        # The comparison has teeth: another secret gives another signature.
        other = SigV4Auth(Credentials(aws_env.KEY_ID, "another-secret", token), service,
                          aws_env.REGION)
        self.assertNotEqual(signature, other.signature(other.string_to_sign(req, canonical), req))

    def forward(self, token):
        spool = aws_env.tmpdir(self, "st-sigv4-spool-")
        code, _, err = self.run_to_end([harness.binary("st-fake-run"), "--run-id", "sig-1",
                                        "--seconds", "3", "--rps", "20", "--spool", spool,
                                        "--spool-only"], timeout=30)
        self.assertEqual(code, 0, err)
        env = aws_env.aws_env()
        if token:
            env["AWS_SESSION_TOKEN"] = token
        code, out, err = self.run_to_end(
            [harness.binary("stampede"), "forward", "--spool", spool, "--sqs-queue-url",
             self.standin.url + "/000000000000/results"], timeout=30, env=env)
        self.assertEqual(code, 0, err)
        self.assertIn("sent 4 result message(s)", out)
        self.assertEqual(os.listdir(spool), [])
        self.assertNotIn(aws_env.SECRET, err + out)
        if token:
            self.assertNotIn(TOKEN, err + out)
        reqs = [r for r in self.standin.requests if r[2].get("X-Amz-Target", "").startswith("AmazonSQS")]
        self.assertEqual(len(reqs), 1)
        self.assertEqual(len(json.loads(reqs[0][3])["Entries"]), 4)
        return reqs[0]

    def results(self, token):
        env = aws_env.aws_env()
        if token:
            env["AWS_SESSION_TOKEN"] = token
        code, out, err = self.run_to_end(
            [harness.binary("stampede"), "results", "run-x", "--table", "results",
             "--endpoint-url", self.standin.url], timeout=30, env=env)
        self.assertEqual(code, 5, err)  # nothing stored for run-x
        self.assertIn("nothing is stored for run run-x", err)
        self.assertEqual(len(self.standin.requests), 1)
        return self.standin.requests[0]

    def test_sqs_signature_matches_botocore(self):
        self.verify(self.forward(None), "sqs", None)

    def test_sqs_signature_with_session_token_matches_botocore(self):
        self.verify(self.forward(TOKEN), "sqs", TOKEN)

    def test_dynamodb_signature_matches_botocore(self):
        self.verify(self.results(None), "dynamodb", None)

    def test_dynamodb_signature_with_session_token_matches_botocore(self):
        self.verify(self.results(TOKEN), "dynamodb", TOKEN)


if __name__ == "__main__":
    import unittest
    unittest.main()
