// The A2A JavaScript SDK's client against a live server: resolve the agent card, stream
// a message to its end, fetch the task; prints what it saw as JSON.
// node a2a_client.cjs <node_modules> '<{"url", "headers", "text"}>'
const path = require("path");
const [modules, raw] = process.argv.slice(2);
// resolved from the cache's node_modules, through the package's own exports map
const fromModules = require("module").createRequire(path.join(modules, "index.js"));
const { ClientFactory } = fromModules("@a2a-js/sdk/client");
const { randomUUID } = require("crypto");

async function main() {
  const config = JSON.parse(raw);
  const client = await new ClientFactory().createFromUrl(config.url);
  const options = { serviceParameters: config.headers };
  const message = {
    messageId: randomUUID(),
    role: 1, // ROLE_USER
    parts: [{ content: { $case: "text", value: config.text } }],
  };
  const events = [];
  for await (const event of client.sendMessageStream({ message }, options)) {
    events.push(event.payload);
  }
  const first = events[0];
  const task = await client.getTask({ id: first.value.id }, options);
  process.stdout.write(JSON.stringify({ events, task }, (key, value) =>
    typeof value === "bigint" ? value.toString() : value));
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
