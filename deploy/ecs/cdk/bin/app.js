#!/usr/bin/env node
'use strict';
// The CDK app: `cdk synth` / `cdk deploy` run this. Settings come from CDK context (cdk.json,
// `-c key=value`; see docs/deploy-ecs.md). A bad setting prints what is wrong and exits 2.
// The stack is environment-agnostic unless CDK_DEFAULT_ACCOUNT/REGION are known (the cdk CLI sets
// them from the credentials in use).

const cdk = require('aws-cdk-lib');
const { readSettings, SettingsError } = require('../lib/settings');
const { StampedeStack } = require('../lib/stack');

const app = new cdk.App();
const stackName = app.node.tryGetContext('stackName') || 'Stampede';
const account = process.env.CDK_DEFAULT_ACCOUNT;
const region = process.env.CDK_DEFAULT_REGION;
try {
  new StampedeStack(app, stackName, {
    env: account && region ? { account, region } : undefined,
    description: 'stampede: distributed HTTP load tests on ECS Fargate, results in DynamoDB',
    settings: readSettings((key) => app.node.tryGetContext(key), Object.keys(app.node.getAllContext())),
  });
} catch (e) {
  if (!(e instanceof SettingsError)) throw e;
  process.stderr.write(`stampede-ecs: ${e.message}\n`);
  process.exit(2);
}
app.synth();
