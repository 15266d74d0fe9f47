// The playground: a form generated from the agent's io_schema.input, runs streamed live,
// every event in a timeline, background runs that resume by themselves after a cut.
// An agent whose input is `messages` gets the chat view of chat.js instead of the form.
//
// Credentials: the page itself is public static files (a browser cannot send an API key
// header when it loads a page). The user types a key or token into the page; every API
// call below sends it, in `Authorization: Bearer` or a named header. The key stays in the
// page's memory, or in sessionStorage when "remember in this tab" is ticked.
//
// Streams are read with fetch, not EventSource: EventSource cannot POST, cannot send
// headers, and gives up on some refusals. The reader below parses Server-Sent Events,
// remembers the last `id:`, and reconnects with `Last-Event-ID` after any cut, so the run
// log is followed from where it broke and no event is shown twice.
"use strict";

const TERMINAL = new Set(["complete", "error", "cancelled"]);
const MAX_TIMELINE = 2000;
const MAX_BACKOFF_MS = 10000;
const GIVE_UP_MS = 5 * 60 * 1000;
const STORAGE_KEY = "dockrion-playground";

const $ = (id) => document.getElementById(id);
const state = {
  schema: null,
  controller: null, // aborts the stream of the current run
  runId: null,
  connections: 0,
  lastSequence: null,
  events: 0,
  runs: new Map(), // run id -> {status, created}
  onEvent: null, // the chat view's listener while one of its runs is followed
};

// --- credentials ---------------------------------------------------------------------------

function authHeaders() {
  const key = $("key").value.trim();
  if (!key) return {};
  if ($("scheme").value === "bearer") return { Authorization: `Bearer ${key}` };
  return { [$("header-name").value.trim() || "X-API-Key"]: key };
}

function saveSettings() {
  const remember = $("remember").checked;
  const saved = {
    remember,
    scheme: $("scheme").value,
    header: $("header-name").value,
    key: remember ? $("key").value : "",
    runs: [...state.runs.entries()].slice(-50),
  };
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(saved));
}

function loadSettings() {
  let saved = {};
  try {
    saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "{}");
  } catch {
    saved = {};
  }
  $("remember").checked = Boolean(saved.remember);
  if (saved.scheme) $("scheme").value = saved.scheme;
  if (saved.header) $("header-name").value = saved.header;
  if (saved.key) $("key").value = saved.key;
  for (const [id, run] of saved.runs || []) state.runs.set(id, run);
  $("header-name").hidden = $("scheme").value !== "header";
}

// --- HTTP ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(`${status}${code ? " " + code : ""}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

async function refusal(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  return new ApiError(response.status, body.code || "", body.error || response.statusText);
}

async function api(method, path, body) {
  const headers = { ...authHeaders(), Accept: "application/json" };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await refusal(response);
  return response.json();
}

// --- Server-Sent Events over fetch -----------------------------------------------------------

// Yields {id, event, data, retry} for each frame of the response body; comments (`: ...`,
// the keep-alives) are skipped.
async function* frames(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let frame = { id: null, event: "message", data: [], retry: null };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, "");
        buffer = buffer.slice(newline + 1);
        if (line === "") {
          if (frame.data.length || frame.id !== null) {
            yield { ...frame, data: frame.data.join("\n") };
          } else if (frame.retry !== null) {
            yield { ...frame, data: null };
          }
          frame = { id: null, event: "message", data: [], retry: null };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "data") frame.data.push(text);
        else if (field === "event") frame.event = text;
        else if (field === "id") frame.id = text;
        else if (field === "retry" && /^\d+$/.test(text)) frame.retry = Number(text);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

