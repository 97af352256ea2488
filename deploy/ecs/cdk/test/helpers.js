'use strict';
// Shared by the tests: synthesize the stack with given context (cdk.json's context first, as the
// CLI would), read the template's IAM statements by the role that holds them, and run the cdk CLI
// in a sandbox with no AWS account and a recording `docker`.

const fs = require('fs');
const path = require('path');
const os = require('os');
const { spawnSync } = require('child_process');
const cdk = require('aws-cdk-lib');
const { Template } = require('aws-cdk-lib/assertions');
const { readSettings } = require('../lib/settings');
const { StampedeStack } = require('../lib/stack');

const APP_DIR = path.resolve(__dirname, '..');
// Each synthesis writes a cloud assembly; the test process keeps them in one directory it removes.
const OUT_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'stampede-cdk-test-'));
process.on('exit', () => fs.rmSync(OUT_ROOT, { recursive: true, force: true }));
const CDK_JSON_CONTEXT = JSON.parse(fs.readFileSync(path.join(APP_DIR, 'cdk.json'), 'utf8')).context;

// An image already in ECR: the tests that are not about the image asset use it.
const ECR = { ecrRepository: 'stampede', imageTag: 'v1' };

function synth(context = {}, extraProps = {}) {
  const outdir = fs.mkdtempSync(path.join(OUT_ROOT, 'out-'));
  const app = new cdk.App({ outdir, context: { ...CDK_JSON_CONTEXT, ...context } });
  const settings = readSettings((k) => app.node.tryGetContext(k), Object.keys(app.node.getAllContext()));
  const stack = new StampedeStack(app, 'Stampede', { settings, ...extraProps });
  return { app, stack, template: Template.fromStack(stack) };
}

function asList(x) {
  return Array.isArray(x) ? x : [x];
}

// The logical id of the one resource of a type whose id starts with prefix.
function logicalId(template, type, prefix) {
  const ids = Object.keys(template.findResources(type)).filter((id) => id.startsWith(prefix));
  if (ids.length !== 1) throw new Error(`expected one ${type} named ${prefix}*, found ${ids.join(', ') || 'none'}`);
  return ids[0];
}

// Every statement attached to the role with this logical id: its AWS::IAM::Policy resources and
// inline policies. Managed policies are returned apart (the stack attaches none).
function roleStatements(template, roleId) {
  const role = template.findResources('AWS::IAM::Role')[roleId];
  if (!role) throw new Error(`no role ${roleId}`);
  const statements = [];
  for (const p of role.Properties.Policies || []) statements.push(...asList(p.PolicyDocument.Statement));
  for (const p of Object.values(template.findResources('AWS::IAM::Policy'))) {
    if (p.Properties.Roles.some((r) => r.Ref === roleId)) statements.push(...asList(p.Properties.PolicyDocument.Statement));
  }
  return { statements, managed: role.Properties.ManagedPolicyArns || [] };
}

// The role a task definition or function names, as a logical id.
function roleOf(template, type, prefix, attribute) {
  const id = logicalId(template, type, prefix);
  const props = template.findResources(type)[id].Properties;
  return props[attribute]['Fn::GetAtt'][0];
}

// The CLI of the pinned aws-cdk package.
const CDK = path.join(APP_DIR, 'node_modules', '.bin', 'cdk');

function tmpdir(t, name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `stampede-cdk-${name}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// An environment with no AWS account in reach (an empty HOME, no credentials, no instance
// metadata) and a `docker` first on PATH that records its calls; dockerCalls() reads them.
function sandbox(t) {
  const home = tmpdir(t, 'home');
  const bin = path.join(home, 'bin');
  fs.mkdirSync(bin);
  const calls = path.join(home, 'docker.calls');
  fs.writeFileSync(path.join(bin, 'docker'), `#!/bin/sh\necho "$*" >> '${calls}'\nexit 1\n`, { mode: 0o755 });
  const env = { PATH: `${bin}:${process.env.PATH}`, HOME: home, AWS_EC2_METADATA_DISABLED: 'true', CDK_DISABLE_CLI_TELEMETRY: 'true' };
  return { env, dockerCalls: () => (fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8') : '') };
}

// Runs `cdk synth` into out with context args; returns the process result and the docker calls.
function cdkSynth(t, out, contextArgs) {
  const box = sandbox(t);
  const args = ['synth', '--no-notices', '--no-version-reporting', '-q', '-o', out, ...contextArgs.flatMap((c) => ['-c', c])];
  const r = spawnSync(CDK, args, { cwd: APP_DIR, env: box.env, encoding: 'utf8', timeout: 120000 });
  return { r, dockerCalls: box.dockerCalls() };
}

module.exports = { synth, ECR, APP_DIR, logicalId, roleStatements, roleOf, asList, tmpdir, sandbox, cdkSynth };
