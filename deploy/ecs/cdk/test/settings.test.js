'use strict';
// Bad settings: each is refused with a message naming the context key and what is allowed.

const test = require('node:test');
const assert = require('node:assert/strict');
const { readSettings, SettingsError } = require('../lib/settings');
const { synth, ECR } = require('./helpers');

function read(context) {
  return readSettings((k) => context[k], Object.keys(context));
}

function refused(context, pattern) {
  assert.throws(() => read(context), (e) => e instanceof SettingsError && pattern.test(e.message),
    `refused with ${pattern}`);
}

test('defaults: 2 vCPU / 4 GiB agents, 1 vCPU / 2 GiB coordinator, 30 days of logs, no NAT, public IPs', () => {
  const s = read({});
  assert.equal(s.agentCpu, 2048);
  assert.equal(s.agentMemory, 4096);
  assert.equal(s.coordinatorCpu, 1024);
  assert.equal(s.coordinatorMemory, 2048);
  assert.equal(s.logRetentionDays, 30);
  assert.equal(s.natGateways, 0);
  assert.equal(s.assignPublicIp, true);
  assert.equal(s.retainResults, true);
  assert.equal(s.repository, undefined, 'the image is built from the tree unless ecrRepository is given');
});

test('-c values arrive as strings and are parsed', () => {
  const s = read({ agentCpu: '4096', agentMemory: '10240', natGateways: '2', retainResults: 'false', logRetentionDays: '365' });
  assert.equal(s.agentCpu, 4096);
  assert.equal(s.agentMemory, 10240);
  assert.equal(s.natGateways, 2);
  assert.equal(s.assignPublicIp, false);
  assert.equal(s.retainResults, false);
  assert.equal(s.logRetentionDays, 365);
});

test('CPU and memory must be a Fargate combination', () => {
  refused({ agentCpu: 3000 }, /^context agentCpu=3000: Fargate CPU units are one of 256, 512, 1024, 2048, 4096, 8192, 16384$/);
  refused({ agentCpu: 1024, agentMemory: 512 }, /^context agentMemory=512: with agentCpu=1024 Fargate accepts 2048 to 8192 in steps of 1024 MiB$/);
  refused({ coordinatorCpu: 256, coordinatorMemory: 4096 }, /^context coordinatorMemory=4096: with coordinatorCpu=256 Fargate accepts 512 or 1024 to 2048 in steps of 1024 MiB$/);
  refused({ agentCpu: 'two' }, /^context agentCpu="two": must be a whole number$/);
  refused({ agentMemory: '-1' }, /^context agentMemory="-1": must be a whole number$/);
});

test('log retention must be a period CloudWatch Logs offers', () => {
  refused({ logRetentionDays: 10 }, /^context logRetentionDays=10: CloudWatch Logs keeps logs for one of 1, 3, 5, 7, 14, 30, /);
});

test('an existing VPC needs its subnets and the public IP choice; subnets need a VPC', () => {
  refused({ vpcId: 'vpc-0123456789abcdef0' }, /^context subnetIds: is required with vpcId/);
  refused({ vpcId: 'vpc-0123456789abcdef0', subnetIds: 'subnet-0123456789abcdef0' }, /^context assignPublicIp: is required with vpcId/);
  refused({ vpcId: 'vpc-1', subnetIds: 'subnet-0123456789abcdef0' }, /^context vpcId="vpc-1": must look like vpc-/);
  refused({ vpcId: 'vpc-0123456789abcdef0', subnetIds: 'subnet-0123456789abcdef0,sg-0123456789abcdef0', assignPublicIp: false },
    /^context subnetIds="subnet-0123456789abcdef0,sg-0123456789abcdef0": sg-0123456789abcdef0 does not look like subnet-/);
  refused({ vpcId: 'vpc-0123456789abcdef0', subnetIds: 'subnet-0123456789abcdef0,', assignPublicIp: false }, /must be a comma list with no empty item/);
  refused({ subnetIds: 'subnet-0123456789abcdef0' }, /^context subnetIds="subnet-0123456789abcdef0": needs vpcId/);
  refused({ vpcId: 'vpc-0123456789abcdef0', subnetIds: 'subnet-0123456789abcdef0', assignPublicIp: 'yes' }, /^context assignPublicIp="yes": must be true or false$/);
});

test('a new VPC: public IPs follow natGateways, NATs at most one per zone', () => {
  refused({ natGateways: 1, assignPublicIp: true }, /^context assignPublicIp=true: follows natGateways in a new VPC \(natGateways=1 means false\)$/);
  refused({ natGateways: 3, maxAzs: 2 }, /^context natGateways=3: at most one per availability zone \(maxAzs=2\)$/);
  refused({ maxAzs: 0 }, /^context maxAzs=0: must be 1 to 6$/);
});

test('an ECR repository by name or URI, anything else refused', () => {
  assert.deepEqual(read({ ecrRepository: 'stampede' }).repository, { name: 'stampede', tag: 'latest' });
  assert.deepEqual(read({ ecrRepository: 'team/stampede', imageTag: 'v7' }).repository, { name: 'team/stampede', tag: 'v7' });
  assert.deepEqual(read({ ecrRepository: '123456789012.dkr.ecr.us-east-1.amazonaws.com/stampede:v2', imageTag: 'v9' }).repository,
    { account: '123456789012', region: 'us-east-1', name: 'stampede', tag: 'v2' });
  refused({ ecrRepository: 'docker.io/library/stampede' }, /^context ecrRepository="docker.io\/library\/stampede": names another registry \(docker.io\): /);
  refused({ ecrRepository: 'stampede:v1' }, /^context ecrRepository="stampede:v1": a tag goes in imageTag, or give the full URI /);
  refused({ ecrRepository: 'stampede//x' }, /must be a repository name/);
  refused({ ecrRepository: 'Stampede' }, /must be a repository name/);
});

test('an unknown setting is refused, with the one meant when only the case differs', () => {
  refused({ agentCPU: 4096 }, /^context agentCPU: no such setting \(did you mean agentCpu\?\); the settings are vpcId, /);
  refused({ clusterName: 'x' }, /^context clusterName: no such setting; the settings are /);
  // CDK's own keys pass.
  read({ 'aws:cdk:enable-path-metadata': true, '@aws-cdk/core:newStyleStackSynthesis': true, 'cli-telemetry': false, stackName: 'S' });
});

test('without a Dockerfile in the build context the image asset is refused, naming the way out', () => {
  assert.throws(() => synth({}, { imageDirectory: '/nonexistent-stampede-tree' }),
    (e) => e instanceof SettingsError && /^no deploy\/ecs\/Dockerfile under \/nonexistent-stampede-tree to build the image from: .*-c ecrRepository=NAME -c imageTag=TAG$/.test(e.message));
  synth(ECR, { imageDirectory: '/nonexistent-stampede-tree' }); // an ECR image needs no build context
});
