'use strict';
// The IAM policies: no "*" action, each role with only what its program calls, every grant scoped
// to this stack's resources (docs/ecs.md, docs/aws.md).

const test = require('node:test');
const assert = require('node:assert/strict');
const { synth, ECR, logicalId, roleStatements, roleOf, asList } = require('./helpers');

const { template } = synth(ECR);
const id = (type, prefix) => logicalId(template, type, prefix);
const cluster = () => id('AWS::ECS::Cluster', 'Cluster');
const clusterCondition = () => ({ ArnEquals: { 'ecs:cluster': { 'Fn::GetAtt': [cluster(), 'Arn'] } } });
const arn = (service, resource) => ({
  'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:${service}:`, { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ...resource]],
});
const tasksInCluster = () => arn('ecs', [':task/', { Ref: cluster() }, '/*']);
const getAtt = (logical, attr = 'Arn') => ({ 'Fn::GetAtt': [logical, attr] });

const roles = {
  agentTask: () => roleOf(template, 'AWS::ECS::TaskDefinition', 'AgentTaskDefinition', 'TaskRoleArn'),
  agentExec: () => roleOf(template, 'AWS::ECS::TaskDefinition', 'AgentTaskDefinition', 'ExecutionRoleArn'),
  coordTask: () => roleOf(template, 'AWS::ECS::TaskDefinition', 'CoordinatorTaskDefinition', 'TaskRoleArn'),
  coordExec: () => roleOf(template, 'AWS::ECS::TaskDefinition', 'CoordinatorTaskDefinition', 'ExecutionRoleArn'),
  sink: () => roleOf(template, 'AWS::Lambda::Function', 'SinkFunction', 'Role'),
  launcher: () => roleOf(template, 'AWS::Lambda::Function', 'LauncherFunction', 'Role'),
};

// Statements without their Sid, actions as sorted lists: what a policy allows, for comparison.
function allowed(roleId) {
  const { statements, managed } = roleStatements(template, roleId);
  assert.deepEqual(managed, [], `${roleId} has no managed policy`);
  for (const s of statements) assert.equal(s.Effect, 'Allow');
  return statements.map((s) => {
    const out = { Action: asList(s.Action).slice().sort(), Resource: s.Resource };
    if (s.Condition) out.Condition = s.Condition;
    return out;
  });
}

function statementFor(stmts, action) {
  const found = stmts.filter((s) => s.Action.includes(action));
  assert.equal(found.length, 1, `one statement allows ${action}`);
  return found[0];
}

test('no policy anywhere in the stack allows a "*" action or a wildcard action', () => {
  const docs = [];
  for (const p of Object.values(template.findResources('AWS::IAM::Policy'))) docs.push(p.Properties.PolicyDocument);
  for (const r of Object.values(template.findResources('AWS::IAM::Role'))) {
    for (const p of r.Properties.Policies || []) docs.push(p.PolicyDocument);
    assert.equal(r.Properties.ManagedPolicyArns, undefined, 'no managed policy (AWS-managed ones are broader than needed)');
  }
  for (const q of Object.values(template.findResources('AWS::SQS::QueuePolicy'))) docs.push(q.Properties.PolicyDocument);
  assert.ok(docs.length >= 7);
  for (const d of docs) {
    for (const s of asList(d.Statement)) {
      assert.equal(s.NotAction, undefined);
      for (const a of asList(s.Action)) {
        // The queue policies only deny (TLS only); what is allowed names its actions in full.
        if (s.Effect === 'Deny') continue;
        assert.doesNotMatch(a, /\*/, `action ${a} has a wildcard`);
      }
    }
  }
});

test('"*" resources only where AWS allows no other: ecs:DescribeTaskDefinition, ecr:GetAuthorizationToken', () => {
  const starActions = new Set();
  for (const p of Object.values(template.findResources('AWS::IAM::Policy'))) {
    for (const s of asList(p.Properties.PolicyDocument.Statement)) {
      if (asList(s.Resource).includes('*')) asList(s.Action).forEach((a) => starActions.add(a));
    }
  }
  assert.deepEqual([...starActions].sort(), ['ecr:GetAuthorizationToken', 'ecs:DescribeTaskDefinition']);
});

test('agents have no AWS permission: their task role has no policy at all', () => {
  const r = roles.agentTask();
  const { statements, managed } = roleStatements(template, r);
  assert.deepEqual(statements, []);
  assert.deepEqual(managed, []);
  const role = template.findResources('AWS::IAM::Role')[r];
  assert.deepEqual(role.Properties.AssumeRolePolicyDocument.Statement,
    [{ Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'ecs-tasks.amazonaws.com' } }]);
});

