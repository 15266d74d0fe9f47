// A real AG-UI front end: @ag-ui/client's HttpAgent runs conversations against a live
// Dockrion server and prints, per run, what the client saw and built, as one JSON line.
//
// node ag_ui_client.cjs <node_modules dir> <config JSON: {url, headers, threadId, turns}>
// Each turn is {text} (a user message) or {approve} (answers the pending interrupt).
const { createRequire } = require("node:module");
const path = require("node:path");

const [modules, raw] = process.argv.slice(2);
const { HttpAgent } = createRequire(path.join(modules, "noop.js"))("@ag-ui/client");
const config = JSON.parse(raw);

async function main() {
  const agent = new HttpAgent({ url: config.url, headers: config.headers, threadId: config.threadId });
  const runs = [];
  for (const [index, turn] of config.turns.entries()) {
    const seen = { events: [], text: "", toolCalls: [], toolResults: [], outcome: null };
    const subscriber = {
      onEvent: ({ event }) => {
        seen.events.push(event.type);
      },
      onTextMessageContentEvent: ({ event }) => {
        seen.text += event.delta;
      },
      onToolCallEndEvent: ({ toolCallName, toolCallArgs }) => {
        seen.toolCalls.push({ name: toolCallName, args: toolCallArgs });
      },
      onToolCallResultEvent: ({ event }) => {
        seen.toolResults.push(event.content);
      },
      onRunFinishedEvent: (params) => {
        seen.outcome = params.outcome;
      },
      onRunFailed: ({ error }) => {
        seen.failed = String(error);
      },
    };
    const parameters = { runId: `run-${index}`, ...(turn.parameters ?? {}) };
    if (turn.text !== undefined) {
      agent.addMessage({ id: `user-${index}`, role: "user", content: turn.text });
    } else {
      const [interrupt] = agent.pendingInterrupts;
      parameters.resume = [
        { interruptId: interrupt.id, status: "resolved", payload: { approved: turn.approve } },
      ];
    }
    const { result, newMessages } = await agent.runAgent(parameters, subscriber);
    runs.push({ ...seen, result: result ?? null, newMessages, pending: agent.pendingInterrupts.length });
  }
  // the conversation as the client holds it after every turn: what a front end would render
  console.log(JSON.stringify({ runs, messages: agent.messages, state: agent.state }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
