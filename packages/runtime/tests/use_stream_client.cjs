// LangGraph's React hook: @langchain/langgraph-sdk's useStream, rendered by React in a
// jsdom document under Node.js, drives a chat against a live Dockrion server: a question
// that calls a tool, then an email that waits for approval, approved through the hook.
// Prints what the page showed after each turn, as JSON.
//
// node use_stream_client.cjs <node_modules dir> <config JSON: {apiUrl, apiKey, assistant}>
const { createRequire } = require("node:module");
const path = require("node:path");

const [modules, raw] = process.argv.slice(2);
const load = createRequire(path.join(modules, "noop.js"));
const { JSDOM } = load("jsdom");
const dom = new JSDOM("<!doctype html><html><body><div id=root></div></body></html>", {
  url: "http://localhost/",
});
globalThis.window = dom.window;
globalThis.document = dom.window.document;
if (globalThis.navigator === undefined) globalThis.navigator = dom.window.navigator;
globalThis.HTMLElement = dom.window.HTMLElement;
globalThis.IS_REACT_ACT_ENVIRONMENT = false;
const React = load("react");
const { createRoot } = load("react-dom/client");
const { useStream } = load("@langchain/langgraph-sdk/react");
const config = JSON.parse(raw);

let current = null;
const h = React.createElement;

function text(content) {
  return typeof content === "string" ? content : JSON.stringify(content);
}

function Chat() {
  const stream = useStream({
    apiUrl: config.apiUrl,
    apiKey: config.apiKey,
    assistantId: config.assistant,
    messagesKey: "messages",
  });
  current = stream;
  return h(
    "main",
    null,
    stream.messages.map((message) =>
      h(
        "p",
        { key: message.id, className: message.type },
        `${message.type}: ${text(message.content)}`,
        (message.tool_calls || []).map((call) =>
          h("span", { key: call.id, className: "tool-call" }, ` [tool ${call.name}]`),
        ),
      ),
    ),
    stream.interrupt ? h("aside", { className: "approval" }, text(stream.interrupt.value)) : null,
    stream.error ? h("pre", { className: "error" }, String(stream.error)) : null,
  );
}

async function until(condition, what) {
  const deadline = Date.now() + 60000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`never: ${what}; page: ${page()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function page() {
  return document.getElementById("root").textContent;
}

function snapshot() {
  const root = document.getElementById("root");
  return {
    lines: [...root.querySelectorAll("p")].map((p) => p.textContent),
    toolCalls: [...root.querySelectorAll(".tool-call")].map((span) => span.textContent),
    approval: root.querySelector(".approval")?.textContent ?? null,
    error: root.querySelector(".error")?.textContent ?? null,
  };
}

async function turn(submit, done, what) {
  await until(() => current !== null && !current.isLoading, "the hook is idle");
  submit();
  await until(() => current.isLoading || done(), `${what} starts`);
  await until(() => !current.isLoading && done(), what);
  return snapshot();
}

async function main() {
  createRoot(document.getElementById("root")).render(h(Chat));
  const out = {};
  out.tool = await turn(
    () => current.submit({ messages: [{ role: "user", content: "what is the weather in Paris?" }] }),
    () => page().includes("Here is what I found"),
    "the weather answer",
  );
  out.waiting = await turn(
    () => current.submit({ messages: [{ role: "user", content: "email ana@example.com the agenda" }] }),
    () => current.interrupt !== undefined && current.interrupt !== null,
    "the approval",
  );
  out.approved = await turn(
    () => current.submit(undefined, { command: { resume: { approved: true } } }),
    () => page().includes("email to ana@example.com sent") && !current.interrupt,
    "the approved email",
  );
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
});
