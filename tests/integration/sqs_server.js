// Starts the local-aws-sqs emulator on 127.0.0.1:PORT for stampede's integration tests.
// Usage: node sqs_server.js PORT   (NODE_PATH must reach the emulator's node_modules)
const { createSqsServer } = require("local-aws-sqs");

const port = Number(process.argv[2]);
createSqsServer({
  port,
  hostname: "127.0.0.1",
  accountId: "000000000000",
  emulateQueueCreationLifecycle: false,
}).then(() => {
  console.log("sqs ready on " + port);
});
process.on("SIGTERM", () => process.exit(0));
