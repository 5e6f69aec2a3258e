/* RRR live stream client: one WebSocket to /ws/v1/stream (docs/websocket.md).
   Subscribes to channels, checks per-channel sequence numbers (a gap resubscribes, which brings
   a fresh snapshot), reconnects with back-off, and hands messages to page handlers. */
"use strict";
const RRR = (() => {
  const handlers = {};   // channel -> [fn(type, data, msg)]
  const seqs = {};       // channel -> last seq seen
  let socket = null, wanted = new Set(), backoff = 500, nextId = 1;
  const status = (text, cls) => {
    const el = document.getElementById("ws-status");
    if (el) { el.textContent = text; el.className = "badge " + cls; }
  };
  function send(obj) { if (socket && socket.readyState === 1) socket.send(JSON.stringify(obj)); }
  function subscribe(channels) { if (channels.length) send({op: "subscribe", channels, id: nextId++}); }
  function connect() {
    if (!wanted.size) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/v1/stream`);
    socket.onopen = () => { backoff = 500; status("live", "live"); subscribe([...wanted]); };
    socket.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "ack") {
        for (const [chan, why] of Object.entries(msg.refused || {})) console.warn("refused", chan, why);
        return;
      }
      if (msg.type === "pong" || !msg.channel) return;
      const last = seqs[msg.channel];
      if (msg.type === "snapshot" || last === undefined) seqs[msg.channel] = msg.seq;
      else if (msg.seq !== last + 1) {   // a gap: start this channel again from a snapshot
        delete seqs[msg.channel];
        send({op: "unsubscribe", channels: [msg.channel]});
        subscribe([msg.channel]);
        return;
      } else seqs[msg.channel] = msg.seq;
      if (msg.type === "conflated") status("live (conflated)", "stale");
      for (const fn of handlers[msg.channel] || []) fn(msg.type, msg.data, msg);
    };
    socket.onclose = (ev) => {
      status(ev.code === 4401 ? "signed out" : "offline", "offline");
      for (const k of Object.keys(seqs)) delete seqs[k];
      if (ev.code === 4401 || ev.code === 4403) return;
      setTimeout(connect, backoff); backoff = Math.min(backoff * 2, 10000);
    };
  }
  function on(channel, fn) {
    (handlers[channel] = handlers[channel] || []).push(fn);
    if (!wanted.has(channel)) {
      wanted.add(channel);
      if (socket && socket.readyState === 1) subscribe([channel]);
      else if (!socket) setTimeout(connect, 0);
    }
  }
  // A page that watches no channel has no stream: say so rather than "offline".
  window.addEventListener("load", () => {
    const el = document.getElementById("ws-status");
    if (!wanted.size && el) { el.textContent = "no live data"; el.className = "badge"; el.dataset.idle = "1"; }
  });
  function csrf() { return document.querySelector('meta[name="csrf-token"]').content; }
  async function api(method, path, body) {
    const res = await fetch(path, {
      method, credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf(), "Accept": "application/json"},
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    return {status: res.status, ok: res.ok, data};
  }
  const num = (v, d = 2) => (v === null || v === undefined || v === "") ? "—"
    : Number(v).toLocaleString("en-US", {minimumFractionDigits: d, maximumFractionDigits: d});
  const signed = (el, v) => { el.classList.toggle("pos", Number(v) > 0); el.classList.toggle("neg", Number(v) < 0); };
  const time = (iso) => iso ? iso.replace("T", " ").slice(0, 19) : "—";
  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  const data = (id) => { const el = document.getElementById(id); return el ? JSON.parse(el.textContent) : null; };
  const account = () => document.body.dataset.accountName || null;
  const mine = (d) => !d || !d.account || !account() || d.account === account();
  // An order's client id: the engine's messages write it as 32 hex digits, snapshots and the
  // API as a dashed UUID; pages compare and store this one form.
  const cid = (id) => String(id ?? "").replace(/-/g, "").toLowerCase();
  document.addEventListener("keydown", (ev) => {
    if (ev.target.matches("input, select, textarea") || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const links = document.querySelectorAll("header.top nav a");
    if (/^[1-8]$/.test(ev.key) && links[+ev.key - 1]) { location.href = links[+ev.key - 1].href; }
    if (ev.key === "/") { const f = document.querySelector("main input, main select"); if (f) { ev.preventDefault(); f.focus(); } }
  });
  return {on, api, num, signed, time, esc, data, account, mine, cid};
})();
