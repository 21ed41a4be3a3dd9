// Flex sandbox agent desktop: plain JS, no build step. All text goes through textContent (XSS-safe).
"use strict";

(function () {
  const state = {
    agent: sessionStorage.getItem("flexSandboxAgent") || "",
    available: sessionStorage.getItem("flexSandboxAvailable") === "true",
    agents: [], tasks: [], loadedAt: Date.now(), selected: null, filter: "open", typingTimer: null, lastTypingSent: 0,
  };
  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  async function api(method, path, body) {
    const options = { method, headers: {} };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    if (!response.ok) throw new Error(data.error || data.message || ("HTTP " + response.status));
    return data;
  }

  function notice(text, kind) {
    const box = $("notice");
    box.textContent = text || "";
    box.className = "notice" + (kind === "info" ? " info" : "") + (text ? "" : " hidden");
  }

  function time(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // -- agent --------------------------------------------------------------------
  // Availability is the agent's TaskRouter worker activity (Available / Offline), set on the server.
  function renderAgent() {
    $("agent-name").value = state.agent;
    const pill = $("agent-status");
    pill.textContent = !state.agent ? "offline" : (state.available ? "available as " : "offline as ") + state.agent;
    pill.className = "status-pill " + (state.agent && state.available ? "available" : "offline");
    $("agent-offline").disabled = !state.agent || !state.available;
  }

  async function setAvailable(available) {
    const name = $("agent-name").value.trim();
    if (!name) { $("agent-name").reportValidity(); return; }
    try {
      const worker = await api("POST", "/agent/api/agents", { agent: name, available });
      state.agent = worker.agent;
      state.available = worker.available;
      sessionStorage.setItem("flexSandboxAgent", state.agent);
      sessionStorage.setItem("flexSandboxAvailable", String(state.available));
      notice("");
    } catch (e) {
      notice(e.message);
    }
    renderAgent();
    renderSelected();
    loadAgents().catch(() => {});
  }

  $("agent-form").addEventListener("submit", (event) => { event.preventDefault(); setAvailable(true); });
  $("agent-offline").addEventListener("click", () => setAvailable(false));

  async function loadAgents() {
    const data = await api("GET", "/agent/api/agents");
    state.agents = data.agents || [];
    const me = state.agents.find((a) => a.agent === state.agent);
    if (me) { state.available = me.available; sessionStorage.setItem("flexSandboxAvailable", String(me.available)); renderAgent(); }
    renderTransferTargets();
  }

  function renderTransferTargets() {
    const select = $("transfer-target");
    const current = select.value;
    select.replaceChildren();
    const queue = el("option", null, "Queue: Everyone");
    queue.value = "queue:Everyone";
    select.append(queue);
    for (const worker of state.agents) {
      if (worker.agent === state.agent) continue;
      const option = el("option", null, worker.agent + " (" + worker.activity + ")");
      option.value = "agent:" + worker.agent;
      select.append(option);
    }
    if ([...select.options].some((o) => o.value === current)) select.value = current;
  }

  // -- task list ----------------------------------------------------------------
  async function loadTasks() {
    const data = await api("GET", "/agent/api/tasks");
    state.tasks = data.tasks || [];
    state.loadedAt = Date.now();
    renderTasks();
    if (state.selected) {
      const fresh = state.tasks.find((t) => t.sid === state.selected.sid);
      if (fresh) { state.selected = fresh; renderSelected(); }
    }
  }

  function visibleTasks() {
    return state.tasks.filter((t) => state.filter === "all" || t.status !== "ended" || (state.selected && t.sid === state.selected.sid));
  }

  function modeLabel(task) {
    if (task.kind === "message") return "message";
    return task.mode === "legacy" ? "legacy chat" : "conversations";
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    return s < 60 ? s + "s" : Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
  }

  // Ages tick locally from the server's `age` at load time (no polling).
  function updateAges() {
    const elapsed = (Date.now() - state.loadedAt) / 1000;
    for (const node of document.querySelectorAll("#task-list .age")) {
      node.textContent = "waiting " + duration(Number(node.dataset.age) + elapsed);
    }
  }

  function renderTasks() {
    const list = $("task-list");
    list.replaceChildren();
    const tasks = visibleTasks();
    $("no-tasks").classList.toggle("hidden", tasks.length > 0);
    const waiting = state.tasks.filter((t) => t.status === "pending").length;
    $("queue-summary").textContent = waiting ? waiting + " waiting in queue" : "Queue is empty";
    for (const task of tasks) {
      const item = el("li", "task" + (state.selected && state.selected.sid === task.sid ? " selected" : ""));
      item.dataset.sid = task.sid;
      if (task.channel_sid) item.dataset.channel = task.channel_sid;
      item.dataset.kind = task.kind;
      item.setAttribute("role", "button");
      item.tabIndex = 0;
      item.append(el("div", "name", task.customer_friendly_name || "Customer"));
      const sub = el("div", "sub");
      sub.append(el("span", "badge " + task.status, task.status));
      sub.append(el("span", "badge" + (task.kind === "message" ? " message" : ""), modeLabel(task)));
      if (task.status === "pending") {
        if (task.queue_position) sub.append(el("span", "queue", "#" + task.queue_position));
        const age = el("span", "age", "waiting " + duration(task.age));
        age.dataset.age = String(task.age || 0);
        sub.append(age);
        if (task.target_agent) sub.append(el("span", null, "→ " + task.target_agent));
      } else {
        sub.append(el("span", null, task.agent ? "· " + task.agent : time(task.date_created)));
      }
      item.append(sub);
      item.addEventListener("click", () => select(task.sid));
      item.addEventListener("keydown", (e) => { if (e.key === "Enter") select(task.sid); });
      list.append(item);
    }
  }

  $("task-filter").addEventListener("change", (e) => { state.filter = e.target.value; renderTasks(); });

  async function select(sid) {
    state.selected = state.tasks.find((t) => t.sid === sid) || null;
    notice("");
    renderTasks();
    renderSelected();
    await loadMessages();
  }

  // -- selected task ------------------------------------------------------------
  function renderSelected() {
    const task = state.selected;
    $("task-view").classList.toggle("hidden", !task);
    $("placeholder").classList.toggle("hidden", !!task);
    if (!task) return;
    $("task-customer").textContent = task.customer_friendly_name || "Customer";
    $("task-mode").textContent = modeLabel(task);
    const status = $("task-status");
    status.textContent = task.status + (task.agent ? " · " + task.agent : "");
    status.className = "badge " + task.status;
    $("task-channel").textContent = task.channel_sid || task.sid;
    const mine = task.status === "accepted" && task.agent === state.agent;
    const message = task.kind === "message";
    const routedElsewhere = task.target_agent && task.target_agent !== state.agent;
    $("accept").classList.toggle("hidden", task.status !== "pending" || message);
    $("accept").disabled = !state.agent || !!routedElsewhere;
    $("accept").title = !state.agent ? "Enter your agent name first" : routedElsewhere ? "Transferred to " + task.target_agent : "";
    const wrapping = task.assignment_status === "wrapping" && task.agent === state.agent;
    $("done").classList.toggle("hidden", !(message && (task.status === "pending" || mine)) && !wrapping);
    $("done").textContent = wrapping ? "Complete" : "Done";
    $("done").disabled = !state.agent;
    $("end").classList.toggle("hidden", !mine || message);
    $("composer").classList.toggle("hidden", !mine || message);
    $("transfer").classList.toggle("hidden", !mine || message);
    $("messages").classList.toggle("hidden", message);
    renderMessageTask(task);
    if (routedElsewhere && task.status === "pending") {
      notice("Transferred to " + task.target_agent + ".", "info");
    } else if (task.status === "ended" && task.reason && task.reason.startsWith("Transferred")) {
      notice(task.reason + ".", "info");
    } else if (task.status === "ended" && message) {
      notice("Done" + (task.agent ? " by " + task.agent : "") + ".", "info");
    } else if (wrapping) {
      notice("Chat ended. Wrap up, then Complete.", "info");
    } else if (task.status === "ended") {
      notice(task.ended_by === "customer" ? "The customer left; this chat is closed." : "Chat ended" + (task.ended_by ? " by " + task.ended_by : "") + ".", "info");
    } else if (task.status === "accepted" && task.agent !== state.agent) {
      notice("This task is handled by " + task.agent + ".", "info");
    }
    renderPreEngagement(task.pre_engagement_data);
    renderContext(task);
  }

  function firstObject(...values) {
    return values.find((v) => isPlainObject(v) && Object.keys(v).length) || null;
  }

  // What the bot handed over, wherever the chat carries it: the task's attributes (Flex Insights' `customers`,
  // the bot's `summary`), the pre-engagement data, and what was written back after the chat (`handoff_survey`).
  function renderContext(task) {
    const attributes = isPlainObject(task.attributes) ? task.attributes : {};
    const pre = isPlainObject(task.pre_engagement_data) ? task.pre_engagement_data : {};
    const chat = isPlainObject(task.chat_attributes) ? task.chat_attributes : {};
    const customer = firstObject(attributes.customers, pre.customers, pre.visitor, chat.customers);
    fillBox("customer-box", "customer-details", customer && keyValues(Object.entries(customer), 1));
    const summary = attributes.summary ?? pre.summary ?? chat.summary;
    let summaryNode = null;
    if (typeof summary === "string" && summary.trim()) summaryNode = el("p", "summary-text", summary);
    else if (isPlainObject(summary)) {
      summaryNode = el("div");
      if (summary.text) summaryNode.append(el("p", "summary-text", summary.text));
      const rest = Object.entries(summary).filter(([key]) => key !== "text");
      if (rest.length) summaryNode.append(keyValues(rest, 1));
    }
    fillBox("task-summary-box", "task-summary", summaryNode);
    const survey = firstObject(chat.handoff_survey, attributes.handoff_survey);
    fillBox("survey-box", "survey", survey && keyValues(Object.entries(survey), 1));
  }

  function fillBox(boxId, bodyId, node) {
    $(bodyId).replaceChildren(...(node ? [node] : []));
    $(boxId).classList.toggle("hidden", !node);
  }

  function renderMessageTask(task) {
    const box = $("message-task");
    box.classList.toggle("hidden", task.kind !== "message");
    if (task.kind !== "message") return;
    const attributes = task.attributes || {};
    $("message-body").textContent = attributes.message || attributes.body || "(no message)";
    const context = $("message-context");
    context.replaceChildren();
    const details = isPlainObject(attributes.context) ? attributes.context : {};
    if (Object.keys(details).length) context.append(keyValues(Object.entries(details), 0));
    else context.append(el("p", "muted", "None"));
  }

  function isPlainObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function keyValues(entries, depth) {
    const dl = el("dl", "kv");
    for (const [key, value] of entries) {
      dl.append(el("dt", null, key.replace(/_/g, " ")));
      const dd = el("dd");
      if (isPlainObject(value) && depth < 2 && Object.keys(value).length) dd.append(keyValues(Object.entries(value), depth + 1));
      else if (value === null || value === undefined) dd.textContent = "—";
      else if (Array.isArray(value) && value.every((v) => typeof v !== "object")) dd.textContent = value.join(", ");
      else dd.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
      dl.append(dd);
    }
    return dl;
  }

  function transcriptEntry(item) {
    if (item === null || typeof item !== "object") return { who: "", text: String(item) };
    const who = item.sender || item.role || item.from || item.author || item.event || "";
    const text = item.text ?? item.message ?? item.body ?? item.content ?? JSON.stringify(item);
    return { who: String(who), text: typeof text === "string" ? text : JSON.stringify(text) };
  }

  function renderPreEngagement(data) {
    const box = $("pre-engagement");
    box.replaceChildren();
    if (data === null || data === undefined || (typeof data === "object" && Object.keys(data).length === 0)) {
      box.append(el("p", "muted", "None"));
      return;
    }
    if (typeof data !== "object" || Array.isArray(data)) {
      box.append(el("pre", null, JSON.stringify(data, null, 2)));
      return;
    }
    const rest = Object.entries(data).filter(([key]) => key !== "transcript");
    if (rest.length) box.append(keyValues(rest, 0));
    if (Array.isArray(data.transcript)) {
      box.append(el("h4", null, "Bot conversation"));
      const list = el("ol", "transcript");
      for (const item of data.transcript) {
        const entry = transcriptEntry(item);
        const li = el("li", /bot|assistant/i.test(entry.who) ? "bot" : "user");
        li.append(el("span", "who", entry.who || "—"));
        li.append(document.createTextNode(entry.text));
        list.append(li);
      }
      box.append(list);
    }
  }

  async function loadMessages() {
    if (!state.selected) return;
    const sid = state.selected.sid;
    const data = await api("GET", "/agent/api/tasks/" + encodeURIComponent(sid) + "/messages");
    if (!state.selected || state.selected.sid !== sid) return;
    const list = $("messages");
    list.replaceChildren();
    const summaries = (data.messages || []).filter((m) => m.summary);
    renderSummaryCard(summaries);
    for (const m of data.messages || []) {
      if (m.summary) continue;
      const item = el("li", "message role-" + m.role);
      item.dataset.index = m.index;
      item.append(el("span", "who", (m.role === "customer" ? state.selected.customer_friendly_name || m.author : m.author) + " · " + time(m.date_created)));
      item.append(document.createTextNode(m.body));
      for (const file of m.media || []) item.append(fileView(file));
      list.append(item);
    }
    list.scrollTop = list.scrollHeight;
  }

  // The bot's summary for the agent: posted first, by the bot (not a participant), shown on top as a card.
  function renderSummaryCard(summaries) {
    const body = $("summary-body");
    body.replaceChildren(...summaries.map((m) => el("div", "summary-text", m.body)));
    $("summary-card").classList.toggle("hidden", summaries.length === 0);
  }

  const PREVIEWABLE = ["image/png", "image/jpeg", "image/gif", "image/webp"];

  function size(bytes) {
    if (!bytes) return "";
    return bytes < 1024 ? bytes + " B" : bytes < 1048576 ? Math.round(bytes / 1024) + " KB" : (bytes / 1048576).toFixed(1) + " MB";
  }

  // A file in a message: images previewed, anything else a download link (the URL is pre-signed and short-lived).
  function fileView(file) {
    const name = file.filename || file.content_type || "attachment";
    const box = el("span", "file");
    if (!file.url) {
      box.append(document.createTextNode("📎 " + name + (file.size ? " (" + size(file.size) + ")" : "")));
      return box;
    }
    const link = el("a", null, "📎 " + name);
    link.href = file.url;
    link.target = "_blank";
    link.rel = "noopener";
    if (!PREVIEWABLE.includes(file.content_type)) link.setAttribute("download", file.filename || "");
    box.append(link);
    if (file.size) box.append(document.createTextNode(" (" + size(file.size) + ")"));
    if (PREVIEWABLE.includes(file.content_type)) {
      const img = el("img", "preview");
      img.src = file.url;
      img.alt = name;
      box.append(img);
    }
    return box;
  }

  $("accept").addEventListener("click", async () => {
    if (!state.selected || !state.agent) return;
    try {
      state.selected = await api("POST", "/agent/api/tasks/" + encodeURIComponent(state.selected.sid) + "/accept", { agent: state.agent });
      notice("");
    } catch (e) {
      notice(e.message);
    }
    await loadTasks();
  });

  $("done").addEventListener("click", async () => {
    if (!state.selected || !state.agent) return;
    try {
      state.selected = await api("POST", "/agent/api/tasks/" + encodeURIComponent(state.selected.sid) + "/complete", { agent: state.agent });
    } catch (e) {
      notice(e.message);
    }
    await loadTasks();
  });

  $("transfer").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!state.selected) return;
    const [kind, target] = $("transfer-target").value.split(/:(.*)/s);
    const body = { agent: state.agent };
    body[kind === "agent" ? "to_agent" : "to_queue"] = target;
    try {
      await api("POST", "/agent/api/tasks/" + encodeURIComponent(state.selected.sid) + "/transfer", body);
      await loadTasks();
    } catch (e) {
      notice(e.message);
    }
  });

  $("end").addEventListener("click", async () => {
    if (!state.selected) return;
    try {
      state.selected = await api("POST", "/agent/api/tasks/" + encodeURIComponent(state.selected.sid) + "/end", { agent: state.agent, wrap_up: true });
    } catch (e) {
      notice(e.message);
    }
    await loadTasks();
  });

  $("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("message-input");
    const body = input.value;
    if (!body.trim() || !state.selected) return;
    input.value = "";
    try {
      await api("POST", "/agent/api/tasks/" + encodeURIComponent(state.selected.sid) + "/messages", { agent: state.agent, body });
    } catch (e) {
      input.value = body;
      notice(e.message);
    }
    await loadMessages();
  });

  // Attaching a file: uploaded by the sandbox to its Media Content Service, then sent as a media message (as Flex does).
  $("file-input").addEventListener("change", async () => {
    const input = $("file-input");
    const file = input.files && input.files[0];
    input.value = "";
    if (!file || !state.selected) return;
    const form = new FormData();
    form.append("agent", state.agent);
    form.append("file", file, file.name);
    try {
      const response = await fetch("/agent/api/tasks/" + encodeURIComponent(state.selected.sid) + "/media", { method: "POST", body: form });
      let data = {};
      try { data = await response.json(); } catch (e) { data = {}; }
      if (!response.ok) throw new Error(data.error || ("HTTP " + response.status));
      notice("");
    } catch (e) {
      notice(e.message);
    }
    await loadMessages();
  });

  $("message-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });

  $("message-input").addEventListener("input", () => {
    const now = Date.now();
    if (!state.selected || now - state.lastTypingSent < 2000) return;
    state.lastTypingSent = now;
    api("POST", "/agent/api/tasks/" + encodeURIComponent(state.selected.sid) + "/typing", { agent: state.agent }).catch(() => {});
  });

  function showTyping() {
    $("typing").classList.remove("hidden");
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(() => $("typing").classList.add("hidden"), 3000);
  }

  // -- live updates -------------------------------------------------------------
  function connect() {
    const source = new EventSource("/agent/events");
    source.addEventListener("hello", () => { $("live").className = "live on"; loadTasks().catch(() => {}); loadAgents().catch(() => {}); });
    source.onerror = () => { $("live").className = "live off"; };
    source.onmessage = (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      const current = state.selected && state.selected.channel_sid === data.channel_sid;
      if (data.type === "typing") {
        if (current && data.role !== "agent") showTyping();
        return;
      }
      if (data.type === "worker") { loadAgents().catch(() => {}); return; }
      if (data.type === "task" || data.type === "channel" || data.type === "member") loadTasks().catch(() => {});
      if (current && (data.type === "message" || data.type === "member" || data.type === "channel")) {
        if (data.type === "message") $("typing").classList.add("hidden");
        loadMessages().catch(() => {});
      }
    };
  }

  renderAgent();
  renderSelected();
  loadTasks().catch(() => {});
  loadAgents().catch(() => {});
  setInterval(updateAges, 1000);
  connect();
})();
