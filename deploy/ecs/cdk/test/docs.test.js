'use strict';
// docs/deploy-ecs.md and the stack's ready-made commands against the app and the programs: every
// command in the document says whether a test runs it or it needs an account; those marked as
// tested here run as written (cdk synth offline, the cost estimate with the built stampede); the
// settings, outputs and payloads it names are the app's; the RunCommand and InvokeCommand outputs
// are accepted by stampede run --dry-run.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { synth, ECR, APP_DIR, tmpdir, sandbox } = require('./helpers');
const { readSettings, SETTINGS, OTHER_KEYS } = require('../lib/settings');
const { REPO_ROOT } = require('../lib/stack');

const DOC = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'deploy-ecs.md'), 'utf8');

// The ```sh blocks, each as its logical lines (continuations joined).
function shBlocks() {
  const blocks = [];
  for (const m of DOC.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const lines = [];
    let cur = '';
    for (const raw of m[1].split('\n')) {
      cur += raw;
      if (/\\$/.test(raw.replace(/\s+#.*$/, ''))) {
        cur = cur.replace(/\s*#[^'"]*$/, '').replace(/\\$/, ' ');
        continue;
      }
      if (cur.trim()) lines.push(cur);
      cur = '';
    }
    blocks.push({ text: m[1], lines });
  }
  return blocks;
}

const COMMANDS = /^\s*(npm|node_modules\/\.bin\/cdk|aws|docker|stampede|out\(\))\b/;
const MARK = /#\s*(tested: \S.*|account\b.*)$/;

test('every command of the document is marked as tested (and where) or as needing an account', () => {
  const blocks = shBlocks();
  assert.ok(blocks.length >= 10, 'the document has its steps');
  let commands = 0;
  for (const b of blocks) {
    for (const line of b.lines) {
      if (!COMMANDS.test(line)) continue;
      commands++;
      assert.match(line, MARK, `unmarked command: ${line}`);
    }
  }
  assert.ok(commands >= 20, `found ${commands} commands`);
});

test('the tests the document names exist', () => {
  const named = new Set();
  for (const m of DOC.matchAll(/tested(?: by|:) ([^\n]*)/g)) {
    for (const f of m[1].matchAll(/((?:tests\/integration|test)\/[a-z_.]+\.(?:py|js))|\b(test\.sh)\b|\b(test_[a-z_]+\.py)\b/g)) {
      named.add(f[1] || f[2] || f[3]);
    }
  }
  assert.ok(named.size >= 5, [...named].join(', '));
  for (const f of named) {
    const where = f.startsWith('test_') ? path.join(REPO_ROOT, 'tests', 'integration', f)
      : f.startsWith('tests/') ? path.join(REPO_ROOT, f) : path.join(APP_DIR, f);
    // The image and launcher tests come with their own parts of the tree; name only what is here.
    if (!fs.existsSync(where)) {
      assert.ok(['tests/integration/test_container.py', 'tests/integration/test_seed_flow.py', 'test_seed_flow.py'].includes(f),
        `the document names ${f}, which does not exist`);
    }
  }
});

test('every -c setting in the document is one the app accepts, and the settings table lists them all', () => {
  const cdkLines = shBlocks().flatMap((b) => b.lines).filter((l) => l.startsWith('node_modules/.bin/cdk'));
  for (const line of cdkLines) {
    const context = {};
    for (const m of line.matchAll(/-c (\w+)=(\S+)/g)) context[m[1]] = m[2];
    if (Object.keys(context).length) readSettings((k) => context[k], Object.keys(context));
  }
  const table = DOC.slice(DOC.indexOf('### Settings'), DOC.indexOf('## 3.'));
  for (const key of [...SETTINGS.map((s) => s.key), 'stackName']) assert.ok(table.includes(`\`${key}\``), `settings table lists ${key}`);
  assert.ok(OTHER_KEYS.includes('stackName'));
});

test('the outputs the document names are the stack\'s, and it names every one', () => {
  const outputs = Object.keys(synth(ECR).template.findOutputs('*'));
  const section = DOC.slice(DOC.indexOf('## 5.'), DOC.indexOf('## 6.'));
  for (const name of outputs) assert.ok(section.includes(`\`${name}\``), `section 5 names ${name}`);
  for (const m of DOC.matchAll(/\$\(out (\w+)\)/g)) assert.ok(outputs.includes(m[1]), `out ${m[1]} is an output`);
});

test('the document\'s offline cdk synth runs as written', (t) => {
  const lines = shBlocks().flatMap((b) => b.lines).filter((l) => /^node_modules\/\.bin\/cdk synth .*-c ecrRepository=/.test(l));
  assert.equal(lines.length, 1);
  const out = tmpdir(t, 'out');
  const box = sandbox(t);
  const command = `${lines[0].replace(/\s+#.*$/, '')} -o '${out}'`;
  const r = spawnSync('sh', ['-c', command], { cwd: APP_DIR, env: box.env, encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, `${command}: ${r.stderr}`);
  assert.ok(fs.existsSync(path.join(out, 'Stampede.template.json')));
  assert.equal(box.dockerCalls(), '');
});

test('the seed payload of the invoke is the plan the cost estimate reads', () => {
  const seed = /cat > seed\.json <<'EOF'\n([\s\S]*?)\nEOF/.exec(DOC);
  assert.ok(seed);
  const invoke = /--payload '([^']+)'/.exec(DOC.slice(DOC.indexOf('## 7.')));
  assert.ok(invoke);
  assert.deepEqual(JSON.parse(invoke[1]), JSON.parse(seed[1]));
  assert.deepEqual(Object.keys(JSON.parse(seed[1])), ['taskCount', 'targetUrl', 'vus', 'rate', 'duration']);
});

// The built stampede: ST_BIN_DIR (ctest sets it), else the tree's build/bin.
function stampedeBin() {
  const dir = process.env.ST_BIN_DIR || path.join(REPO_ROOT, 'build', 'bin');
  return { dir, found: fs.existsSync(path.join(dir, 'stampede')), required: Boolean(process.env.ST_BIN_DIR) };
}

test('the document\'s cost estimate runs as written and prints the figures it shows', (t) => {
  const bin = stampedeBin();
  if (!bin.found) {
    assert.ok(!bin.required, `ST_BIN_DIR=${bin.dir} has no stampede`);
    t.skip(`no stampede in ${bin.dir}: build the tree (or set ST_BIN_DIR)`);
    return;
  }
  const section = DOC.slice(DOC.indexOf('## 6.'), DOC.indexOf('## 7.'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)[1];
  const dir = tmpdir(t, 'cost');
  const env = {
    PATH: `${bin.dir}:${process.env.PATH}`, HOME: dir, AWS_EC2_METADATA_DISABLED: 'true', AWS_REGION: 'us-east-1',
    // What section 5 reads from the stack's outputs, as a deployed stack would give them.
    CLUSTER: 'Stampede-ClusterEB0386A7-AbCdEf012345', AGENT_TD: 'arn:aws:ecs:us-east-1:123456789012:task-definition/Stampede-agent:1',
    SUBNETS: 'subnet-0a1b2c3d4e5f60718,subnet-0a1b2c3d4e5f60719', AGENT_SG: 'sg-0a1b2c3d4e5f60718',
  };
  const r = spawnSync('sh', ['-ec', block], { cwd: dir, env, encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, `the cost block failed: ${r.stderr}`);
  const shown = /For this payload[^\n]*\n\n```\n([\s\S]*?)```/.exec(section)[1];
  const lines = shown.split('\n').filter((l) => l.trim() && !l.includes('...'));
  assert.ok(lines.length >= 2);
  for (const l of lines) assert.ok(r.stdout.includes(l), `the dry run prints "${l}":\n${r.stdout}`);
  assert.match(r.stdout, /about \$0\.049370 on-demand/);
  assert.match(r.stdout, /"taskDefinition":\s*"Stampede-agent:1"/);
  assert.match(r.stdout, /"subnets":\s*\["subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719"\]/);
});

// An output's Fn::Join with each reference replaced by what a deployed stack would give for it.
function resolveOutput(value, byLogicalPrefix) {
  if (typeof value === 'string') return value;
  const parts = value['Fn::Join'][1].map((x) => {
    if (typeof x === 'string') return x;
    if (x.Ref === 'AWS::Region') return 'us-east-1';
    if (x['Fn::Join']) return resolveOutput(x, byLogicalPrefix);
    const ref = x.Ref || (x['Fn::GetAtt'] && x['Fn::GetAtt'][0]) ||
      (x['Fn::Select'] && `select:${x['Fn::Select'][1]['Fn::Split'][1].Ref}`);
    const hit = Object.keys(byLogicalPrefix).find((p) => ref && ref.startsWith(p));
    assert.ok(hit, `no stand-in for ${JSON.stringify(x)}`);
    return byLogicalPrefix[hit];
  });
  return parts.join(value['Fn::Join'][0]);
}

test('the RunCommand and InvokeCommand outputs are commands stampede accepts', (t) => {
  const bin = stampedeBin();
  if (!bin.found) {
    assert.ok(!bin.required, `ST_BIN_DIR=${bin.dir} has no stampede`);
    t.skip(`no stampede in ${bin.dir}`);
    return;
  }
  const outputs = synth(ECR).template.findOutputs('*');
  const stand = {
    'select:AgentTaskDefinition': 'Stampede-agent:1',
    Cluster: 'Stampede-ClusterEB0386A7-AbCdEf012345',
    VpcpublicSubnet1: 'subnet-0a1b2c3d4e5f60718',
    VpcpublicSubnet2: 'subnet-0a1b2c3d4e5f60719',
    AgentSecurityGroup: 'sg-0a1b2c3d4e5f60718',
    ResultsQueue: 'https://sqs.us-east-1.amazonaws.com/123456789012/Stampede-ResultsQueue7CAAE423-AbCdEf',
    LauncherFunction: 'Stampede-launcher',
  };
  const dir = tmpdir(t, 'outputs');
  // The invoke's payload is the plan the coordinator runs: the run command reads it as plan.json.
  const invoke = resolveOutput(outputs.InvokeCommand.Value, stand);
  const payload = /--payload '([^']+)'/.exec(invoke)[1];
  fs.writeFileSync(path.join(dir, 'plan.json'), payload);
  assert.match(invoke, /^aws lambda invoke --region us-east-1 --function-name Stampede-launcher /);
  const run = resolveOutput(outputs.RunCommand.Value, stand);
  // The size of the task is given so that the dry run needs no DescribeTaskDefinition.
  const command = `${run} --cpu 2048 --memory 4096 --dry-run`;
  const env = { PATH: `${bin.dir}:${process.env.PATH}`, HOME: dir, AWS_EC2_METADATA_DISABLED: 'true' };
  const r = spawnSync('bash', ['-c', command], { cwd: dir, env, encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, `${command}\n${r.stderr}`);
  assert.match(r.stdout, /agents {6}2 \(ecs launcher\), 10 connections each/);
  assert.match(r.stdout, /2 tasks in 1 RunTask calls on cluster Stampede-ClusterEB0386A7-AbCdEf012345 \(FARGATE\), Stampede-agent:1/);
  assert.match(r.stdout, /"securityGroups":\s*\["sg-0a1b2c3d4e5f60718"\]/);
  assert.match(r.stdout, /"assignPublicIp":\s*"ENABLED"/);
  assert.match(r.stdout, /listen {6}tls\+tcp:\/\/0\.0\.0\.0:7400 \(agents dial tls\+tcp:\/\/[0-9.]+:7400\)/);
});

test('the run id is read from the launcher\'s answer as the document shows it', (t) => {
  const section = DOC.slice(DOC.indexOf('## 7.'), DOC.indexOf('## 8.'));
  const answer = /```json\n([\s\S]*?)```/.exec(section)[1];
  const line = shBlocks().flatMap((b) => b.lines).find((l) => l.startsWith('RUN_ID=$('));
  assert.ok(line, 'the document reads RUN_ID');
  const dir = tmpdir(t, 'answer');
  fs.writeFileSync(path.join(dir, 'launch.json'), answer);
  const r = spawnSync('sh', ['-ec', `${line.replace(/\s+#.*$/, '')}\nprintf '%s' "$RUN_ID"`], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, JSON.parse(answer).run_id);
  assert.match(r.stdout, /^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$/, 'the coordinator\'s run id form');
});
