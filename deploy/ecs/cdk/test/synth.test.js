'use strict';
// `cdk synth` itself, offline: the CLI from node_modules/.bin, no AWS account (an empty HOME, no
// credentials, no instance metadata), and a `docker` on PATH that records any call: synthesizing
// the image asset must not build the image.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { synth, tmpdir, cdkSynth } = require('./helpers');
const { DOCKERFILE, REPO_ROOT } = require('../lib/stack');

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

test('cdk synth with an ECR image: offline, no account, a template with every part', (t) => {
  const out = tmpdir(t, 'out');
  const { r, dockerCalls } = cdkSynth(t, out, ['ecrRepository=stampede', 'imageTag=v1']);
  assert.equal(r.status, 0, `cdk synth failed: ${r.stderr}`);
  assert.equal(dockerCalls, '');
  const template = readJson(path.join(out, 'Stampede.template.json'));
  const types = Object.values(template.Resources).map((x) => x.Type);
  for (const type of ['AWS::ECS::Cluster', 'AWS::ECS::ClusterCapacityProviderAssociations', 'AWS::ECS::TaskDefinition',
    'AWS::SQS::Queue', 'AWS::DynamoDB::Table', 'AWS::Lambda::Function', 'AWS::Lambda::EventSourceMapping', 'AWS::EC2::VPC']) {
    assert.ok(types.includes(type), `template has ${type}`);
  }
  assert.equal(types.filter((x) => x === 'AWS::ECS::TaskDefinition').length, 2);
  assert.equal(types.filter((x) => x === 'AWS::Lambda::Function').length, 2, 'the sink and the launcher, no helper functions');
  assert.deepEqual(readJson(path.join(out, 'Stampede.assets.json')).dockerImages, {}, 'no image to build');
});

test('cdk synth with a bad setting fails and names it', (t) => {
  const out = tmpdir(t, 'out');
  const { r } = cdkSynth(t, out, ['ecrRepository=stampede', 'agentMemory=1000']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /stampede-ecs: context agentMemory=1000: with agentCpu=2048 Fargate accepts 4096 to 16384 in steps of 1024 MiB/);
  assert.ok(!fs.existsSync(path.join(out, 'Stampede.template.json')));
});

test('cdk synth with the image asset: no docker call at synth time; the build context is the tree without build output', (t) => {
  const out = tmpdir(t, 'out');
  const { r, dockerCalls } = cdkSynth(t, out, []);
  assert.equal(dockerCalls, '', 'synth never runs docker');
  if (!fs.existsSync(path.join(REPO_ROOT, DOCKERFILE))) {
    // A tree without the Dockerfile cannot give the asset: the message says so and how to go on.
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /stampede-ecs: no deploy\/ecs\/Dockerfile under .* -c ecrRepository=NAME -c imageTag=TAG/);
    t.diagnostic(`${DOCKERFILE} is not in this tree: checked the refusal; the asset wiring is checked on a scratch context below`);
    return;
  }
  assert.equal(r.status, 0, `cdk synth failed: ${r.stderr}`);
  const images = Object.values(readJson(path.join(out, 'Stampede.assets.json')).dockerImages);
  assert.equal(images.length, 1, 'one image for the tasks and both Lambdas');
  assert.equal(images[0].source.dockerFile, DOCKERFILE);
  assert.equal(images[0].source.platform, 'linux/amd64');
  const staged = path.join(out, images[0].source.directory);
  for (const present of [DOCKERFILE, 'CMakeLists.txt', 'agent', 'coordinator', 'sink']) {
    assert.ok(fs.existsSync(path.join(staged, present)), `build context has ${present}`);
  }
  for (const absent of ['.git', 'build', 'deploy/ecs/cdk']) {
    assert.ok(!fs.existsSync(path.join(staged, absent)), `build context leaves out ${absent}`);
  }
});

test('the image asset on a scratch build context: one image for both task definitions and both Lambdas', (t) => {
  const dir = tmpdir(t, 'context');
  fs.mkdirSync(path.join(dir, 'deploy', 'ecs', 'cdk', 'node_modules'), { recursive: true });
  fs.writeFileSync(path.join(dir, DOCKERFILE), 'FROM scratch\n');
  fs.mkdirSync(path.join(dir, 'build-asan'));
  fs.writeFileSync(path.join(dir, 'build-asan', 'big.o'), 'x');
  const { app, template } = synth({}, { imageDirectory: dir });
  const uris = [
    ...Object.values(template.findResources('AWS::ECS::TaskDefinition')).map((x) => x.Properties.ContainerDefinitions[0].Image),
    ...Object.values(template.findResources('AWS::Lambda::Function')).map((x) => x.Properties.Code.ImageUri),
  ];
  assert.equal(uris.length, 4);
  for (const u of uris) assert.deepEqual(u, uris[0]);
  const text = JSON.stringify(uris[0]);
  assert.match(text, /cdk-hnb659fds-container-assets-/, 'the bootstrap repository of cdk deploy');
  const assembly = app.synth();
  const manifest = readJson(path.join(assembly.directory, 'Stampede.assets.json'));
  const images = Object.values(manifest.dockerImages);
  assert.equal(images.length, 1);
  assert.ok(text.includes(images[0].destinations[Object.keys(images[0].destinations)[0]].imageTag), 'tagged with the asset hash');
  const staged = path.join(assembly.directory, images[0].source.directory);
  assert.ok(fs.existsSync(path.join(staged, DOCKERFILE)));
  assert.ok(!fs.existsSync(path.join(staged, 'build-asan')));
  assert.ok(!fs.existsSync(path.join(staged, 'deploy', 'ecs', 'cdk')));
});
