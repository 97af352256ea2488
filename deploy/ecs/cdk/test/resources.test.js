'use strict';
// The resources of the stack: cluster, task definitions, security groups, queue, table, Lambdas,
// outputs; with the default settings, with settings changed, and with an existing VPC.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Match } = require('aws-cdk-lib/assertions');
const { synth, ECR, logicalId } = require('./helpers');

const { template } = synth(ECR);

function containerOf(t, family) {
  const tds = Object.values(t.findResources('AWS::ECS::TaskDefinition')).filter((r) => r.Properties.Family === family);
  assert.equal(tds.length, 1, `one task definition of family ${family}`);
  assert.equal(tds[0].Properties.ContainerDefinitions.length, 1, `${family} has one container`);
  return { td: tds[0].Properties, c: tds[0].Properties.ContainerDefinitions[0] };
}

test('the cluster has the FARGATE and FARGATE_SPOT capacity providers', () => {
  template.resourceCountIs('AWS::ECS::Cluster', 1);
  template.hasResourceProperties('AWS::ECS::ClusterCapacityProviderAssociations', {
    CapacityProviders: Match.arrayEquals(['FARGATE', 'FARGATE_SPOT']),
    Cluster: { Ref: logicalId(template, 'AWS::ECS::Cluster', 'Cluster') },
  });
});

test('the agent task definition: container "agent" with the image entrypoint, nofile, logs, stop timeout', () => {
  const { td, c } = containerOf(template, 'Stampede-agent');
  assert.equal(c.Name, 'agent');
  assert.equal(c.EntryPoint, undefined, 'the agent runs the image default entrypoint');
  assert.equal(c.Command, undefined);
  assert.deepEqual(td.RequiresCompatibilities, ['FARGATE']);
  assert.equal(td.NetworkMode, 'awsvpc');
  assert.equal(td.Cpu, '2048');
  assert.equal(td.Memory, '4096');
  assert.deepEqual(c.Ulimits, [{ Name: 'nofile', SoftLimit: 1048576, HardLimit: 1048576 }]);
  assert.equal(c.StopTimeout, 30);
  assert.equal(c.LogConfiguration.LogDriver, 'awslogs');
  assert.deepEqual(c.LogConfiguration.Options['awslogs-group'], { Ref: logicalId(template, 'AWS::Logs::LogGroup', 'AgentLogs') });
  assert.deepEqual(c.Image['Fn::Join'][1].slice(-1), ['/stampede:v1']);
});

test('the coordinator task definition: container "coordinator", entryPoint /usr/bin/stampede, port 7400', () => {
  const { td, c } = containerOf(template, 'Stampede-coordinator');
  assert.equal(c.Name, 'coordinator');
  assert.deepEqual(c.EntryPoint, ['/usr/bin/stampede']);
  assert.equal(c.Command, undefined, 'the launcher gives the command per run');
  assert.deepEqual(c.PortMappings, [{ ContainerPort: 7400, Protocol: 'tcp' }]);
  assert.equal(td.Cpu, '1024');
  assert.equal(td.Memory, '2048');
  assert.deepEqual(c.Ulimits, [{ Name: 'nofile', SoftLimit: 1048576, HardLimit: 1048576 }]);
  assert.equal(c.StopTimeout, 60);
  assert.deepEqual(c.LogConfiguration.Options['awslogs-group'], { Ref: logicalId(template, 'AWS::Logs::LogGroup', 'CoordinatorLogs') });
  assert.deepEqual(c.Environment, [
    { Name: 'AWS_REGION', Value: { Ref: 'AWS::Region' } },
  ]);
});

test('every log group keeps logs for logRetentionDays (30 by default)', () => {
  const groups = Object.values(template.findResources('AWS::Logs::LogGroup'));
  assert.equal(groups.length, 4, 'agent, coordinator, sink, launcher');
  for (const g of groups) assert.equal(g.Properties.RetentionInDays, 30);
  assert.deepEqual(groups.map((g) => g.Properties.LogGroupName).sort(),
    ['/stampede/Stampede/agent', '/stampede/Stampede/coordinator', '/stampede/Stampede/launcher', '/stampede/Stampede/sink']);
  const changed = synth({ ...ECR, logRetentionDays: 7 }).template;
  for (const g of Object.values(changed.findResources('AWS::Logs::LogGroup'))) assert.equal(g.Properties.RetentionInDays, 7);
});