// Follows a background run's log until its terminal event, reconnecting after every cut
// with Last-Event-ID (the last sequence shown), backing off while the server is away.
async function followRun(runId, signal) {
  let retryMs = 1000;
  let failures = 0;
  let brokenSince = null;
  while (!signal.aborted) {
    const headers = { ...authHeaders(), Accept: "text/event-stream" };
    if (state.lastSequence !== null) headers["Last-Event-ID"] = String(state.lastSequence);
    try {
      setConnections(state.connections + 1);
      const response = await fetch(`/runs/${encodeURIComponent(runId)}/events`, {
        headers,
        signal,
        cache: "no-store",
      });
      if (!response.ok) {
        const error = await refusal(response);
        // Refusals other than overload and server trouble will not change by retrying.
        if (response.status !== 429 && response.status < 500) throw error;
        throw Object.assign(error, { retriable: true });
      }
      setStatus("streaming", `Streaming run ${runId}`);
      failures = 0;
      brokenSince = null;
      for await (const frame of frames(response)) {
        if (frame.retry !== null) retryMs = frame.retry;
        if (frame.data === null) continue;
        if (frame.id !== null) {
          const sequence = Number(frame.id);
          if (state.lastSequence !== null && sequence <= state.lastSequence) continue;
          state.lastSequence = sequence;
        }
        const type = showFrame(frame);
        if (TERMINAL.has(type)) return type;
      }
      // The stream ended without a terminal event: a proxy or the server's subscription
      // timeout closed it. Reconnect where it stopped.
    } catch (error) {
      if (signal.aborted) return null;
      if (error instanceof ApiError && !error.retriable) throw error;
    }
    brokenSince ??= Date.now();
    if (Date.now() - brokenSince > GIVE_UP_MS) {
      throw new Error(`the connection has been down for ${GIVE_UP_MS / 60000} minutes`);
    }
    const wait = Math.min(retryMs * 2 ** failures, MAX_BACKOFF_MS);
    failures += 1;
    note(`connection lost; reconnecting in ${(wait / 1000).toFixed(1)} s`);
    setStatus("reconnecting", `Connection lost: reconnecting (attempt ${failures})`);
    await sleep(wait, signal);
  }
  return null;
}

