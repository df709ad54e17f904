// The page at / of `ragline serve`: search the index, filter, read the cited results, ask for an answer.
// Plain JavaScript, no framework and nothing from another host. Document text only ever reaches the page
// as textContent or text nodes, never as HTML.
"use strict";

(() => {
  const KEY = "ragline.apiKey"; // sessionStorage: the key stays in this tab and goes when the tab closes
  const STAGES = ["dense", "bm25", "fused", "rerank"];
  const $ = (id) => document.getElementById(id);

  let inFlight = null; // the AbortController of the search or answer shown next
  let retry = null; // the search or answer to run again once a key is entered after a 401 (stats always are)

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY) || "";
    } catch {
      return "";
    }
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function errorOf(response) {
    try {
      const body = await response.json();
      if (body && typeof body.error === "string") return body.error;
    } catch {
      // not JSON: fall through to the status line
    }
    return response.statusText || "request failed";
  }

  // One API call: JSON in, the Response out (an ApiError with the server's one-line error when not 2xx).
  async function call(method, path, body, signal, accept = "application/json") {
    const headers = { Accept: accept };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const key = storedKey();
    if (key) headers.Authorization = "Bearer " + key;
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
      credentials: "omit",
    });
    if (!response.ok) throw new ApiError(response.status, await errorOf(response));
    return response;
  }

  // -- errors and the API key ------------------------------------------------------------------------
  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = false;
  }

  function hideError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  function fail(error, again) {
    if (error && error.name === "AbortError") return;
    if (error instanceof ApiError && error.status === 401) {
      if (again !== loadStats) retry = again;
      const had = storedKey() !== "";
      openKeyForm(
        had
          ? "The server refused this API key. Enter the right one; it is kept in this tab only."
          : "This server needs an API key. Enter it here; it is kept in this tab only (sessionStorage).",
      );
      showError(`401 Unauthorized (${error.message}): ${had ? "enter the right API key" : "enter the API key"} above.`);
      return;
    }
    if (error instanceof ApiError) showError(`Error ${error.status}: ${error.message}`);
    else showError(`Could not reach the server: ${error && error.message ? error.message : error}`);
  }

  function keyState() {
    $("key-toggle").textContent = storedKey() ? "API key (set)" : "API key";
  }

  function openKeyForm(message) {
    if (message) $("key-message").textContent = message;
    $("key-form").hidden = false;
    $("key-toggle").setAttribute("aria-expanded", "true");
    $("api-key").focus();
  }

  function closeKeyForm() {
    $("key-form").hidden = true;
    $("key-toggle").setAttribute("aria-expanded", "false");
  }

  function useKey(event) {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    try {
      sessionStorage.setItem(KEY, key);
    } catch {
      showError("This browser does not keep the key (sessionStorage is off).");
      return;
    }
    $("api-key").value = "";
    closeKeyForm();
    hideError();
    keyState();
    const again = retry;
    retry = null;
    loadStats();
    if (again) again();
  }

  function forgetKey() {
    try {
      sessionStorage.removeItem(KEY);
    } catch {
      // nothing kept
    }
    keyState();
    $("api-key").value = "";
  }

  // -- the index's stats and whether an LLM answers --------------------------------------------------
  function setLlm(known, configured) {
    $("ask-button").disabled = !configured;
    $("ask-note").textContent =
      !known || configured ? "" : "Ask needs an LLM endpoint: this server has none ([llm] base_url and model).";
  }

  async function loadStats() {
    try {
      const stats = await (await call("GET", "/stats")).json();
      const roots = Array.isArray(stats.roots) ? stats.roots.length : 0;
      $("stats").textContent =
        `${stats.documents} documents, ${stats.chunks} chunks` +
        (roots > 1 ? ` in ${roots} folders` : "") +
        (stats.model ? ` · ${stats.model}` : "");
      setLlm(true, stats.llm === true);
    } catch (error) {
      $("stats").textContent = "";
      setLlm(false, false);
      fail(error, loadStats);
    }
  }

  // -- the request the form describes ----------------------------------------------------------------
  function request() {
    const body = { query: $("query").value.trim(), mode: $("mode").value };
    const topK = parseInt($("top-k").value, 10);
    if (topK > 0) body.top_k = topK;
    const filters = {};
    const path = $("filter-path").value.trim();
    if (path) filters.path = path;
    const types = $("filter-types")
      .value.split(/[\s,;]+/)
      .map((t) => t.replace(/^\*?\./, "").toLowerCase())
      .filter(Boolean);
    if (types.length) filters.file_types = types;
    if (Object.keys(filters).length) body.filters = filters;
    return body;
  }

  function begin() {
    if (inFlight) inFlight.abort();
    inFlight = new AbortController();
    hideError();
    return inFlight;
  }

  function busy(controller, on, what) {
    if (controller !== inFlight) return; // a newer request owns the page
    $("results").setAttribute("aria-busy", on ? "true" : "false");
    if (on) $("summary").replaceChildren(el("span", "count", what));
  }

  // -- results ---------------------------------------------------------------------------------------
  // The text with its evidence spans in <mark>. Spans count code points (Python's str indices), not the
  // UTF-16 units of a JavaScript string, so the text is split into code points first.
  function highlighted(text, spans) {
    const node = el("p", "text");
    if (!Array.isArray(spans) || spans.length === 0) {
      node.textContent = text;
      return node;
    }
    const chars = Array.from(text);
    const sorted = spans.filter((s) => s && Number.isInteger(s.start) && Number.isInteger(s.end));
    sorted.sort((a, b) => a.start - b.start);
    let at = 0;
    for (const span of sorted) {
      const start = Math.max(at, Math.min(span.start, chars.length));
      const end = Math.max(start, Math.min(span.end, chars.length));
      if (start > at) node.append(chars.slice(at, start).join(""));
      if (end > start) node.append(el("mark", null, chars.slice(start, end).join("")));
      at = Math.max(at, end);
    }
    if (at < chars.length) node.append(chars.slice(at).join(""));
    return node;
  }

  function citation(result) {
    const line = el("p", "citation");
    line.append(el("span", "file", result.path || result.source));
    if (result.page) line.append(", ", el("span", "page", `p. ${result.page}`));
    if (result.heading) line.append(", ", el("span", "heading", result.heading));
    return line;
  }

  function copies(result) {
    // Other files with this same text: collapsed into this result by the search, named here.
    const paths = Array.isArray(result.copies) ? result.copies : [];
    return paths.length ? [el("p", "copies", `Also in: ${paths.join(", ")}`)] : [];
  }

  function scores(result) {
    const details = el("details", "scores");
    details.append(el("summary", null, "Scores"));
    const list = el("dl");
    for (const stage of STAGES) {
      const value = result.scores ? result.scores[stage] : null;
      list.append(el("dt", null, stage), el("dd", null, typeof value === "number" ? value.toFixed(4) : "–"));
    }
    list.append(el("dt", null, "chunk"), el("dd", "chunk-id", result.chunk_id));
    details.append(list);
    return details;
  }

  function resultItem(result) {
    const item = el("li", "result");
    item.dataset.chunkId = result.chunk_id;
    item.append(citation(result), ...copies(result), highlighted(result.text || "", result.highlights), scores(result));
    return item;
  }

  function showResults(data) {
    const summary = $("summary");
    const results = Array.isArray(data.results) ? data.results : [];
    const count = results.length;
    summary.replaceChildren(el("span", "count", count ? `${count} result${count === 1 ? "" : "s"}` : "No results"));
    if (typeof data.confidence === "number") {
      const percent = Math.round(data.confidence * 100);
      const note = data.low_confidence ? " (low: the first result may not answer this)" : "";
      summary.append(el("span", data.low_confidence ? "confidence low" : "confidence", `confidence ${percent}%${note}`));
    }
    if (data.searched_query && data.searched_query !== data.query) {
      summary.append(el("span", "searched", `searched for: ${data.searched_query}`));
    }
    if (data.timings_ms && typeof data.timings_ms === "object") {
      const total = Object.values(data.timings_ms).reduce((sum, ms) => sum + (typeof ms === "number" ? ms : 0), 0);
      if (total > 0) summary.append(el("span", "timing", `${Math.round(total)} ms`));
    }
    for (const notice of Array.isArray(data.notices) ? data.notices : []) summary.append(el("p", "notice", notice));
    $("results").replaceChildren(...results.map(resultItem));
  }

  async function search() {
    const body = request();
    if (!body.query) return;
    const controller = begin();
    $("answer-section").hidden = true;
    busy(controller, true, "Searching…");
    try {
      const data = await (await call("POST", "/search", body, controller.signal)).json();
      if (controller === inFlight) showResults(data);
    } catch (error) {
      if (controller === inFlight) {
        $("summary").replaceChildren();
        fail(error, search);
      }
    } finally {
      busy(controller, false);
    }
  }

  // -- asking: the sources first, then the answer as it streams ----------------------------------------
  function parseFrame(frame) {
    let event = "message";
    const data = [];
    for (const line of frame.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length === 0) return null;
    const text = data.join("\n");
    try {
      return [event, JSON.parse(text)];
    } catch {
      return [event, text];
    }
  }

  // Server-Sent Events from a fetch() body (EventSource can neither POST nor send the key): frames end at a
  // blank line; "\r\n" and "\r" end lines too, even split across two reads.
  async function* events(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let carriage = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        let text = (carriage ? "\r" : "") + (value ? decoder.decode(value, { stream: !done }) : decoder.decode());
        carriage = !done && text.endsWith("\r");
        if (carriage) text = text.slice(0, -1);
        buffer += text.replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const frame = parseFrame(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (frame) yield frame;
        }
        if (done) {
          const last = parseFrame(buffer);
          if (last) yield last;
          return;
        }
      }
    } finally {
      reader.releaseLock();
    }
  }

  function showSources(sources) {
    const list = $("sources");
    list.replaceChildren();
    for (const source of Array.isArray(sources) ? sources : []) {
      const item = el("li", "source", source.citation);
      if (Number.isInteger(source.number)) item.value = source.number;
      list.append(item);
    }
  }

  async function ask() {
    const body = request();
    if (!body.query) return;
    body.stream = true;
    const controller = begin();
    const answer = $("answer");
    const words = document.createTextNode("");
    answer.replaceChildren(words);
    answer.setAttribute("aria-busy", "true"); // read out once, whole, rather than token by token
    $("sources").replaceChildren();
    $("answer-section").hidden = false;
    busy(controller, true, "Asking…");
    try {
      const response = await call("POST", "/ask", body, controller.signal, "text/event-stream");
      if (!(response.headers.get("content-type") || "").startsWith("text/event-stream")) {
        const data = await response.json(); // a server that does not stream answers all at once
        showResults(data);
        showSources(data.sources);
        words.data = data.answer || "";
        return;
      }
      let finished = false;
      for await (const [event, data] of events(response.body)) {
        if (controller !== inFlight) return;
        if (event === "sources") {
          showResults(data);
          showSources(data.sources);
        } else if (event === "token") {
          words.appendData(typeof data === "string" ? data : data.text || "");
        } else if (event === "done") {
          if (data && typeof data.answer === "string") words.data = data.answer;
          finished = true;
        } else if (event === "error") {
          throw new ApiError(502, data && data.error ? data.error : String(data));
        }
      }
      if (!finished) showError("The answer stopped before it was complete.");
    } catch (error) {
      if (controller === inFlight) fail(error, ask);
    } finally {
      answer.setAttribute("aria-busy", "false");
      busy(controller, false);
    }
  }

  // -- wiring ----------------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      search();
    });
    $("ask-button").addEventListener("click", ask);
    $("key-form").addEventListener("submit", useKey);
    $("key-forget").addEventListener("click", forgetKey);
    $("key-toggle").addEventListener("click", () => ($("key-form").hidden ? openKeyForm() : closeKeyForm()));
    keyState();
    loadStats();
    $("query").focus();
  });
})();
