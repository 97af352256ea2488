'use strict';
// The stack's settings, read from CDK context (`cdk.json`, `-c key=value`) and checked before
// anything is built. One table row per setting: its name, default, and how it is parsed.
// A bad value throws a SettingsError naming the context key, the value and what is allowed;
// bin/app.js prints it and exits 2. Nothing here talks to AWS.

class SettingsError extends Error {}

// Fargate's CPU units and, for each, the memory (MiB) it accepts: [min, max, step].
const FARGATE_MEMORY = {
  256: [[512, 512, 1], [1024, 2048, 1024]],
  512: [[1024, 4096, 1024]],
  1024: [[2048, 8192, 1024]],
  2048: [[4096, 16384, 1024]],
  4096: [[8192, 30720, 1024]],
  8192: [[16384, 61440, 4096]],
  16384: [[32768, 122880, 8192]],
};

// CloudWatch Logs accepts only these retention periods (days).
const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
  1096, 1827, 2192, 2557, 2922, 3288, 3653];

function fail(key, value, what) {
  const shown = value === undefined ? '' : `=${JSON.stringify(value)}`;
  throw new SettingsError(`context ${key}${shown}: ${what}`);
}

function parseInt10(key, value) {
  const s = String(value).trim();
  if (!/^[0-9]+$/.test(s)) fail(key, value, 'must be a whole number');
  return Number(s);
}

function parseBool(key, value) {
  if (value === true || value === false) return value;
  const s = String(value).trim().toLowerCase();
  if (s === 'true') return true;
  if (s === 'false') return false;
  return fail(key, value, 'must be true or false');
}

function parseString(key, value) {
  const s = String(value).trim();
  if (!s) fail(key, value, 'must not be empty');
  return s;
}

function parseList(key, value) {
  const items = String(value).split(',').map((x) => x.trim());
  if (items.some((x) => !x)) fail(key, value, 'must be a comma list with no empty item');
  return items;
}

function parseRetention(key, value) {
  const days = parseInt10(key, value);
  if (!LOG_RETENTION_DAYS.includes(days)) {
    fail(key, value, `CloudWatch Logs keeps logs for one of ${LOG_RETENTION_DAYS.join(', ')} days`);
  }
  return days;
}

const SETTINGS = [
  { key: 'vpcId', parse: parseString },
  { key: 'subnetIds', parse: parseList },
  { key: 'natGateways', def: 0, parse: parseInt10 },
  { key: 'maxAzs', def: 2, parse: parseInt10 },
  { key: 'assignPublicIp', parse: parseBool },
  { key: 'agentCpu', def: 2048, parse: parseInt10 },
  { key: 'agentMemory', def: 4096, parse: parseInt10 },
  { key: 'coordinatorCpu', def: 1024, parse: parseInt10 },
  { key: 'coordinatorMemory', def: 2048, parse: parseInt10 },
  { key: 'logRetentionDays', def: 30, parse: parseRetention },
  { key: 'ecrRepository', parse: parseString },
  { key: 'imageTag', def: 'latest', parse: parseString },
  { key: 'retainResults', def: true, parse: parseBool },
];

function checkFargate(cpuKey, cpu, memKey, mem) {
  const ranges = FARGATE_MEMORY[cpu];
  if (!ranges) fail(cpuKey, cpu, `Fargate CPU units are one of ${Object.keys(FARGATE_MEMORY).join(', ')}`);
  const fits = ranges.some(([lo, hi, step]) => mem >= lo && mem <= hi && (mem - lo) % step === 0);
  if (!fits) {
    const allowed = ranges.map(([lo, hi, step]) => (lo === hi ? `${lo}` : `${lo} to ${hi} in steps of ${step}`));
    fail(memKey, mem, `with ${cpuKey}=${cpu} Fargate accepts ${allowed.join(' or ')} MiB`);
  }
}