test('CPU and memory come from the settings', () => {
  const t = synth({ ...ECR, agentCpu: 4096, agentMemory: 8192, coordinatorCpu: 512, coordinatorMemory: 1024 }).template;
  assert.equal(containerOf(t, 'Stampede-agent').td.Cpu, '4096');
  assert.equal(containerOf(t, 'Stampede-agent').td.Memory, '8192');
  assert.equal(containerOf(t, 'Stampede-coordinator').td.Cpu, '512');
  assert.equal(containerOf(t, 'Stampede-coordinator').td.Memory, '1024');
});

test('security groups: the coordinator lets in TCP 7400 from the agents only, the agents nothing', () => {
  const agentSg = logicalId(template, 'AWS::EC2::SecurityGroup', 'AgentSecurityGroup');
  const coordSg = logicalId(template, 'AWS::EC2::SecurityGroup', 'CoordinatorSecurityGroup');
  for (const id of [agentSg, coordSg]) {
    assert.equal(template.findResources('AWS::EC2::SecurityGroup')[id].Properties.SecurityGroupIngress, undefined);
  }
  const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress'));
  assert.equal(ingress.length, 1, 'exactly one ingress rule in the stack');
  assert.deepEqual(ingress[0].Properties, {
    Description: 'agents dial the coordinator',
    IpProtocol: 'tcp',
    FromPort: 7400,
    ToPort: 7400,
    GroupId: { 'Fn::GetAtt': [coordSg, 'GroupId'] },
    SourceSecurityGroupId: { 'Fn::GetAtt': [agentSg, 'GroupId'] },
  });
});

test('the results queue: SSE, redrive to an encrypted dead-letter queue after 3 receives, TLS only', () => {
  const dlq = logicalId(template, 'AWS::SQS::Queue', 'ResultsDeadLetterQueue');
  const q = logicalId(template, 'AWS::SQS::Queue', 'ResultsQueue');
  const queues = template.findResources('AWS::SQS::Queue');
  assert.equal(Object.keys(queues).length, 2);
  assert.equal(queues[q].Properties.SqsManagedSseEnabled, true);
  assert.equal(queues[dlq].Properties.SqsManagedSseEnabled, true);
  assert.deepEqual(queues[q].Properties.RedrivePolicy, { deadLetterTargetArn: { 'Fn::GetAtt': [dlq, 'Arn'] }, maxReceiveCount: 3 });
  assert.ok(queues[q].Properties.VisibilityTimeout >= 60, 'visibility timeout at least the sink timeout');
  template.hasResourceProperties('AWS::SQS::QueuePolicy', {
    Queues: [{ Ref: q }],
    PolicyDocument: { Statement: [Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })] },
  });
});

test('the results table: testId + sk, on demand, TTL on ttl, point-in-time recovery, retained', () => {
  template.resourceCountIs('AWS::DynamoDB::Table', 1);
  template.hasResource('AWS::DynamoDB::Table', {
    DeletionPolicy: 'Retain',
    Properties: {
      KeySchema: [{ AttributeName: 'testId', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }],
      AttributeDefinitions: Match.arrayWith([{ AttributeName: 'testId', AttributeType: 'S' }, { AttributeName: 'sk', AttributeType: 'S' }]),
      BillingMode: 'PAY_PER_REQUEST',
      TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    },
  });
  synth({ ...ECR, retainResults: false }).template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Delete' });
});

