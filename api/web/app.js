// localrag's web page: plain JavaScript over the HTTP API (README, "HTTP API"). No build step,
// no dependencies. The page only calls the API and shows what it answers; server data is always
// rendered as text (textContent / text nodes), never as HTML.

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "localrag.apiKey"; // sessionStorage only: forgotten when the tab closes
const JOB_POLL_MS = 500;

// ---- DOM helpers ------------------------------------------------------------------------------

/** An element; `text` sets textContent, `on<event>` adds a listener, other props are attributes. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((child) => child !== null && child !== undefined));
  return node;
}

/** Shows `text` in `node`, or hides the node when there is none. */
function say(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;

function formatBytes(bytes) {
  const units = ["bytes", "KB", "MB", "GB"];
  let value = bytes, unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** A path as text nodes that may wrap after each "/" (rather than inside a name). */
function breakable(path) {
  const parts = path.split("/");
  return parts.flatMap((part, index) => (index < parts.length - 1 ? [`${part}/`, el("wbr")] : [part]));
}

/** "guide/install.md, p. 2, Installation > Requirements" for a hit or citation. */
function labelOf(item) {
  return item.label || [item.source || item.document, item.page ? `p. ${item.page}` : "", item.heading].filter(Boolean).join(", ");
}

// ---- dialogs: modal, Escape closes, focus returns to what opened them ---------------------------

const openers = new WeakMap();

function openDialog(dialog, opener = document.activeElement) {
  openers.set(dialog, opener);
  if (!dialog.open) dialog.showModal();
}

for (const dialog of document.querySelectorAll("dialog")) {
  dialog.addEventListener("close", () => {
    const opener = openers.get(dialog);
    if (opener && opener.isConnected) opener.focus();
  });
}
for (const button of document.querySelectorAll("[data-close]")) {
  button.addEventListener("click", () => button.closest("dialog").close());
}

// ---- the API: JSON errors, API keys --------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, type = "error", details = null) {
    super(message);
    this.status = status;
    this.type = type;
    this.details = details;
  }
}

/** The API's error shape {"error": {type, message, details}} as an ApiError. */
function errorFrom(status, text) {
  try {
    const error = JSON.parse(text).error;
    if (error && typeof error === "object") return new ApiError(status, error.message || `HTTP ${status}`, error.type, error.details);
  } catch (_) {
    // not JSON: a proxy's page, say
  }
  return new ApiError(status, `HTTP ${status}`);
}

/** What to tell the user about a failed call; `action` completes "This key cannot …". */
function describe(error, action = "do this") {
  if (error instanceof ApiError && error.status === 403) {
    const scopes = (error.details && error.details.has) || ["read"];
    return `This key cannot ${action} (${scopes.join(", ")} scope).`;
  }
  if (error instanceof ApiError) return error.message;
  if (error.name === "AbortError") return "Stopped.";
  return `The server cannot be reached (${error.message}).`;
}

const apiKey = {
  get: () => sessionStorage.getItem(KEY_STORAGE),
  set(value) {
    sessionStorage.setItem(KEY_STORAGE, value);
    $("forget-key").hidden = false;
  },
  clear() {
    sessionStorage.removeItem(KEY_STORAGE);
    $("forget-key").hidden = true;
  },
};

let keyPrompt = null; // one prompt answers every request that is waiting for a key
let resolveKey = null;

/** Asks for an API key (a modal with a password field); resolves to the key, or null if cancelled. */
function promptForKey(message) {
  if (!keyPrompt) {
    keyPrompt = new Promise((resolve) => (resolveKey = resolve));
    $("key-input").value = "";
    openDialog($("key-dialog"));
  }
  say($("key-error"), message);
  $("key-input").focus();
  return keyPrompt;
}

function settleKey(value) {
  const resolve = resolveKey;
  keyPrompt = resolveKey = null;
  if (value) apiKey.set(value);
  if ($("key-dialog").open) $("key-dialog").close();
  if (resolve) resolve(value || null);
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("key-input").value.trim();
  if (value) settleKey(value);
});
$("key-cancel").addEventListener("click", () => settleKey(null));
$("key-dialog").addEventListener("cancel", () => settleKey(null)); // Escape
$("forget-key").addEventListener("click", () => {
  apiKey.clear();
  refresh();
});