// Pattern A: one POST whose response is the stream. Its log is private to the request,
// so a cut ends the run (the server cancels the agent): there is nothing to resume.
async function streamOnce(payload, signal) {
  const response = await fetch("/invoke/stream", {
    method: "POST",
    headers: { ...authHeaders(), "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(payload),
    signal,
    cache: "no-store",
  });
  if (!response.ok) throw await refusal(response);
  setConnections(state.connections + 1);
  setStatus("streaming", "Streaming POST /invoke/stream");
  try {
    for await (const frame of frames(response)) {
      if (frame.data === null) continue;
      if (frame.id !== null) state.lastSequence = Number(frame.id);
      const type = showFrame(frame);
      if (TERMINAL.has(type)) return type;
    }
  } catch (error) {
    if (signal.aborted) return null;
    throw error;
  }
  if (signal.aborted) return null;
  throw new Error("the stream was cut; a one-request run cannot be resumed (use a background run)");
}

// --- rendering ---------------------------------------------------------------------------------

function setStatus(name, text) {
  const status = $("status");
  status.dataset.state = name;
  status.textContent = text;
}

function setConnections(count) {
  state.connections = count;
  $("status").dataset.connections = String(count);
}

function note(text, kind = "") {
  const item = document.createElement("li");
  item.className = `note ${kind}`.trim();
  item.textContent = text;
  appendTimeline(item);
}

function appendTimeline(item) {
  const list = $("events");
  list.append(item);
  while (list.children.length > MAX_TIMELINE) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}

function showFrame(frame) {
  let event;
  try {
    event = JSON.parse(frame.data);
  } catch {
    event = { type: frame.event, data: frame.data };
  }
  const type = event.type || frame.event;
  if (type === "heartbeat") return type;
  state.events += 1;
  $("event-count").textContent = `(${state.events})`;
  $("status").dataset.lastSequence = frame.id ?? "";
  const item = document.createElement("li");
  item.dataset.type = type;
  item.dataset.sequence = frame.id ?? "";
  const sequence = document.createElement("span");
  sequence.className = "seq mono";
  sequence.textContent = frame.id === null ? "" : `#${frame.id}`;
  const name = document.createElement("span");
  name.className = "type";
  name.textContent = type;
  const detail = document.createElement("code");
  const { id: _id, type: _type, run_id: _run, sequence: _seq, timestamp: _ts, ...rest } = event;
  detail.textContent = JSON.stringify(rest);
  detail.title = JSON.stringify(event, null, 2);
  item.append(sequence, name, detail);
  appendTimeline(item);

  if (type === "started" && state.runId && state.runs.has(state.runId)) {
    recordRun(state.runId, { status: "RUNNING" });
  }
  try {
    state.onEvent?.(type, event);
  } catch (error) {
    // A view that fails to draw an event must not break the stream (nor replay it).
    console.error(error);
  }
  if (type === "token" && typeof event.content === "string") {
    const tokens = $("tokens");
    tokens.append(event.content);
    tokens.scrollTop = tokens.scrollHeight;
  } else if (type === "complete") {
    $("result").textContent = JSON.stringify(event.output, null, 2);
  } else if (type === "error") {
    $("result").textContent = `${event.code || "error"}: ${event.error || ""}`;
  } else if (type === "cancelled") {
    $("result").textContent = `cancelled: ${event.reason || ""}`;
  }
  return type;
}

// --- the form --------------------------------------------------------------------------------

function buildForm(schema) {
  const form = $("form");
  form.replaceChildren();
  const properties = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const names = Object.keys(properties);
  if (names.length === 0) {
    form.append(field("__body__", { type: "object", description: "the JSON body" }, false));
    return;
  }
  for (const name of names) form.append(field(name, properties[name] || {}, required.has(name)));
}

function field(name, spec, required) {
  const wrapper = document.createElement("label");
  wrapper.className = "field";
  const title = document.createElement("span");
  title.textContent = spec.title || (name === "__body__" ? "Body (JSON)" : name);
  if (required) {
    const star = document.createElement("span");
    star.className = "required";
    star.textContent = " *";
    title.append(star);
  }
  wrapper.append(title);
  const type = Array.isArray(spec.type) ? spec.type.find((t) => t !== "null") : spec.type;
  let input;
  if (Array.isArray(spec.enum)) {
    input = document.createElement("select");
    if (!required) input.append(new Option("", ""));
    for (const value of spec.enum) input.append(new Option(String(value), JSON.stringify(value)));
    if (spec.default !== undefined) input.value = JSON.stringify(spec.default);
    input.dataset.kind = "enum";
  } else if (type === "boolean") {
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = spec.default === true;
    input.dataset.kind = "boolean";
    wrapper.classList.add("inline");
  } else if (type === "integer" || type === "number") {
    input = document.createElement("input");
    input.type = "number";
    input.step = type === "integer" ? "1" : "any";
    if (spec.minimum !== undefined) input.min = String(spec.minimum);
    if (spec.maximum !== undefined) input.max = String(spec.maximum);
    if (spec.default !== undefined) input.value = String(spec.default);
    input.dataset.kind = type;
  } else if (type === "string") {
    input = document.createElement("textarea");
    input.rows = 2;
    if (spec.default !== undefined) input.value = spec.default;
    input.dataset.kind = "string";
  } else {
    input = document.createElement("textarea");
    input.rows = 4;
    input.className = "mono";
    input.value = spec.default !== undefined ? JSON.stringify(spec.default, null, 2) : "";
    input.placeholder = type === "array" ? "[ ... ]" : "{ ... }";
    input.dataset.kind = "json";
  }
  input.name = name;
  input.required = required;
  wrapper.append(input);
  if (spec.description) {
    const help = document.createElement("small");
    help.textContent = spec.description;
    wrapper.append(help);
  }
  return wrapper;
}

function readForm() {
  const payload = {};
  for (const input of $("form").querySelectorAll("[name]")) {
    const { name } = input;
    const kind = input.dataset.kind;
    if (kind === "boolean") {
      payload[name] = input.checked;
      continue;
    }
    const raw = input.value;
    if (raw.trim() === "" && kind !== "string") {
      if (input.required) throw new Error(`${name} is required`);
      continue;
    }
    if (kind === "string" && raw === "" && !input.required) continue;
    if (kind === "integer" || kind === "number") payload[name] = Number(raw);
    else if (kind === "enum") payload[name] = JSON.parse(raw);
    else if (kind === "json") {
      try {
        payload[name] = JSON.parse(raw);
      } catch {
        throw new Error(`${name === "__body__" ? "the body" : name} is not valid JSON`);
      }
    } else payload[name] = raw;
  }
  return "__body__" in payload ? payload.__body__ : payload;
}

// --- runs ------------------------------------------------------------------------------------

function renderRuns() {
  const body = $("runs").tBodies[0];
  body.replaceChildren();
  for (const [id, run] of [...state.runs.entries()].reverse()) {
    const row = body.insertRow();
    row.dataset.runId = id;
    const idCell = row.insertCell();
    idCell.className = "mono";
    idCell.textContent = id;
    const status = row.insertCell();
    status.className = "status";
    status.dataset.status = run.status;
    status.textContent = run.status;
    row.insertCell().textContent = run.created ? new Date(run.created).toLocaleTimeString() : "";
    const actions = row.insertCell();
    const watch = document.createElement("button");
    watch.type = "button";
    watch.textContent = "Replay";
    watch.title = "Replay this run's events from the start and follow it";
    watch.addEventListener("click", () => start(() => watchRun(id)));
    actions.append(watch);
  }
}

function recordRun(id, fields) {
  state.runs.set(id, { ...(state.runs.get(id) || {}), ...fields });
  renderRuns();
  saveSettings();
}

async function refreshRuns() {
  for (const [id, run] of state.runs) {
    if (["COMPLETED", "FAILED", "CANCELLED", "GONE"].includes(run.status)) continue;
    try {
      const current = await api("GET", `/runs/${encodeURIComponent(id)}`);
      if (current.status !== run.status) recordRun(id, { status: current.status });
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) recordRun(id, { status: "GONE" });
    }
  }
}

