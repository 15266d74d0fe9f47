// LangGraph's JavaScript client: @langchain/langgraph-sdk's Client runs the flows of the
// LangGraph Server API against a live Dockrion server and prints what it saw as JSON.
//
// node langgraph_sdk_client.cjs <node_modules dir> <config JSON: {apiUrl, apiKey, assistant}>
const { createRequire } = require("node:module");
const path = require("node:path");

const [modules, raw] = process.argv.slice(2);
const { Client } = createRequire(path.join(modules, "noop.js"))("@langchain/langgraph-sdk");
const config = JSON.parse(raw);
const ask = (text) => ({ messages: [{ role: "user", content: text }] });

async function collect(stream, limit) {
  const parts = [];
  for await (const part of stream) {
    parts.push({ event: part.event, data: part.data, id: part.id });
    if (limit && parts.length === limit) break;
  }
  return parts;
}

async function main() {
  const client = new Client({ apiUrl: config.apiUrl, apiKey: config.apiKey });
  const out = {};
  const thread = await client.threads.create({ metadata: { topic: config.topic } });
  out.thread = thread;
  out.stream = await collect(
    client.runs.stream(thread.thread_id, config.assistant, {
      input: ask("what is the weather in Paris?"),
      streamMode: ["messages-tuple", "values", "updates", "custom"],
    }),
  );
  out.state = await client.threads.getState(thread.thread_id);
  out.search = await client.threads.search({ metadata: { topic: config.topic } });
  // a background run, joined, cut, and joined again from the last id
  const second = await client.threads.create();
  const run = await client.runs.create(second.thread_id, config.assistant, {
    input: ask("weather in Tokyo?"),
    streamMode: ["messages-tuple", "values"],
  });
  out.created = run;
  const first = await collect(client.runs.joinStream(second.thread_id, run.run_id), 4);
  const rest = await collect(
    client.runs.joinStream(second.thread_id, run.run_id, { lastEventId: first[first.length - 1].id }),
  );
  const whole = await collect(
    client.runs.joinStream(second.thread_id, run.run_id, { lastEventId: "-1" }),
  );
  out.join = { first, rest, whole };
  // an interrupt, resumed with a command
  const third = await client.threads.create();
  out.interrupted = await client.runs.wait(third.thread_id, config.assistant, {
    input: ask("email ana@example.com the agenda"),
  });
  out.interruptedThread = await client.threads.get(third.thread_id);
  out.resumed = await collect(
    client.runs.stream(third.thread_id, config.assistant, {
      command: { resume: { approved: true } },
      streamMode: ["updates", "values"],
    }),
  );
  out.resumedThread = await client.threads.get(third.thread_id);
  out.runs = await client.runs.list(third.thread_id);
  process.stdout.write(JSON.stringify(out));
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
});
