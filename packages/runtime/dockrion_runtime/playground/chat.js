// The chat view, for an agent whose io_schema.input has a `messages` array: the user's
// messages and the agent's answers as bubbles, the answer's text as its tokens arrive,
// tool calls and their results as cards, an approve / reject panel when the run stops at
// an interrupt (answered with POST /runs/{id}/resume), and a thread field.
//
// Every turn is a background run (POST /runs, followed with playground.js's reader), since
// only a background run can be resumed after an interrupt. On a thread the agent keeps the
// conversation, so each turn sends the new message only; an agent that keeps no threads
// gets the whole conversation each turn, as a stateless chat API expects.
"use strict";

const chatView = (() => {
  const chat = {
    enabled: false,
    history: [], // {role, content} of this conversation, sent when there is no thread
    turn: null, // the agent's answer being written: {article, body, text, wroteText, interrupts}
    earlierShown: false, // whether the thread's earlier messages are on the page
  };

  // --- small DOM helpers ---------------------------------------------------------------------

  const camel = (name) => name.replace(/-(\w)/g, (_, c) => c.toUpperCase());

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("data-")) node.dataset[camel(name.slice(5))] = value;
      else node.setAttribute(name, value);
    }
    node.append(...children);
    return node;
  }

  const pretty = (value) => (typeof value === "string" ? value : JSON.stringify(value, null, 2));

  function scrollDown() {
    const log = $("chat");
    log.scrollTop = log.scrollHeight;
  }

  // --- the thread ----------------------------------------------------------------------------

  const thread = () => $("thread").value.trim();

  // The page's own URL carries the thread (`?thread_id=`), so a reload or a shared link
  // continues the same conversation.
  function setThread(id) {
    $("thread").value = id;
    const url = new URL(location.href);
    if (id) url.searchParams.set("thread_id", id);
    else url.searchParams.delete("thread_id");
    history.replaceState(null, "", url);
    threadNote();
  }

  function threadNote() {
    const id = thread();
    const note = $("thread-note");
    if (!id) {
      note.textContent =
        "A new conversation: the first message starts a thread when the agent keeps them.";
    } else if (!chat.earlierShown && !$("chat").children.length) {
      note.textContent = `Continuing thread ${id}: earlier messages appear with the next answer.`;
    } else {
      note.textContent = "Each message continues this thread: the agent remembers the rest.";
    }
  }

  function newConversation() {
    if (state.controller) return;
    $("chat").replaceChildren();
    chat.history = [];
    chat.turn = null;
    chat.earlierShown = false;
    setThread("");
    $("message").focus();
  }

  // --- bubbles and cards ---------------------------------------------------------------------

  function userBubble(text, where = null) {
    const bubble = el(
      "article",
      { class: "msg user", "aria-label": "You" },
      el("span", { class: "who", text: "You" }),
      el("div", { class: "bubble", text }),
    );
    (where || $("chat")).append(bubble);
    scrollDown();
    return bubble;
  }

  function agentBubble(where = null) {
    const name = $("agent-name").textContent || "Agent";
    const body = el("div", { class: "bubble" });
    const article = el(
      "article",
      { class: "msg agent", "aria-label": name, "data-state": "streaming" },
      el("span", { class: "who", text: name }),
      body,
    );
    (where || $("chat")).append(article);
    scrollDown();
    return { article, body, text: null, wroteText: false, interrupts: [], runId: null };
  }

  function appendText(turn, content) {
    if (!content) return;
    // Text after a tool card starts a paragraph of its own.
    if (!turn.text || turn.body.lastElementChild !== turn.text) {
      turn.text = el("p", { class: "text" });
      turn.body.append(turn.text);
    }
    turn.text.append(content);
    turn.wroteText = true;
    scrollDown();
  }

  function toolCard(turn, { name, arguments: args, call_id: callId }) {
    const card = el(
      "section",
      { class: "tool", "data-state": "running", "aria-label": `Tool call ${name}` },
      el(
        "header",
        {},
        el("span", { class: "label", text: "Tool" }),
        el("code", { class: "name", text: name || "?" }),
        el("span", { class: "badge", text: "running" }),
      ),
      el("pre", { class: "args", text: pretty(args ?? {}) }),
    );
    if (callId) card.dataset.callId = callId;
    turn.body.append(card);
    scrollDown();
    return card;
  }

  function findCard(callId, name) {
    const unanswered = ".tool:not([data-state=done]):not([data-state=error])";
    const open = [...$("chat").querySelectorAll(unanswered)];
    return (
      open.reverse().find((card) => callId && card.dataset.callId === callId) ||
      open.find((card) => card.querySelector(".name").textContent === name)
    );
  }

  function toolResult(turn, { name, content, is_error: isError, call_id: callId }) {
    const card = findCard(callId, name) || toolCard(turn, { name, call_id: callId });
    card.dataset.state = isError ? "error" : "done";
    card.querySelector(".badge").textContent = isError ? "failed" : "done";
    card.querySelector(".result")?.remove();
    card.append(el("pre", { class: "result", text: pretty(content ?? "") }));
    // The agent's next words come after the result, not inside the earlier paragraph.
    if (turn) turn.text = null;
    scrollDown();
  }

  function notice(turn, kind, text) {
    turn.body.append(el("p", { class: `notice ${kind}`, text }));
    scrollDown();
  }

  // --- what an output says -------------------------------------------------------------------

  // OpenAI-style `role`, or langchain-core's `type` (what a LangGraph output holds).
  const ROLES = { human: "user", ai: "assistant" };
  const roleOf = (message) => message?.role || ROLES[message?.type] || message?.type;

  function textOf(content) {
    if (typeof content === "string") return content;
    if (Array.isArray(content))
      return content.map((part) => (typeof part === "string" ? part : part?.text || "")).join("");
    return "";
  }

  // The answer of an agent that did not stream tokens: the last assistant message of the
  // output's messages, or a text field, or the output itself.
  function answerOf(output) {
    if (typeof output === "string") return output;
    const messages = Array.isArray(output?.messages) ? output.messages : null;
    if (messages) {
      const last = [...messages].reverse().find((m) => roleOf(m) === "assistant");
      return last ? textOf(last.content) : "";
    }
    for (const key of ["content", "answer", "output", "text", "response"]) {
      if (typeof output?.[key] === "string") return output[key];
    }
    return null;
  }

  // A thread continued from its id: the messages before this turn, from the output's state.
  function showEarlier(output, turn) {
    chat.earlierShown = true;
    const messages = Array.isArray(output?.messages) ? output.messages : [];
    let lastUser = -1;
    messages.forEach((m, i) => {
      if (roleOf(m) === "user") lastUser = i;
    });
    if (lastUser <= 0) return;
    const earlier = el("div", { class: "earlier", "aria-label": "Earlier in this thread" });
    $("chat").prepend(earlier); // first, so that results find their tool cards
    let answer = null;
    for (const message of messages.slice(0, lastUser)) {
      const role = roleOf(message);
      if (role === "user") {
        answer = null;
        userBubble(textOf(message.content), earlier);
      } else if (role === "assistant") {
        answer ??= agentBubble(earlier);
        answer.article.dataset.state = "done";
        appendText(answer, textOf(message.content));
        for (const call of message.tool_calls || []) {
          toolCard(answer, { name: call.name, arguments: call.args, call_id: call.id });
        }
      } else if (role === "tool") {
        toolResult(answer, {
          name: message.name,
          content: message.content,
          call_id: message.tool_call_id,
          is_error: message.status === "error",
        });
      }
    }
    earlier.append(el("p", { class: "divider", text: "earlier in this thread" }));
    turn.article.scrollIntoView({ block: "end" });
  }

  // --- events of the run being followed --------------------------------------------------------

  function onEvent(type, event) {
    const turn = chat.turn;
    if (!turn) return;
    if (type === "token") appendText(turn, typeof event.content === "string" ? event.content : "");
    else if (type === "tool_call") toolCard(turn, event);
    else if (type === "tool_result") toolResult(turn, event);
    else if (type === "complete") finish(turn, event.output);
    else if (type === "error") {
      notice(turn, "error", `${event.code || "ERROR"}: ${event.error || "the run failed"}`);
      turn.article.dataset.state = "error";
    } else if (type === "cancelled") {
      notice(turn, "cancelled", `Cancelled${event.reason ? `: ${event.reason}` : ""}`);
      turn.article.dataset.state = "cancelled";
    }
  }

  function finish(turn, output) {
    const interrupts = Array.isArray(output?.__interrupt__) ? output.__interrupt__ : [];
    if (!turn.wroteText && !interrupts.length) {
      const answer = answerOf(output);
      if (answer) appendText(turn, answer);
      else if (answer === null) {
        turn.body.append(el("pre", { class: "output", text: pretty(output) }));
      }
    }
    if (!chat.earlierShown && thread()) showEarlier(output, turn);
    turn.interrupts = interrupts;
    turn.article.dataset.state = interrupts.length ? "waiting" : "done";
    if (!interrupts.length && !thread()) {
      const paragraphs = [...turn.body.querySelectorAll(".text")].map((p) => p.textContent);
      chat.history.push({ role: "assistant", content: paragraphs.join("\n") });
    }
  }

  // --- the approval panel --------------------------------------------------------------------

  // Shown once the interrupted run is over, so that answering it starts the next run.
  function approvalPanel(turn, interrupt, index) {
    const value = interrupt?.value;
    const details =
      value && typeof value === "object" && !Array.isArray(value) ? { ...value } : null;
    let question = "The agent asks for a decision";
    if (typeof details?.question === "string" && details.question) {
      question = details.question;
      delete details.question;
    }
    const headingId = `approval-${turn.runId}-${index}`;
    const panel = el(
      "section",
      { class: "approval", role: "group", "aria-labelledby": headingId, "data-run-id": turn.runId },
      el("h3", { id: headingId, text: question }),
    );
    if (details) {
      const list = el("dl");
      for (const [name, item] of Object.entries(details)) {
        list.append(el("dt", { text: name }), el("dd", { text: pretty(item) }));
      }
      panel.append(list);
    } else if (value !== undefined) {
      panel.append(el("pre", { text: pretty(value) }));
    }
    const approve = el("button", { type: "button", class: "approve", text: "Approve" });
    const reject = el("button", { type: "button", class: "reject", text: "Reject" });
    const custom = el("textarea", { class: "mono", rows: "3", "aria-label": "Answer as JSON" });
    custom.value = '{"approved": true}';
    const send = el("button", { type: "button", class: "answer", text: "Send answer" });
    panel.append(
      el("div", { class: "buttons" }, approve, reject),
      el("details", {}, el("summary", { text: "Answer with other JSON" }), custom, send),
    );
    const answer = (label, valueOf) => async () => {
      let resumeWith;
      try {
        resumeWith = valueOf();
      } catch {
        setStatus("error", "The answer is not valid JSON");
        return;
      }
      // One answer per interrupt: the controls go, what was answered stays.
      panel.querySelector(".buttons").remove();
      panel.querySelector("details").remove();
      panel.dataset.answer = label;
      const said =
        { approved: "Approved", rejected: "Rejected" }[label] ||
        `Answered ${JSON.stringify(resumeWith)}`;
      panel.append(el("p", { class: "answered", text: said }));
      $("message").focus({ preventScroll: true });
      await resume(turn, resumeWith, panel);
    };
    approve.addEventListener("click", answer("approved", () => ({ approved: true })));
    reject.addEventListener("click", answer("rejected", () => ({ approved: false })));
    send.addEventListener("click", answer("answered", () => JSON.parse(custom.value)));
    return panel;
  }

  function showApprovals(turn) {
    if (!turn.interrupts.length) return;
    for (const card of turn.body.querySelectorAll(".tool[data-state=running]")) {
      card.dataset.state = "waiting";
      card.querySelector(".badge").textContent = "awaiting approval";
    }
    const panels = turn.interrupts.map((interrupt, i) => approvalPanel(turn, interrupt, i));
    turn.body.append(...panels);
    scrollDown();
    panels[0].querySelector("button.approve").focus({ preventScroll: true });
  }

  // --- runs ----------------------------------------------------------------------------------

  // Follows one run of the conversation into `turn`; `create` starts it and returns the 202.
  async function converse(turn, create) {
    chat.turn = turn;
    const end = await start(
      async (signal) => {
        state.onEvent = onEvent;
        setStatus("running", "Starting");
        let created;
        try {
          created = await create();
        } catch (error) {
          notice(turn, "error", error.message);
          turn.article.dataset.state = "error";
          throw error;
        }
        recordRun(created.run_id, { status: created.status, created: created.created_at });
        note(`run ${created.run_id}`, "run");
        state.runId = created.run_id;
        turn.runId = created.run_id;
        turn.article.dataset.runId = created.run_id;
        if (!thread()) await adoptThread(created.run_id);
        return followRun(created.run_id, signal);
      },
      { keepTimeline: true },
    );
    if (end === null && turn.article.dataset.state === "streaming") {
      turn.article.dataset.state = "stopped";
    }
    if (end === "complete") showApprovals(turn);
    return end;
  }

  // An agent that keeps threads gives a run without one a thread of its own: continue it.
  async function adoptThread(runId) {
    try {
      const run = await api("GET", `/runs/${encodeURIComponent(runId)}`);
      const id = run.metadata?.thread_id;
      if (id) {
        chat.earlierShown = true; // a new thread has nothing earlier
        setThread(id);
      }
    } catch {
      // the thread is a convenience; the turn goes on without it
    }
  }

  async function send() {
    const box = $("message");
    const text = box.value.trim();
    if (!text || state.controller) return;
    box.value = "";
    const id = thread();
    const message = { role: "user", content: text };
    const messages = id ? [message] : [...chat.history, message];
    userBubble(text);
    if (!id) chat.history.push(message);
    const turn = agentBubble();
    const path = id ? `/runs?thread_id=${encodeURIComponent(id)}` : "/runs";
    await converse(turn, () => api("POST", path, { messages }));
    threadNote();
  }

  async function resume(turn, value, panel) {
    const runId = turn.runId;
    turn.interrupts = [];
    turn.article.dataset.state = "streaming";
    const path = `/runs/${encodeURIComponent(runId)}/resume`;
    const end = await converse(turn, () => api("POST", path, value));
    if (end === null) panel.dataset.answer = "failed";
  }

  // --- the view ------------------------------------------------------------------------------

  function show(view) {
    document.body.dataset.view = view;
    $("to-chat").hidden = !chat.enabled || view === "chat";
  }

  return {
    // Whether the agent's input is a conversation: a `messages` array.
    accepts(schema) {
      const messages = schema?.properties?.messages;
      const type = messages?.type;
      return type === "array" || (Array.isArray(type) && type.includes("array"));
    },

    enable() {
      if (chat.enabled) return;
      chat.enabled = true;
      show("chat");
      threadNote();
    },

    init() {
      const fromUrl = new URL(location.href).searchParams.get("thread_id");
      if (fromUrl) $("thread").value = fromUrl;
      threadNote();
      $("composer").addEventListener("submit", (e) => {
        e.preventDefault();
        send();
      });
      $("message").addEventListener("keydown", (e) => {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          send();
        }
      });
      $("chat-stop").addEventListener("click", stop);
      $("new-thread").addEventListener("click", newConversation);
      $("thread").addEventListener("change", () => {
        // Another thread is another conversation.
        $("chat").replaceChildren();
        chat.history = [];
        chat.turn = null;
        chat.earlierShown = false;
        setThread(thread());
      });
      $("to-form").addEventListener("click", () => show("form"));
      $("to-chat").addEventListener("click", () => show("chat"));
    },
  };
})();