// --- Run / Stop --------------------------------------------------------------------------------

function resetOutput() {
  $("tokens").textContent = "";
  $("result").textContent = "";
  $("events").replaceChildren();
  $("event-count").textContent = "";
  state.events = 0;
  state.lastSequence = null;
  setConnections(0);
}

function setBusy(busy) {
  document.body.dataset.busy = String(busy);
  for (const id of ["run", "send"]) $(id).disabled = busy;
  for (const id of ["stop", "chat-stop"]) $(id).disabled = !busy;
}

// Runs `body` as the page's one active run; resolves with how it ended ("complete",
// "error", "cancelled", or null when stopped or refused). A conversation keeps its
// timeline across runs (`keepTimeline`).
async function start(body, { keepTimeline = false } = {}) {
  if (state.controller) return null;
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  if (keepTimeline) {
    state.lastSequence = null;
    setConnections(0);
    $("tokens").textContent = "";
    $("result").textContent = "";
  } else {
    resetOutput();
  }
  let end = null;
  try {
    end = await body(controller.signal);
    if (end === "complete") setStatus("complete", "Complete");
    else if (end === "error") setStatus("error", "The run failed");
    else if (end === "cancelled") setStatus("cancelled", "Cancelled");
    else setStatus("idle", "Stopped");
  } catch (error) {
    setStatus("error", error.message);
  } finally {
    state.controller = null;
    state.runId = null;
    state.onEvent = null;
    setBusy(false);
    refreshRuns();
  }
  return end;
}

async function watchRun(runId) {
  state.runId = runId;
  setStatus("running", `Following run ${runId}`);
  const end = await followRun(runId, state.controller.signal);
  await refreshRuns();
  return end;
}

async function run() {
  let payload;
  try {
    payload = readForm();
  } catch (error) {
    setStatus("error", error.message);
    return;
  }
  const mode = document.querySelector("input[name=mode]:checked").value;
  await start(async (signal) => {
    setStatus("running", "Starting");
    if (mode === "stream") return streamOnce(payload, signal);
    const created = await api("POST", "/runs", payload);
    recordRun(created.run_id, { status: created.status, created: created.created_at });
    state.runId = created.run_id;
    const end = await followRun(created.run_id, signal);
    await refreshRuns();
    return end;
  });
}

async function stop() {
  const controller = state.controller;
  if (!controller) return;
  if (state.runId) {
    // The run's own log then ends with `cancelled`, which the stream shows.
    setStatus("running", "Cancelling");
    try {
      await api("DELETE", `/runs/${encodeURIComponent(state.runId)}`);
      return;
    } catch (error) {
      note(`cancel refused: ${error.message}`);
    }
  }
  controller.abort(); // Pattern A: leaving the stream cancels the agent
}

// --- start-up ----------------------------------------------------------------------------------

async function loadAgent() {
  try {
    const info = await api("GET", "/info");
    $("agent-name").textContent = info.agent.name;
    $("agent-description").textContent = info.agent.description || "";
    document.title = `${info.agent.name} - playground`;
  } catch {
    // /info is informative only
  }
  try {
    const schema = await api("GET", "/schema");
    state.schema = schema.input_schema;
    buildForm(state.schema);
    if (chatView.accepts(state.schema)) chatView.enable();
    setStatus("idle", "Ready");
  } catch (error) {
    buildForm({});
    const hint = error.status === 401 || error.status === 403 ? " (enter a credential)" : "";
    setStatus("error", `GET /schema: ${error.message}${hint}`);
  }
  $("form").dataset.ready = "true";
}

function init() {
  loadSettings();
  renderRuns();
  $("run").addEventListener("click", run);
  $("stop").addEventListener("click", stop);
  chatView.init();
  $("clear").addEventListener("click", () => {
    if (!state.controller) {
      resetOutput();
      setStatus("idle", "Ready");
    }
  });
  $("form").addEventListener("submit", (e) => {
    e.preventDefault();
    run();
  });
  $("scheme").addEventListener("change", () => {
    $("header-name").hidden = $("scheme").value !== "header";
    saveSettings();
  });
  for (const id of ["key", "header-name", "remember"]) $(id).addEventListener("change", () => {
    saveSettings();
    if (id === "key" && !state.schema) loadAgent();
  });
  loadAgent();
  refreshRuns();
  setInterval(refreshRuns, 3000);
}

// chat.js, loaded after this script, defines chatView: start once both are in.
document.addEventListener("DOMContentLoaded", init);