test('the sink Lambda: same image, entryPoint stampede-sink, STAMPEDE_TABLE, SQS source with batch item failures', () => {
  const table = logicalId(template, 'AWS::DynamoDB::Table', 'ResultsTable');
  const fn = logicalId(template, 'AWS::Lambda::Function', 'SinkFunction');
  const props = template.findResources('AWS::Lambda::Function')[fn].Properties;
  assert.equal(props.PackageType, 'Image');
  assert.deepEqual(props.ImageConfig, { EntryPoint: ['/usr/bin/stampede-sink'] });
  assert.deepEqual(props.Environment.Variables, { STAMPEDE_TABLE: { Ref: table } });
  assert.deepEqual(props.Code.ImageUri['Fn::Join'][1].slice(-1), ['/stampede:v1']);
  template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
  template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
    EventSourceArn: { 'Fn::GetAtt': [logicalId(template, 'AWS::SQS::Queue', 'ResultsQueue'), 'Arn'] },
    FunctionName: { Ref: fn },
    FunctionResponseTypes: ['ReportBatchItemFailures'],
    BatchSize: 10,
  });
  const queue = template.findResources('AWS::SQS::Queue')[logicalId(template, 'AWS::SQS::Queue', 'ResultsQueue')];
  assert.ok(queue.Properties.VisibilityTimeout >= props.Timeout, 'SQS requires visibility >= the function timeout');
});

test('the launcher Lambda: entryPoint stampede-launcher and every variable of the contract', () => {
  const fn = logicalId(template, 'AWS::Lambda::Function', 'LauncherFunction');
  const props = template.findResources('AWS::Lambda::Function')[fn].Properties;
  assert.equal(props.FunctionName, 'Stampede-launcher');
  assert.deepEqual(props.ImageConfig, { EntryPoint: ['/usr/bin/stampede-launcher'] });
  const familyRev = (prefix) => ({ 'Fn::Select': [1, { 'Fn::Split': ['/', { Ref: logicalId(template, 'AWS::ECS::TaskDefinition', prefix) }] }] });
  assert.deepEqual(props.Environment.Variables, {
    STAMPEDE_CLUSTER: { Ref: logicalId(template, 'AWS::ECS::Cluster', 'Cluster') },
    STAMPEDE_COORDINATOR_TASK_DEFINITION: familyRev('CoordinatorTaskDefinition'),
    STAMPEDE_AGENT_TASK_DEFINITION: familyRev('AgentTaskDefinition'),
    STAMPEDE_SUBNETS: { 'Fn::Join': [',', [{ Ref: logicalId(template, 'AWS::EC2::Subnet', 'VpcpublicSubnet1') }, { Ref: logicalId(template, 'AWS::EC2::Subnet', 'VpcpublicSubnet2') }]] },
    STAMPEDE_COORDINATOR_SECURITY_GROUPS: { 'Fn::GetAtt': [logicalId(template, 'AWS::EC2::SecurityGroup', 'CoordinatorSecurityGroup'), 'GroupId'] },
    STAMPEDE_AGENT_SECURITY_GROUPS: { 'Fn::GetAtt': [logicalId(template, 'AWS::EC2::SecurityGroup', 'AgentSecurityGroup'), 'GroupId'] },
    STAMPEDE_ASSIGN_PUBLIC_IP: 'ENABLED',
    STAMPEDE_SQS_QUEUE_URL: { Ref: logicalId(template, 'AWS::SQS::Queue', 'ResultsQueue') },
    STAMPEDE_TABLE: { Ref: logicalId(template, 'AWS::DynamoDB::Table', 'ResultsTable') },
  });
});

test('a new VPC has no NAT by default: tasks in public subnets with public IPs', () => {
  template.resourceCountIs('AWS::EC2::VPC', 1);
  template.resourceCountIs('AWS::EC2::NatGateway', 0);
  template.resourceCountIs('AWS::EC2::Subnet', 4);
  template.hasOutput('AssignPublicIp', { Value: 'ENABLED' });
});

test('natGateways=1: one NAT, tasks in the private subnets without public IPs', () => {
  const t = synth({ ...ECR, natGateways: 1 }).template;
  t.resourceCountIs('AWS::EC2::NatGateway', 1);
  const fn = Object.values(t.findResources('AWS::Lambda::Function')).find((f) => f.Properties.FunctionName === 'Stampede-launcher');
  const env = fn.Properties.Environment.Variables;
  assert.equal(env.STAMPEDE_ASSIGN_PUBLIC_IP, 'DISABLED');
  const subnets = env.STAMPEDE_SUBNETS['Fn::Join'][1].map((r) => r.Ref);
  assert.equal(subnets.length, 2);
  for (const s of subnets) assert.match(s, /^VpcprivateSubnet[12]Subnet/);
});