test('the execution roles pull the image and write their own log group, nothing else', () => {
  for (const [exec, logs] of [[roles.agentExec(), 'AgentLogs'], [roles.coordExec(), 'CoordinatorLogs']]) {
    assert.deepEqual(allowed(exec), [
      { Action: ['ecr:BatchCheckLayerAvailability', 'ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer'], Resource: arn('ecr', [':repository/stampede']) },
      { Action: ['ecr:GetAuthorizationToken'], Resource: '*' },
      { Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: getAtt(id('AWS::Logs::LogGroup', logs)) },
    ]);
  }
});

test('the coordinator: RunTask the agent family in this cluster, watch and stop its tasks, PassRole the agent roles, send results', () => {
  const stmts = allowed(roles.coordTask());
  assert.deepEqual(statementFor(stmts, 'ecs:RunTask'), {
    Action: ['ecs:RunTask'], Resource: arn('ecs', [':task-definition/Stampede-agent:*']), Condition: clusterCondition(),
  });
  assert.deepEqual(statementFor(stmts, 'ecs:StopTask'), {
    Action: ['ecs:DescribeTasks', 'ecs:StopTask'], Resource: tasksInCluster(), Condition: clusterCondition(),
  });
  assert.deepEqual(statementFor(stmts, 'ecs:TagResource'), {
    Action: ['ecs:TagResource'], Resource: tasksInCluster(), Condition: { StringEquals: { 'ecs:CreateAction': 'RunTask' } },
  });
  assert.deepEqual(statementFor(stmts, 'ecs:DescribeTaskDefinition'), { Action: ['ecs:DescribeTaskDefinition'], Resource: '*' });
  assert.deepEqual(statementFor(stmts, 'iam:PassRole'), {
    Action: ['iam:PassRole'],
    Resource: [getAtt(roles.agentTask()), getAtt(roles.agentExec())],
    Condition: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
  });
  assert.deepEqual(statementFor(stmts, 'sqs:SendMessage'), { Action: ['sqs:SendMessage'], Resource: getAtt(id('AWS::SQS::Queue', 'ResultsQueue')) });
  assert.equal(stmts.length, 6, 'nothing more');
});

test('the sink: receive and delete on the queue, BatchWriteItem on the table, its own logs', () => {
  assert.deepEqual(allowed(roles.sink()), [
    { Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: getAtt(id('AWS::Logs::LogGroup', 'SinkLogs')) },
    {
      Action: ['sqs:ChangeMessageVisibility', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:ReceiveMessage'],
      Resource: getAtt(id('AWS::SQS::Queue', 'ResultsQueue')),
    },
    { Action: ['dynamodb:BatchWriteItem'], Resource: getAtt(id('AWS::DynamoDB::Table', 'ResultsTable')) },
  ]);
});

test('the launcher: RunTask the coordinator family in this cluster, tag it, PassRole the coordinator roles, its own logs', () => {
  assert.deepEqual(allowed(roles.launcher()), [
    { Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: getAtt(id('AWS::Logs::LogGroup', 'LauncherLogs')) },
    { Action: ['ecs:RunTask'], Resource: arn('ecs', [':task-definition/Stampede-coordinator:*']), Condition: clusterCondition() },
    { Action: ['ecs:TagResource'], Resource: tasksInCluster(), Condition: { StringEquals: { 'ecs:CreateAction': 'RunTask' } } },
    {
      Action: ['iam:PassRole'],
      Resource: [getAtt(roles.coordTask()), getAtt(roles.coordExec())],
      Condition: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
    },
  ]);
});

test('every role is assumed only by its service', () => {
  const want = {
    [roles.agentTask()]: 'ecs-tasks.amazonaws.com',
    [roles.agentExec()]: 'ecs-tasks.amazonaws.com',
    [roles.coordTask()]: 'ecs-tasks.amazonaws.com',
    [roles.coordExec()]: 'ecs-tasks.amazonaws.com',
    [roles.sink()]: 'lambda.amazonaws.com',
    [roles.launcher()]: 'lambda.amazonaws.com',
  };
  const all = template.findResources('AWS::IAM::Role');
  assert.deepEqual(Object.keys(all).sort(), Object.keys(want).sort(), 'six roles, no other');
  for (const [r, service] of Object.entries(want)) {
    assert.deepEqual(all[r].Properties.AssumeRolePolicyDocument.Statement, [{ Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: service } }]);
  }
});