/**
 * Runs send(key) with the stored key; on 401 asks for a key and sends again (once per key given).
 * send returns a Response-like object: {status, ok, text()}.
 */
async function authorized(send) {
  let key = apiKey.get();
  for (;;) {
    const response = await send(key);
    if (response.status !== 401) return response;
    const stored = apiKey.get();
    if (stored && stored !== key) {
      key = stored; // another request got a key meanwhile
      continue;
    }
    const error = errorFrom(401, await response.text());
    if (key) apiKey.clear();
    key = await promptForKey(key ? `That key was not accepted: ${error.message}.` : "");
    if (!key) throw new ApiError(401, "An API key is needed.", "unauthorized");
  }
}

function headers(key, extra) {
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

/** fetch() with the API key; throws ApiError for an error status. */
async function request(method, path, { body, signal, accept = "application/json" } = {}) {
  const json = body !== undefined;
  const response = await authorized((key) =>
    fetch(path, {
      method,
      signal,
      headers: headers(key, json ? { Accept: accept, "Content-Type": "application/json" } : { Accept: accept }),
      body: json ? JSON.stringify(body) : undefined,
    }),
  );
  if (!response.ok) throw errorFrom(response.status, await response.text());
  return response;
}

const getJSON = async (path) => (await request("GET", path)).json();

/** Server-Sent Events of a fetch() response body: {event, data} as they arrive. */
async function* serverSentEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "", name = "", data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, "");
        buffer = buffer.slice(end + 1);
        if (line === "") {
          if (data.length) yield { event: name || "message", data: data.join("\n") };
          name = "";
          data = [];
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const content = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") name = content;
          else if (field === "data") data.push(content);
        }
      }
    }
    if (data.length) yield { event: name || "message", data: data.join("\n") };
  } finally {
    reader.cancel().catch(() => {});
  }
}

// ---- status line -----------------------------------------------------------------------------------

async function loadStatus() {
  try {
    const ready = await (await fetch("/ready", { headers: { Accept: "application/json" } })).json();
    if (!ready.ready) {
      $("status").textContent = (ready.error && ready.error.message) || "No index yet.";
      return;
    }
    const { index, llm } = ready;
    const parts = [`${plural(index.documents, "document")}, ${plural(index.chunks, "passage")}`];
    if (llm.available === false) parts.push("LLM unavailable: search only");
    else if (llm.backend) parts.push(`answers by ${llm.model || llm.backend} (${llm.backend})`);
    $("status").textContent = parts.join(" · ");
  } catch (error) {
    $("status").textContent = describe(error);
  }
}

// ---- asking and searching ------------------------------------------------------------------------

// The conversation of this page: the first question starts a stored one (`remember`), the next
// ones continue it, so a follow-up is searched with what came before; `done` carries the
// `conversation_id` and the `query` that was searched (shown as "Searched for: …").
const conversation = { id: null, turns: [] };

function askBody(question) {
  const body = { question, stream: true };
  if (conversation.id) body.conversation_id = conversation.id;
  else body.remember = true;
  return body;
}

$("new-conversation").addEventListener("click", () => {
  conversation.id = null;
  conversation.turns = [];
  $("new-conversation").hidden = true;
  say($("standalone"), "");
  $("question").focus();
});

let running = null; // the AbortController of the question in progress

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function setMode() {
  const searching = mode() === "search";
  $("ask-submit").textContent = searching ? "Search" : "Ask";
  $("question").placeholder = searching ? "Words or a question to find passages for" : "Ask a question, e.g. How do I back up the index?";
}

function setRunning(controller) {
  running = controller;
  $("ask-submit").disabled = Boolean(controller);
  $("ask-stop").hidden = !controller;
}

$("ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || running) return;
  const controller = new AbortController();
  setRunning(controller);
  say($("ask-error"), "");
  try {
    await (mode() === "search" ? search(question, controller.signal) : ask(question, controller.signal));
  } catch (error) {
    say($("ask-error"), describe(error, mode() === "search" ? "search" : "ask"));
  } finally {
    $("answer").setAttribute("aria-busy", "false");
    setRunning(null);
  }
});
$("ask-stop").addEventListener("click", () => running && running.abort());
for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", setMode);

