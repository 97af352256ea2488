'use strict';
// Shared by the tests: synthesize the stack with given context (cdk.json's context first, as the
// CLI would), and read the template's IAM statements by the role that holds them.

const fs = require('fs');
const path = require('path');
const cdk = require('aws-cdk-lib');
const { Template } = require('aws-cdk-lib/assertions');
const { readSettings } = require('../lib/settings');
const { StampedeStack } = require('../lib/stack');

const APP_DIR = path.resolve(__dirname, '..');
// Each synthesis writes a cloud assembly; the test process keeps them in one directory it removes.
const OUT_ROOT = fs.mkdtempSync(path.join(require('os').tmpdir(), 'stampede-cdk-test-'));
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

module.exports = { synth, ECR, APP_DIR, logicalId, roleStatements, roleOf, asList };