// ECR repository by name ("stampede") or URI ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/stampede[:tag]").
const ECR_NAME = '(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*';
const ECR_URI = new RegExp(`^([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com(?:\\.cn)?/(${ECR_NAME})(?::([A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?$`);
function parseRepository(value, tag) {
  const m = ECR_URI.exec(value);
  if (m) return { account: m[1], region: m[2], name: m[3], tag: m[4] || tag };
  const first = value.split('/')[0];
  if (value.includes('/') && /[.:]/.test(first)) {
    fail('ecrRepository', value, `names another registry (${first}): Fargate tasks and Lambda functions here run images from ECR; push the image to ECR and give its repository name or URI`);
  }
  if (value.length <= 256 && new RegExp(`^${ECR_NAME}$`).test(value)) return { name: value, tag };
  if (new RegExp(`^${ECR_NAME}:`).test(value)) fail('ecrRepository', value, 'a tag goes in imageTag, or give the full URI ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME:TAG');
  return fail('ecrRepository', value, 'must be a repository name (e.g. stampede) or its URI ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME[:TAG]');
}

// Context keys that are not ours but are plain names: the app's own and the CDK CLI's.
const OTHER_KEYS = ['stackName', 'cli-telemetry', 'acknowledged-issue-numbers'];

// A key that is no setting (a typo: agentCPU) would otherwise be ignored without a word.
function checkKnown(allKeys) {
  const known = SETTINGS.map((r) => r.key);
  for (const key of allKeys) {
    // CDK's own keys have a ':' (aws:cdk:...) or start with '@' (feature flags).
    if (key.includes(':') || key.startsWith('@') || known.includes(key) || OTHER_KEYS.includes(key)) continue;
    const near = known.find((k) => k.toLowerCase() === key.toLowerCase());
    throw new SettingsError(`context ${key}: no such setting${near ? ` (did you mean ${near}?)` : ''}; the settings are ${known.join(', ')}`);
  }
}

// Reads every setting through getContext(key) (node.tryGetContext) and returns them checked;
// allKeys, when given, are every context key set (node.getAllContext()), each checked to be known.
function readSettings(getContext, allKeys) {
  if (allKeys) checkKnown(allKeys);
  const s = {};
  for (const row of SETTINGS) {
    const raw = getContext(row.key);
    s[row.key] = raw === undefined || raw === null || raw === '' ? row.def : row.parse(row.key, raw);
  }
  if (s.vpcId !== undefined) {
    if (!/^vpc-[0-9a-f]{8,17}$/.test(s.vpcId)) fail('vpcId', s.vpcId, 'must look like vpc-0123456789abcdef0');
    if (!s.subnetIds) fail('subnetIds', undefined, 'is required with vpcId: the subnets of that VPC the tasks run in');
    for (const id of s.subnetIds) {
      if (!/^subnet-[0-9a-f]{8,17}$/.test(id)) fail('subnetIds', s.subnetIds.join(','), `${id} does not look like subnet-0123456789abcdef0`);
    }
    if (s.subnetIds.length > 16) fail('subnetIds', s.subnetIds.join(','), 'ECS takes at most 16 subnets');
    if (s.assignPublicIp === undefined) {
      fail('assignPublicIp', undefined, 'is required with vpcId: true for public subnets without a NAT, false for private subnets with a NAT or VPC endpoints');
    }
  } else {
    if (s.subnetIds !== undefined) fail('subnetIds', s.subnetIds.join(','), 'needs vpcId (without it the stack makes its own VPC)');
    if (s.maxAzs < 1 || s.maxAzs > 6) fail('maxAzs', s.maxAzs, 'must be 1 to 6');
    if (s.natGateways > s.maxAzs) fail('natGateways', s.natGateways, `at most one per availability zone (maxAzs=${s.maxAzs})`);
    // Without a NAT the tasks need public IPs to pull the image and call AWS; with one they stay private.
    const derived = s.natGateways === 0;
    if (s.assignPublicIp !== undefined && s.assignPublicIp !== derived) {
      fail('assignPublicIp', s.assignPublicIp, `follows natGateways in a new VPC (natGateways=${s.natGateways} means ${derived})`);
    }
    s.assignPublicIp = derived;
  }
  checkFargate('agentCpu', s.agentCpu, 'agentMemory', s.agentMemory);
  checkFargate('coordinatorCpu', s.coordinatorCpu, 'coordinatorMemory', s.coordinatorMemory);
  if (s.ecrRepository !== undefined) s.repository = parseRepository(s.ecrRepository, s.imageTag);
  return s;
}

module.exports = { readSettings, SettingsError, SETTINGS, OTHER_KEYS, FARGATE_MEMORY, LOG_RETENTION_DAYS };