async function ask(question, signal) {
  $("search-block").hidden = true;
  $("answer-block").hidden = false;
  $("answer").textContent = "";
  $("answer").setAttribute("aria-busy", "true");
  $("answer").classList.add("streaming");
  say($("standalone"), "");
  $("answer-meta").textContent = "Searching the documents…";
  showCitations({ citations: [], context: [] });
  try {
    const response = await request("POST", "/ask", { body: askBody(question), signal, accept: "text/event-stream" });
    if (!(response.headers.get("content-type") || "").includes("text/event-stream")) {
      const answer = await response.json(); // a server that answered JSON after all
      showCitations(answer);
      return finishAnswer(question, answer);
    }
    $("answer-meta").textContent = "Writing the answer…";
    for await (const { event, data } of serverSentEvents(response)) {
      const payload = JSON.parse(data);
      if (event === "token") $("answer").append(payload.text);
      else if (event === "error") say($("ask-error"), `The answer stopped: ${payload.message}`);
      else if (event === "citations") showCitations(payload);
      else if (event === "done") finishAnswer(question, payload);
    }
  } finally {
    $("answer").classList.remove("streaming");
    if ($("answer-meta").textContent.endsWith("…")) $("answer-meta").textContent = "";
  }
}

function finishAnswer(question, done) {
  $("answer").textContent = done.answer; // the final text: markers that name no passage are removed
  if (done.query && done.query !== question) say($("standalone"), `Searched for: ${done.query}`);
  if (done.conversation_id) conversation.id = done.conversation_id;
  $("new-conversation").hidden = !conversation.id;
  conversation.turns.push({ question, answer: done.answer });
  const parts = [];
  if (!done.found) parts.push("No passage was relevant enough");
  if (done.complete === false) parts.push(`Incomplete: ${done.error || "the LLM failed"}`);
  if (done.model) parts.push(done.backend ? `${done.model} (${done.backend})` : done.model);
  if (done.timings && done.timings.total_ms) parts.push(`${(done.timings.total_ms / 1000).toFixed(1)} s`);
  $("answer-meta").textContent = parts.join(" · ");
}

function showCitations({ citations = [], context = [] }) {
  $("citations").replaceChildren(...citations.map((item) => el("li", {}, chip(item))));
  $("citations-heading").hidden = citations.length === 0;
  $("context").replaceChildren(...context.map((item) => el("li", {}, chip(item))));
  $("context-block").hidden = context.length === 0;
}

/** A citation as a button that opens its passage. */
function chip(citation) {
  const button = el(
    "button",
    { type: "button", className: "chip", title: citation.snippet, "data-passage": citation.id },
    citation.number ? el("span", { className: "chip-number", text: String(citation.number) }) : null,
    el("span", { className: "chip-label", text: labelOf(citation) }),
  );
  button.addEventListener("click", () => openPassage(citation, button));
  return button;
}

async function search(query, signal) {
  $("answer-block").hidden = true;
  $("search-block").hidden = false;
  $("hits").replaceChildren();
  $("search-meta").textContent = "Searching…";
  const result = await (await request("POST", "/search", { body: { query }, signal })).json();
  $("search-meta").textContent = result.count
    ? `${plural(result.count, "passage")} · ${result.mode} search · ${Math.round(result.took_ms)} ms`
    : "No passages found.";
  $("hits").replaceChildren(...result.hits.map(hitItem));
}

function hitItem(hit) {
  const open = el("button", { type: "button", className: "link", "data-passage": hit.id, text: labelOf(hit) });
  open.addEventListener("click", () => openPassage(hit, open));
  return el(
    "li",
    { className: "hit" },
    el("div", { className: "hit-head" }, open, el("span", { className: "score", text: `score ${hit.score.toFixed(3)}` })),
    el("p", { className: "hit-text", text: hit.text }),
  );
}

// ---- the passage viewer ---------------------------------------------------------------------------

let shownPassage = null;

