'use strict';
// The stampede stack: everything a load test on ECS Fargate needs, with results in DynamoDB.
//
//   aws lambda invoke (seed payload) -> launcher Lambda -> RunTask: one coordinator task
//   coordinator task -> RunTask: N agent tasks; agents dial the coordinator on TCP 7400
//   coordinator -> SQS queue (SSE, DLQ after 3 receives) -> sink Lambda -> DynamoDB table
//
// Callers: bin/app.js (cdk synth/deploy) and the tests under test/. The settings are checked by
// lib/settings.js first; this file only builds resources from them. Every role gets only what its
// program calls (docs/ecs.md, docs/aws.md); where AWS allows no narrower resource than "*" the
// statement says so in its Sid and docs/deploy-ecs.md lists it.

const path = require('path');
const cdk = require('aws-cdk-lib');
const ec2 = require('aws-cdk-lib/aws-ec2');
const ecr = require('aws-cdk-lib/aws-ecr');
const ecrAssets = require('aws-cdk-lib/aws-ecr-assets');
const ecs = require('aws-cdk-lib/aws-ecs');
const iam = require('aws-cdk-lib/aws-iam');
const lambda = require('aws-cdk-lib/aws-lambda');
const { SqsEventSource } = require('aws-cdk-lib/aws-lambda-event-sources');
const logs = require('aws-cdk-lib/aws-logs');
const sqs = require('aws-cdk-lib/aws-sqs');
const dynamodb = require('aws-cdk-lib/aws-dynamodb');
const fs = require('fs');
const { SettingsError } = require('./settings');

// The coordinator's control port (the ecs default listen address is tls+tcp://0.0.0.0:7400).
const COORDINATOR_PORT = 7400;
// Fargate's ceiling for open files: an agent holds one socket per connection.
const NOFILE = 1048576;
// The build context of the image is the repository root, four levels above this file.
const REPO_ROOT = path.resolve(__dirname, '..', '..', '..', '..');
const DOCKERFILE = 'deploy/ecs/Dockerfile';
// What the image build never reads: build trees, node packages, this app and its output.
const IMAGE_EXCLUDE = ['.git', 'build*', '**/node_modules', 'deploy/ecs/cdk', '.cache', 'crash-*', '**/__pycache__'];

const SINK_TIMEOUT_S = 60;

