// The playground room: one WebSocket to the room (playground/consumers.py), messages rendered
// as Markdown with marked and sanitised with DOMPurify, the same way for history and live text.
(() => {
  "use strict";

  const room = document.getElementById("room");
  const list = document.getElementById("messages");
  const input = document.getElementById("message");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const present = document.getElementById("present");
  const connection = document.getElementById("connection");
  const frameError = document.getElementById("frame-error");
  const modelName = room.dataset.model;

  // Markdown. Raw HTML in a message is shown as the text it is, images as their alt text (no
  // request leaves the page), and links keep only http(s) and mailto addresses.
  const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  marked.use({
    gfm: true,
    breaks: true,
    renderer: {
      html({ text }) { return escapeHtml(text); },
      image({ text }) { return escapeHtml(text); },
    },
  });
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  });
  const markdown = (text) => DOMPurify.sanitize(marked.parse(text), {
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
    FORBID_TAGS: ["img", "style", "form", "input", "button", "textarea", "select", "iframe"],
  });

  // Messages.
  const shown = new Set();  // ids of the saved messages on the page
  let live = null;  // the answer being generated: {request_id, by, pieces, element}

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function scrollDown(wasNear) {
    if (wasNear) list.scrollTop = list.scrollHeight;
  }

  function bubble({ role, author, status }) {
    const article = document.createElement("article");
    article.className = `msg msg-${role}`;
    const header = document.createElement("header");
    const who = document.createElement("strong");
    who.className = "author";
    who.textContent = role === "assistant" ? modelName : (author || "someone");
    header.append(who);
    const badge = document.createElement("span");
    badge.className = "badge-status";
    header.append(badge);
    const body = document.createElement("div");
    body.className = "md";
    const error = document.createElement("p");
    error.className = "error";
    article.append(header, body, error);
    setStatus(article, status);
    return article;
  }

  function setStatus(article, status) {
    article.dataset.status = status;
    const label = { stopped: "stopped", error: "error", streaming: "answering…" }[status] || "";
    article.querySelector(".badge-status").textContent = label;
  }

  function addMessage(message) {
    if (shown.has(message.id)) return;
    const wasNear = nearBottom();
    if (live && message.role === "assistant" && message.request_id === live.request_id) {
      live.element.remove();
      live = null;
      stopButton.disabled = true;
    }
    shown.add(message.id);
    const article = bubble(message);
    article.dataset.id = message.id;
    article.querySelector(".md").innerHTML = markdown(message.content);
    if (message.error) article.querySelector(".error").textContent = message.error;
    list.append(article);
    scrollDown(wasNear);
  }

  let pending = false;
  function renderLive() {  // at most once a frame, however fast the pieces come
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      if (!live) return;
      const wasNear = nearBottom();
      live.element.querySelector(".md").innerHTML = markdown(live.pieces.join(""));
      scrollDown(wasNear);
    });
  }

  function startLive({ request_id, by, pieces = [] }) {
    if (live && live.request_id === request_id) return;
    if (live) live.element.remove();
    const element = bubble({ role: "assistant", status: "streaming" });
    element.classList.add("live");
    element.dataset.requestId = request_id;
    element.title = `answering ${by}`;
    list.append(element);
    live = { request_id, by, pieces: [...pieces], element };
    stopButton.disabled = false;
    renderLive();
  }

  function addPieces({ request_id, index, pieces }) {
    if (!live || live.request_id !== request_id) startLive({ request_id, by: "" });
    const have = live.pieces.length;
    if (index > have) {  // a gap: should not happen; the next state frame repairs it
      live.pieces.length = index;
      live.pieces.fill("", have);
    }
    live.pieces.push(...pieces.slice(Math.max(0, have - index)));
    renderLive();
  }

  function showState(state) {
    list.replaceChildren();
    shown.clear();
    live = null;
    stopButton.disabled = true;
    state.messages.forEach(addMessage);
    // An answer saved just as this socket joined is in the history already.
    const answer = state.answer;
    if (answer && !state.messages.some((m) => m.request_id === answer.request_id)) startLive(answer);
    showPresent(state.present);
    list.scrollTop = list.scrollHeight;
  }

  function showPresent(names) {
    present.textContent = names.length ? `Here: ${names.join(", ")}` : "";
  }

  let errorTimer = null;
  let lastSent = "";
  function showError(text) {
    if (!input.value) input.value = lastSent;  // a refused message is not lost
    frameError.textContent = text;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => { frameError.textContent = ""; }, 8000);
  }

  // The socket, reconnected with back-off when it drops.
  let socket = null;
  let delay = 500;

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}${room.dataset.socket}`);
    socket.addEventListener("open", () => {
      delay = 500;
      connection.textContent = "Connected";
      sendButton.disabled = false;
    });
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "state") showState(frame);
      else if (frame.type === "message") addMessage(frame.message);
      else if (frame.type === "answer") startLive(frame);
      else if (frame.type === "token") addPieces(frame);
      else if (frame.type === "presence") showPresent(frame.present);
      else if (frame.type === "error") showError(frame.error);
    });
    socket.addEventListener("close", () => {
      sendButton.disabled = true;
      connection.textContent = `Disconnected: reconnecting in ${Math.round(delay / 1000)} s…`;
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    });
  }

  function send() {
    const content = input.value;
    if (!content.trim() || !socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ type: "send", content }));
    lastSent = content;
    input.value = "";
  }

  document.getElementById("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  stopButton.addEventListener("click", () => {
    if (live && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "stop", request_id: live.request_id }));
    }
  });

  connect();
})();