/** Opens the passage of a citation (fetched from GET /passages/{id}) or of a search hit (has its text). */
async function openPassage(item, opener) {
  shownPassage = item.id;
  showPassage(item);
  const notes = [];
  if (item.truncated) notes.push("The model saw only the beginning of this passage (shortened to fit its context window).");
  if (item.inferred) notes.push("Cited because the answer shares its words (the answer named no passage).");
  $("passage-note").textContent = notes.join(" ");
  openDialog($("passage"), opener);
  if (typeof item.text === "string") return;
  $("passage-text").textContent = item.snippet || "";
  $("passage-note").textContent = [...notes, "Loading the whole passage…"].join(" ");
  try {
    const passage = await getJSON(`/passages/${encodeURIComponent(item.id)}`);
    if (shownPassage !== item.id) return;
    showPassage({ ...item, ...passage, score: item.score }); // the score the passage was retrieved with
    $("passage-note").textContent = notes.join(" ");
  } catch (error) {
    if (shownPassage !== item.id) return;
    $("passage-note").textContent = [...notes, `The whole passage could not be loaded (${describe(error, "read passages")}); this is its snippet only.`].join(" ");
  }
}

function showPassage(passage) {
  $("passage-title").textContent = passage.source || passage.document;
  const facts = [
    ["Collection", passage.collection || (passage.document || "").split(":")[0] || null],
    ["Page", passage.page],
    ["Heading", passage.heading],
    ["Title", passage.title && passage.title !== passage.heading ? passage.title : null],
    ["Passage", `no. ${passage.chunk + 1} in the document`],
    ["Score", typeof passage.score === "number" ? passage.score.toFixed(3) : null],
  ];
  $("passage-facts").replaceChildren(
    ...facts.filter(([, value]) => value !== null && value !== undefined && value !== "").flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: String(value) })]),
  );
  $("passage-text").textContent = typeof passage.text === "string" ? passage.text : passage.snippet || "";
  $("passage-text").scrollTop = 0;
}

$("passage").addEventListener("click", (event) => {
  if (event.target === $("passage")) $("passage").close(); // a click on the backdrop
});

// ---- documents: list, delete --------------------------------------------------------------------

const sizeOf = (entry) => entry.size_bytes ?? entry.size ?? null;

async function loadDocuments() {
  try {
    const listing = await getJSON("/documents");
    say($("documents-error"), "");
    showDocuments(listing.documents);
  } catch (error) {
    say($("documents-error"), `The documents cannot be listed: ${describe(error, "list documents")}`);
  }
}

function showDocuments(documents) {
  const sized = documents.some((entry) => sizeOf(entry) !== null);
  $("size-column").hidden = !sized;
  $("document-count").textContent = `(${documents.length})`;
  if (!documents.length) {
    $("documents-body").replaceChildren(el("tr", {}, el("td", { colspan: 4, className: "empty", text: "No documents yet: add some above." })));
    return;
  }
  $("documents-body").replaceChildren(
    ...documents.map((entry) => {
      const remove = el("button", { type: "button", className: "quiet small", "aria-label": `Delete ${entry.id}`, text: "Delete" });
      remove.addEventListener("click", () => deleteDocument(entry, remove));
      return el(
        "tr",
        { "data-document": entry.id },
        el(
          "th",
          { scope: "row", title: entry.title || null },
          el("span", { className: "name" }, breakable(entry.source)),
          el("span", { className: "collection", text: [entry.collection, entry.filetype].filter(Boolean).join(" · ") }),
        ),
        el("td", { className: "number chunks", text: String(entry.chunks) }),
        sized ? el("td", { className: "number size", text: sizeOf(entry) === null ? "" : formatBytes(sizeOf(entry)) }) : null,
        el("td", { className: "delete" }, remove),
      );
    }),
  );
}

/** Resolves to the button the user chose in the confirmation dialog ("delete" or "cancel"/""). */
function confirmDelete(entry, opener) {
  const dialog = $("confirm-dialog");
  $("confirm-text").textContent =
    entry.collection === "uploads"
      ? `${entry.source} (${plural(entry.chunks, "passage")}) will be removed from the index and its uploaded file deleted.`
      : `${entry.source} (${plural(entry.chunks, "passage")}) will be removed from the index. It comes back with the next ingest of the "${entry.collection}" source unless its file is removed too.`;
  dialog.returnValue = "";
  openDialog(dialog, opener);
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true }));
}

async function deleteDocument(entry, button) {
  if ((await confirmDelete(entry, button)) !== "delete") return;
  button.disabled = true;
  try {
    const deleted = await (await request("DELETE", `/documents/${encodeURIComponent(entry.id)}`)).json();
    $("documents-status").textContent = `Deleted ${entry.source} (${plural(deleted.chunks_removed, "passage")} removed).`;
    $("refresh").focus();
    refresh();
  } catch (error) {
    button.disabled = false;
    say($("documents-error"), `${entry.source} was not deleted: ${describe(error, "delete")}`);
  }
}