class StampedeStack extends cdk.Stack {
  // props.settings: the object lib/settings.js readSettings() returns; props.imageDirectory: the
  // image's build context (default: this repository's root).
  constructor(scope, id, props) {
    super(scope, id, props);
    const s = props.settings;
    this.imageDirectory = props.imageDirectory || REPO_ROOT;
    const retention = s.logRetentionDays;

    const net = this.network(s);
    const image = this.image(s);

    const cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: net.vpc,
      enableFargateCapacityProviders: true, // FARGATE and FARGATE_SPOT (`stampede run --spot`)
    });

    const agentSg = new ec2.SecurityGroup(this, 'AgentSecurityGroup', {
      vpc: net.vpc,
      description: 'stampede agents: nothing comes in; out to the coordinator, the target, AWS',
      allowAllOutbound: true,
    });
    const coordinatorSg = new ec2.SecurityGroup(this, 'CoordinatorSecurityGroup', {
      vpc: net.vpc,
      description: `stampede coordinator: TCP ${COORDINATOR_PORT} from the agents only`,
      allowAllOutbound: true,
    });
    coordinatorSg.addIngressRule(agentSg, ec2.Port.tcp(COORDINATOR_PORT), 'agents dial the coordinator');

    // Results: SQS (encrypted, dead letters after 3 receives) to DynamoDB.
    const dlq = new sqs.Queue(this, 'ResultsDeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: cdk.Duration.days(14),
    });
    const queue = new sqs.Queue(this, 'ResultsQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // AWS's advice for a Lambda consumer: six times the function's timeout.
      visibilityTimeout: cdk.Duration.seconds(6 * SINK_TIMEOUT_S),
      retentionPeriod: cdk.Duration.days(4),
      deadLetterQueue: { queue: dlq, maxReceiveCount: 3 },
    });
    const table = new dynamodb.Table(this, 'ResultsTable', {
      partitionKey: { name: 'testId', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'ttl',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: s.retainResults ? cdk.RemovalPolicy.RETAIN : cdk.RemovalPolicy.DESTROY,
    });

    const agent = this.taskDefinition('agent', s, image, {
      stopTimeoutS: 30,
      roleDescription: 'stampede agent tasks: no AWS permission (an agent calls no AWS API)',
    });
    const coordinator = this.taskDefinition('coordinator', s, image, {
      // Room to stop every agent task and write the summary after SIGTERM.
      stopTimeoutS: 60,
      roleDescription: 'stampede coordinator task: runs, watches and stops agent tasks, sends results',
      entryPoint: ['/usr/bin/stampede'],
      portMappings: [{ containerPort: COORDINATOR_PORT, protocol: ecs.Protocol.TCP }],
      // The forwarder's spool is the image user's ~/.local/state/stampede/spool.
      environment: { AWS_REGION: this.region },
    });

    const taskArnInCluster = this.formatArn({
      service: 'ecs', resource: 'task', resourceName: `${cluster.clusterName}/*`,
    });
    const inCluster = { ArnEquals: { 'ecs:cluster': cluster.clusterArn } };
    const cr = coordinator.taskRole;
    cr.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'RunAgentTasks',
      actions: ['ecs:RunTask'],
      resources: [this.familyArn(agent.family)],
      conditions: inCluster,
    }));
    // RunTask tags its tasks (stampede:run = the run id): ECS authorizes those tags as TagResource.
    const allowTagAtLaunch = (grantee, sid) => grantee.addToPrincipalPolicy(new iam.PolicyStatement({
      sid,
      actions: ['ecs:TagResource'],
      resources: [taskArnInCluster],
      conditions: { StringEquals: { 'ecs:CreateAction': 'RunTask' } },
    }));
    allowTagAtLaunch(cr, 'TagAgentTasksAtLaunch');
    cr.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'WatchAndStopAgentTasks',
      actions: ['ecs:DescribeTasks', 'ecs:StopTask'],
      resources: [taskArnInCluster],
      conditions: inCluster,
    }));
    cr.addToPrincipalPolicy(new iam.PolicyStatement({
      // AWS gives ecs:DescribeTaskDefinition no resource-level permission: "*" is its only resource.
      sid: 'ReadAgentTaskDefinitionResourceStarByAws',
      actions: ['ecs:DescribeTaskDefinition'],
      resources: ['*'],
    }));
    this.allowPassRoles(cr, 'PassAgentRoles', [agent.taskRole, agent.executionRole]);
    cr.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'SendResults',
      actions: ['sqs:SendMessage'],
      resources: [queue.queueArn],
    }));

    const sink = this.imageFunction('Sink', {
      image,
      entryPoint: ['/usr/bin/stampede-sink'],
      description: 'stampede-sink: result messages from SQS to DynamoDB',
      timeoutS: SINK_TIMEOUT_S,
      retention,
      environment: { STAMPEDE_TABLE: table.tableName },
    });
    sink.addEventSource(new SqsEventSource(queue, { batchSize: 10, reportBatchItemFailures: true }));
    sink.addToRolePolicy(new iam.PolicyStatement({
      sid: 'WriteResults',
      actions: ['dynamodb:BatchWriteItem'],
      resources: [table.tableArn],
    }));

    const agentTaskDef = familyRevision(agent.taskDefinitionArn);
    const coordinatorTaskDef = familyRevision(coordinator.taskDefinitionArn);
    const subnetList = cdk.Fn.join(',', net.subnetIds);
    const publicIp = s.assignPublicIp ? 'ENABLED' : 'DISABLED';
    const launcher = this.imageFunction('Launcher', {
      image,
      entryPoint: ['/usr/bin/stampede-launcher'],
      description: 'stampede-launcher: checks a plan or the seed payload and starts one coordinator task',
      timeoutS: 60,
      retention,
      environment: {
        STAMPEDE_CLUSTER: cluster.clusterName,
        STAMPEDE_COORDINATOR_TASK_DEFINITION: coordinatorTaskDef,
        STAMPEDE_AGENT_TASK_DEFINITION: agentTaskDef,
        STAMPEDE_SUBNETS: subnetList,
        STAMPEDE_COORDINATOR_SECURITY_GROUPS: coordinatorSg.securityGroupId,
        STAMPEDE_AGENT_SECURITY_GROUPS: agentSg.securityGroupId,
        STAMPEDE_ASSIGN_PUBLIC_IP: publicIp,
        STAMPEDE_SQS_QUEUE_URL: queue.queueUrl,
        STAMPEDE_TABLE: table.tableName,
      },
    });
    launcher.addToRolePolicy(new iam.PolicyStatement({
      sid: 'RunCoordinatorTask',
      actions: ['ecs:RunTask'],
      resources: [this.familyArn(coordinator.family)],
      conditions: inCluster,
    }));
    allowTagAtLaunch(launcher.role, 'TagCoordinatorTaskAtLaunch');
    this.allowPassRoles(launcher.role, 'PassCoordinatorRoles', [coordinator.taskRole, coordinator.executionRole]);

    const region = this.region;
    const out = (id, value, description) => new cdk.CfnOutput(this, id, { value, description });
    out('ClusterName', cluster.clusterName, 'ECS cluster (--cluster)');
    out('AgentTaskDefinitionArn', agent.taskDefinitionArn, 'agent task definition, container "agent" (--task-definition)');
    out('CoordinatorTaskDefinitionArn', coordinator.taskDefinitionArn, 'coordinator task definition, container "coordinator"');
    out('Subnets', subnetList, 'subnets of the tasks (--subnets)');
    out('AssignPublicIp', publicIp, 'whether tasks get a public IP (--assign-public-ip when ENABLED)');
    out('AgentSecurityGroupId', agentSg.securityGroupId, 'security group of the agents (--security-groups)');
    out('CoordinatorSecurityGroupId', coordinatorSg.securityGroupId, `security group of the coordinator: TCP ${COORDINATOR_PORT} from the agents`);
    out('QueueUrl', queue.queueUrl, 'results queue (--sqs-queue-url)');
    out('DeadLetterQueueUrl', dlq.queueUrl, 'where result messages the sink refused 3 times go');
    out('TableName', table.tableName, 'results table (stampede results --table)');
    out('LauncherFunctionName', launcher.functionName, 'the launcher Lambda: aws lambda invoke with the seed payload or a plan');
    out('SinkFunctionName', sink.functionName, 'the sink Lambda (SQS to DynamoDB)');
    out('CoordinatorLogGroup', this.logGroupName('Coordinator'), 'the coordinator tasks\' logs (aws logs tail NAME --follow)');
    out('AgentLogGroup', this.logGroupName('Agent'), 'the agent tasks\' logs');
    out('InvokeCommand', `aws lambda invoke --region ${region} --function-name ${launcher.functionName} ` +
      `--cli-binary-format raw-in-base64-out --payload '{"taskCount": 2, "targetUrl": "https://example.com/", ` +
      `"vus": 10, "rate": 10, "duration": 60}' launch.json && cat launch.json`,
    'start a run through the launcher (replace the target)');
    out('RunCommand', `stampede run plan.json --launcher ecs --agents 2 --cluster ${cluster.clusterName} ` +
      `--task-definition ${agentTaskDef} --container agent --subnets ${subnetList} ` +
      `--security-groups ${agentSg.securityGroupId} ${s.assignPublicIp ? '--assign-public-ip' : '--no-assign-public-ip'} ` +
      `--sqs-queue-url ${queue.queueUrl} --region ${region} --headless ` +
      `--advertise tls+tcp://$(hostname -I | cut -d' ' -f1):${COORDINATOR_PORT}`,
    'run the coordinator yourself on a host in the VPC that is in the coordinator security group (as an ECS task, drop --advertise)');
    out('ResultsCommand', `stampede results RUN_ID --table ${table.tableName} --region ${region}`,
      'read a run back from DynamoDB (RUN_ID from the launcher answer or the run)');
  }

  // A new VPC (public + private subnets, natGateways NATs) or the existing one by id.
  network(s) {
    if (s.vpcId) {
      const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
        vpcId: s.vpcId,
        availabilityZones: cdk.Fn.getAzs(),
      });
      // Nothing here needs the VPC's subnet lists: the tasks' subnets are subnetIds.
      cdk.Annotations.of(vpc).acknowledgeWarning('@aws-cdk/aws-ec2:vpcAttributeIsListTokenavailabilityZones',
        'the tasks run in the subnetIds given');
      return { vpc, subnetIds: s.subnetIds };
    }
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: s.maxAzs,
      natGateways: s.natGateways,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 20 },
        {
          name: 'private',
          subnetType: s.natGateways > 0 ? ec2.SubnetType.PRIVATE_WITH_EGRESS : ec2.SubnetType.PRIVATE_ISOLATED,
          cidrMask: 20,
        },
      ],
    });
    // With a NAT the tasks stay private; without one they need public subnets and public IPs.
    const subnets = s.natGateways > 0 ? vpc.privateSubnets : vpc.publicSubnets;
    return { vpc, subnetIds: subnets.map((x) => x.subnetId) };
  }

  // The image: built from deploy/ecs/Dockerfile as an asset, or an existing ECR repository's tag.
  image(s) {
    let repository;
    let tag;
    if (s.repository) {
      const r = s.repository;
      repository = r.account
        ? ecr.Repository.fromRepositoryAttributes(this, 'ImageRepository', {
          repositoryName: r.name,
          repositoryArn: `arn:${this.partition}:ecr:${r.region}:${r.account}:repository/${r.name}`,
        })
        : ecr.Repository.fromRepositoryName(this, 'ImageRepository', r.name);
      tag = r.tag;
    } else {
      if (!fs.existsSync(path.join(this.imageDirectory, DOCKERFILE))) {
        throw new SettingsError(`no ${DOCKERFILE} under ${this.imageDirectory} to build the image from: ` +
          'build from a full source tree, or give an image already in ECR with -c ecrRepository=NAME -c imageTag=TAG');
      }
      const asset = new ecrAssets.DockerImageAsset(this, 'Image', {
        directory: this.imageDirectory,
        file: DOCKERFILE,
        exclude: IMAGE_EXCLUDE,
        ignoreMode: cdk.IgnoreMode.DOCKER,
        platform: ecrAssets.Platform.LINUX_AMD64,
      });
      repository = asset.repository;
      tag = asset.imageTag;
    }
    return {
      repository,
      tag,
      container: ecs.ContainerImage.fromEcrRepository(repository, tag),
    };
  }

  // A Fargate task definition of family STACK-NAME with one container NAME (agent, coordinator),
  // the settings' NAMECpu and NAMEMemory, its log group, the nofile ulimit, and its roles.
  taskDefinition(name, s, image, o) {
    const id = name[0].toUpperCase() + name.slice(1);
    const logGroup = this.logGroup(id, s.logRetentionDays);
    const taskRole = new iam.Role(this, `${id}TaskRole`, {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: o.roleDescription,
    });
    const td = new ecs.FargateTaskDefinition(this, `${id}TaskDefinition`, {
      family: `${this.stackName}-${name}`,
      cpu: s[`${name}Cpu`],
      memoryLimitMiB: s[`${name}Memory`],
      taskRole,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    td.addContainer(name, {
      containerName: name,
      image: image.container,
      entryPoint: o.entryPoint,
      environment: o.environment,
      portMappings: o.portMappings,
      essential: true,
      stopTimeout: cdk.Duration.seconds(o.stopTimeoutS),
      ulimits: [{ name: ecs.UlimitName.NOFILE, softLimit: NOFILE, hardLimit: NOFILE }],
      logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: name }),
    });
    td.obtainExecutionRole();
    return td;
  }

  // A Lambda from the stack's image with its own role: logs to its own log group and nothing else.
  imageFunction(id, o) {
    const logGroup = this.logGroup(id, o.retention);
    const role = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: o.description,
    });
    logGroup.grantWrite(role);
    return new lambda.DockerImageFunction(this, `${id}Function`, {
      functionName: `${this.stackName}-${id.toLowerCase()}`,
      description: o.description,
      code: lambda.DockerImageCode.fromEcr(o.image.repository, {
        tagOrDigest: o.image.tag,
        entrypoint: o.entryPoint,
      }),
      architecture: lambda.Architecture.X86_64,
      memorySize: 256,
      timeout: cdk.Duration.seconds(o.timeoutS),
      environment: o.environment,
      role,
      logGroup,
    });
  }

  // /stampede/STACK/agent (coordinator, sink, launcher): names to type in `aws logs tail`.
  logGroupName(id) {
    return `/stampede/${this.stackName}/${id.toLowerCase()}`;
  }

  logGroup(id, retention) {
    return new logs.LogGroup(this, `${id}Logs`, {
      logGroupName: this.logGroupName(id),
      retention,
      removalPolicy: cdk.RemovalPolicy.DESTROY,
    });
  }

  // Every revision of one task definition family.
  familyArn(family) {
    return this.formatArn({ service: 'ecs', resource: 'task-definition', resourceName: `${family}:*` });
  }

  allowPassRoles(grantee, sid, roles) {
    grantee.addToPrincipalPolicy(new iam.PolicyStatement({
      sid,
      actions: ['iam:PassRole'],
      resources: roles.map((r) => r.roleArn),
      conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
    }));
  }
}

// "arn:aws:ecs:R:A:task-definition/FAMILY:REV" -> "FAMILY:REV", the form RunTask and the launcher take.
function familyRevision(taskDefinitionArn) {
  return cdk.Fn.select(1, cdk.Fn.split('/', taskDefinitionArn));
}

module.exports = { StampedeStack, COORDINATOR_PORT, NOFILE, DOCKERFILE, REPO_ROOT };
