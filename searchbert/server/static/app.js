// The search page: a form that POSTs /search, results with the query's words highlighted, and a click that
// fetches the hit's passage from /documents/{id}. No framework, no build step, nothing from the network but this
// server.
"use strict";

const $ = (id) => document.getElementById(id);
const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
// the query's words worth marking: not the little ones every sentence has
const STOP = new Set("a an and are as at be by do does for from how i in is it me my of on or the to was what when where which who why with you".split(" "));
const words = (q) => [...new Set(q.toLowerCase().match(/[\p{L}\p{N}]{2,}/gu) || [])].filter((w) => !STOP.has(w));

function authHeaders() {
  const key = localStorage.getItem("searchbert-key");
  return key ? { Authorization: "Bearer " + key } : {};
}

async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
  if (response.status === 401) {
    const key = prompt("This server needs an API key:");
    if (key) { localStorage.setItem("searchbert-key", key); return call(path, options); }
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = Array.isArray(data.detail) ? data.detail.map((d) => d.msg).join("; ") : data.detail;
    throw new Error(detail || response.statusText);
  }
  return data;
}

// a passage as a reader sees it: the marks of Markdown and reST (heading marks and underlines, emphasis, code ticks,
// links, roles, directives) dropped and their words kept. Code and other files are shown as written.
const MARKUP = /\.(md|markdown|rst|txt|html?|xhtml)$/i;