function refresh() {
  loadStatus();
  loadDocuments();
}
$("refresh").addEventListener("click", refresh);

// ---- uploads: one request per file, then its ingest job --------------------------------------------

const queue = [];
let uploading = false;

/** A row in the upload list with the file's progress and outcome. */
function uploadRow(file) {
  const name = el("span", { className: "upload-name", text: file.name });
  const state = el("span", { className: "upload-state", text: "Waiting" });
  const bar = el("progress", { max: 100, value: 0, "aria-label": `Progress of ${file.name}` });
  const row = el("li", { className: "upload", "data-file": file.name }, el("div", { className: "upload-head" }, name, state), bar);
  $("uploads").prepend(row);
  return {
    file,
    bar,
    state(text, kind = "") {
      state.textContent = text;
      row.className = `upload ${kind}`.trim();
    },
    fail(text) {
      this.state(text, "failed");
      bar.remove();
    },
    done(text) {
      this.state(text, "done");
      bar.remove();
    },
  };
}

function addFiles(files) {
  for (const file of Array.from(files)) queue.push(uploadRow(file));
  pump();
}

async function pump() {
  if (uploading) return;
  uploading = true;
  while (queue.length) await upload(queue.shift());
  uploading = false;
}

/** POST /documents with one file through XMLHttpRequest, which reports upload progress. */
function sendFile(item, key) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/documents");
    xhr.setRequestHeader("Accept", "application/json");
    if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) item.bar.value = Math.round((event.loaded / event.total) * 100);
    });
    xhr.addEventListener("load", () => resolve({ status: xhr.status, ok: xhr.status >= 200 && xhr.status < 300, text: async () => xhr.responseText }));
    xhr.addEventListener("error", () => reject(new Error("the upload was interrupted")));
    const form = new FormData();
    form.append("files", item.file, item.file.name);
    xhr.send(form);
  });
}

async function upload(item) {
  item.state("Uploading…");
  try {
    const response = await authorized((key) => sendFile(item, key));
    if (!response.ok) throw errorFrom(response.status, await response.text());
    const accepted = JSON.parse(await response.text());
    followJob(item, accepted.job); // the next file uploads while this one is ingested
  } catch (error) {
    item.fail(describe(error, "upload"));
  }
}

/** Polls GET /jobs/{id} until the ingest ends; shows its progress and the file's outcome. */
async function followJob(item, job) {
  try {
    while (job.state === "queued" || job.state === "running") {
      const progress = job.progress || {};
      if (progress.chunks_total) {
        item.bar.value = Math.round((progress.chunks_done / progress.chunks_total) * 100);
        item.state(`Indexing: ${progress.files_done}/${progress.files_total} files, ${progress.chunks_done}/${progress.chunks_total} passages`);
      } else {
        item.bar.removeAttribute("value"); // indeterminate
        item.state(job.state === "queued" ? "Waiting to be indexed…" : `Indexing: ${progress.files_done || 0}/${progress.files_total || 1} files`);
      }
      await sleep(JOB_POLL_MS);
      job = await getJSON(`/jobs/${encodeURIComponent(job.id)}`);
    }
    const result = job.result || {};
    const failed = result.failed || [];
    if (job.state === "failed") item.fail(`Not indexed: ${job.error || "the ingest failed"}`);
    else if (failed.length) item.fail(`Not indexed: ${failed.map((entry) => entry.reason).join("; ")}`);
    else if ((result.added || []).length || (result.updated || []).length) item.done(`Indexed: ${plural(result.chunks_added, "passage")}`);
    else item.done("Already indexed (unchanged)");
  } catch (error) {
    item.fail(`Indexing status unknown: ${describe(error, "read jobs")}`);
  }
  refresh();
}

const drop = $("drop");
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
}
for (const type of ["dragleave", "drop"]) {
  drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.remove("over");
  });
}
drop.addEventListener("drop", (event) => addFiles(event.dataTransfer.files));
// a file dropped next to the drop zone must not make the browser navigate away from the page
for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
$("files").addEventListener("change", (event) => {
  addFiles(event.target.files);
  event.target.value = "";
});

// ---- start ------------------------------------------------------------------------------------------

$("forget-key").hidden = !apiKey.get();
setMode();
refresh();