test('an existing VPC by id: no VPC made, its subnets and the security groups in it', () => {
  const t = synth({
    ...ECR, vpcId: 'vpc-0123456789abcdef0', subnetIds: 'subnet-0aaaaaaaaaaaaaaa1,subnet-0aaaaaaaaaaaaaaa2', assignPublicIp: 'false',
  }).template;
  t.resourceCountIs('AWS::EC2::VPC', 0);
  t.resourceCountIs('AWS::EC2::Subnet', 0);
  for (const sg of Object.values(t.findResources('AWS::EC2::SecurityGroup'))) assert.equal(sg.Properties.VpcId, 'vpc-0123456789abcdef0');
  const fn = Object.values(t.findResources('AWS::Lambda::Function')).find((f) => f.Properties.FunctionName === 'Stampede-launcher');
  assert.equal(fn.Properties.Environment.Variables.STAMPEDE_SUBNETS, 'subnet-0aaaaaaaaaaaaaaa1,subnet-0aaaaaaaaaaaaaaa2');
  assert.equal(fn.Properties.Environment.Variables.STAMPEDE_ASSIGN_PUBLIC_IP, 'DISABLED');
  t.hasOutput('Subnets', { Value: 'subnet-0aaaaaaaaaaaaaaa1,subnet-0aaaaaaaaaaaaaaa2' });
});

test('an ECR repository by URI: that account, region and tag for the tasks and both Lambdas', () => {
  const t = synth({ ecrRepository: '210987654321.dkr.ecr.eu-west-1.amazonaws.com/load/stampede:2026-12-01' }).template;
  const uris = [
    ...Object.values(t.findResources('AWS::ECS::TaskDefinition')).map((r) => r.Properties.ContainerDefinitions[0].Image),
    ...Object.values(t.findResources('AWS::Lambda::Function')).map((r) => r.Properties.Code.ImageUri),
  ];
  assert.equal(uris.length, 4);
  for (const u of uris) {
    assert.deepEqual(u, { 'Fn::Join': ['', ['210987654321.dkr.ecr.eu-west-1.', { Ref: 'AWS::URLSuffix' }, '/load/stampede:2026-12-01']] });
  }
});

test('stack outputs: everything stampede run --launcher ecs and stampede results need', () => {
  const outputs = template.findOutputs('*');
  for (const name of ['ClusterName', 'AgentTaskDefinitionArn', 'CoordinatorTaskDefinitionArn', 'Subnets', 'AssignPublicIp',
    'AgentSecurityGroupId', 'CoordinatorSecurityGroupId', 'QueueUrl', 'DeadLetterQueueUrl', 'TableName',
    'LauncherFunctionName', 'SinkFunctionName', 'CoordinatorLogGroup', 'AgentLogGroup', 'InvokeCommand', 'RunCommand', 'ResultsCommand']) {
    assert.ok(outputs[name], `output ${name}`);
  }
  const text = (name) => outputs[name].Value['Fn::Join'][1].map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join('');
  const run = text('RunCommand');
  for (const piece of ['stampede run plan.json --launcher ecs --agents 2 --cluster {"Ref":"Cluster',
    ' --task-definition {"Fn::Select":[1,{"Fn::Split":["/",{"Ref":"AgentTaskDefinition', ' --container agent --subnets ',
    ' --security-groups {"Fn::GetAtt":["AgentSecurityGroup', ' --assign-public-ip --sqs-queue-url {"Ref":"ResultsQueue',
    ' --region {"Ref":"AWS::Region"} --headless --advertise tls+tcp://']) {
    assert.ok(run.includes(piece), `RunCommand has ${piece}: ${run}`);
  }
  assert.match(text('ResultsCommand'), /^stampede results RUN_ID --table \{"Ref":"ResultsTable[0-9A-F]+"\} --region \{"Ref":"AWS::Region"\}$/);
  assert.match(text('InvokeCommand'), /^aws lambda invoke --region .* --function-name \{"Ref":"LauncherFunction[0-9A-F]+"\} --cli-binary-format raw-in-base64-out --payload '\{"taskCount": 2, "targetUrl": /);
});