function readable(text, path) {
  if (!MARKUP.test(path)) return text;
  return text
    .split("\n")
    .filter((line) => !/^\s*([=\-~^*#"'`:.+_<>])\1{2,}\s*$/.test(line))
    .map((line) => line.replace(/^\s{0,3}#{1,6}\s+/, "").replace(/\s+#+\s*$/, "").replace(/^\s*\.\.\s+[\w:-]+::\s*/, ""))
    .join("\n")
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/(?::[\w.-]+)+:`~?([^`<]*?)(?:\s*<[^>]*>)?`/g, "$1")
    .replace(/`([^`<]+?)\s*<[^>]+>`_{1,2}/g, "$1")
    .replace(/`+([^`]+)`+_{0,2}/g, "$1")
    .replace(/(\*\*|__)(\S(?:.*?\S)?)\1/g, "$2")
    .replace(/(^|[\s(])[*_](\S(?:[^*_]*?\S)?)[*_](?=[\s).,;:!?]|$)/gm, "$1$2");
}

// the stretch of the text around the first query word, the words marked (escaped first: the text is never HTML)
function snippet(text, terms, width = 320) {
  const flat = text.replace(/\s+/g, " ").trim();
  const lower = flat.toLowerCase();
  const first = Math.min(...terms.map((t) => lower.indexOf(t)).filter((i) => i >= 0), flat.length);
  const start = first < flat.length && first > width / 3 ? first - Math.floor(width / 3) : 0;
  let part = flat.slice(start, start + width);
  part = (start > 0 ? "… " : "") + part + (start + width < flat.length ? " …" : "");
  return highlight(part, terms);
}

function highlight(text, terms) {
  let html = escapeHtml(text);
  if (!terms.length) return html;
  const pattern = terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|");
  return html.replace(new RegExp(`(?<![\\p{L}\\p{N}])(${pattern})`, "giu"), "<mark>$1</mark>");
}

function filters() {
  const paths = $("path").value.split(/\s+/).filter(Boolean);
  const exts = $("ext").value.split(/[\s,]+/).map((e) => e.replace(/^\./, "")).filter(Boolean);
  const metadata = {};
  for (const pair of $("where").value.split(/\s+/).filter(Boolean)) {
    const [key, ...rest] = pair.split("=");
    if (!key || !rest.length) throw new Error(`metadata filter "${pair}": write key=value`);
    const raw = rest.join("=");
    let value;
    try { value = JSON.parse(raw); } catch { value = raw; }
    if (value !== null && typeof value === "object") value = raw;
    metadata[key] = key in metadata ? [].concat(metadata[key], value) : value;
  }
  return paths.length || exts.length || Object.keys(metadata).length ? { paths, exts, metadata } : null;
}

async function search(event) {
  if (event) event.preventDefault();
  const query = $("q").value.trim();
  if (!query) return;
  $("error").hidden = true;
  $("summary").textContent = "Searching…";
  const body = { query, k: Number($("k").value) || 10, rerank: $("rerank").checked };
  if ($("mode").value) body.mode = $("mode").value;
  const started = performance.now();
  try {
    body.filters = filters();
    const hits = await call("/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    show(hits, words(query), performance.now() - started);
    history.replaceState(null, "", "?q=" + encodeURIComponent(query));
  } catch (error) {
    $("summary").textContent = "";
    $("results").replaceChildren();
    $("error").textContent = error.message;
    $("error").hidden = false;
  }
}

// the least relevance a hit needs to be shown (the index's default, from /status): a hit under it is a weak match
let threshold = 0;

function show(hits, terms, ms, weakToo = false) {
  const good = hits.filter((hit) => hit.relevance == null || hit.relevance >= threshold);
  if (hits.length && !good.length && !weakToo) {
    const best = Math.max(...hits.map((hit) => hit.relevance || 0));
    $("summary").textContent = `No good match: the best hit is ${Math.round(best * 100)}% likely to be relevant. `;
    const more = document.createElement("button");
    more.type = "button";
    more.id = "show-weak";
    more.textContent = "Show the weak hits";
    more.addEventListener("click", () => show(hits, terms, ms, true));
    $("summary").append(more);
    $("results").replaceChildren();
    return;
  }
  hits = good.length ? good : hits;
  $("summary").textContent = hits.length ? `${hits.length} results in ${Math.round(ms)} ms` : "No results.";
  $("results").replaceChildren(...hits.map((hit) => {
    const item = document.createElement("li");
    item.className = "hit";
    item.tabIndex = 0;
    item.innerHTML =
      `<span class="score">${hit.score.toFixed(3)}` +
      (hit.relevance == null ? "" : ` · <span class="relevance">${Math.round(hit.relevance * 100)}% relevant</span>`) + `</span>` +
      `<div class="title">${escapeHtml(hit.title || hit.path.split("/").pop())}</div>` +
      `<div class="where">${escapeHtml(hit.path)}:${hit.start_line}-${hit.end_line}</div>` +
      (hit.section ? `<div class="section">${escapeHtml(hit.section)}</div>` : "") +
      `<p class="snippet">${snippet(readable(hit.text, hit.path), terms)}</p>`;
    const open = () => openPassage(hit, terms);
    item.addEventListener("click", open);
    item.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    return item;
  }));
}

async function openPassage(hit, terms) {
  try {
    const range = `?start_line=${hit.start_line}&end_line=${hit.end_line}`;
    const doc = await call("/documents/" + encodeURIComponent(hit.path) + range);
    $("passage-title").textContent = doc.title || hit.path;
    $("passage-where").textContent = `${hit.path}, lines ${hit.start_line}-${hit.end_line}`;
    $("passage-text").innerHTML = highlight(doc.text, terms);
    $("passage").showModal();
  } catch (error) {
    $("error").textContent = error.message;
    $("error").hidden = false;
  }
}

async function status() {
  try {
    const s = await call("/status");
    $("status").textContent = `${s.documents} documents, ${s.chunks} chunks · ${s.model}`;
    $("mode").options[0].textContent = `default (${s.mode})`;
    threshold = s.min_relevance || 0;
  } catch (error) {
    $("status").textContent = error.message;
  }
}

$("search").addEventListener("submit", search);
$("close").addEventListener("click", () => $("passage").close());
const initial = new URLSearchParams(location.search).get("q");
if (initial) { $("q").value = initial; search(); }
status();
