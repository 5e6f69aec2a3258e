/* Overview: equity, P&L, positions, orders, fills and state kept live; halt/resume/flatten. */
"use strict";
(() => {
  const accountId = document.body.dataset.account;
  if (!accountId) return;
  const curve = RRR.data("equity-data") || [];
  const x = curve.map((p) => p.ts), y = curve.map((p) => Number(p.equity));
  const layout = {paper_bgcolor: "#121820", plot_bgcolor: "#121820", font: {color: "#dde3ea", size: 11},
                  margin: {l: 60, r: 10, t: 10, b: 30}, showlegend: false,
                  xaxis: {gridcolor: "#232c36"}, yaxis: {gridcolor: "#232c36"}};
  Plotly.newPlot("equity-chart", [{x, y, type: "scatter", mode: "lines", line: {color: "#5fa8ff", width: 1.5}}],
                 layout, {displaylogo: false, responsive: true});
  const set = (id, v, colour) => { const el = document.getElementById(id); if (!el) return;
    el.textContent = RRR.num(v); if (colour) RRR.signed(el, v); };
  const empty = (tbody, cols, text) => { if (!tbody.rows.length) tbody.innerHTML = `<tr class="empty"><td colspan="${cols}" class="muted">${text}</td></tr>`; };
  function portfolio(p) {
    set("k-equity", p.equity); set("k-cash", p.cash); set("k-daily", p.daily_pnl, true);
    set("k-total", p.total_pnl, true); set("k-unreal", p.unrealized_pnl, true);
    document.getElementById("k-ts").textContent = RRR.time(p.ts).slice(11);
    if (p.trading_state) state(p.trading_state);
    if (p.ts && p.equity !== undefined) Plotly.extendTraces("equity-chart", {x: [[p.ts]], y: [[Number(p.equity)]]}, [0], 2000);
    const tbody = document.querySelector("#positions tbody");
    tbody.innerHTML = (p.positions || []).filter((r) => Number(r.quantity) !== 0).map((r) => {
      const u = Number(r.unrealized_pnl);
      return `<tr data-symbol="${RRR.esc(r.symbol)}" class="flash"><td>${RRR.esc(r.symbol)}</td><td>${RRR.esc(r.quantity)}</td>` +
        `<td>${RRR.num(r.average_price)}</td><td>${RRR.num(r.mark_price)}</td>` +
        `<td class="${u > 0 ? "pos" : u < 0 ? "neg" : ""}">${RRR.num(r.unrealized_pnl)}</td><td>${RRR.num(r.realized_pnl)}</td></tr>`;
    }).join("");
    empty(tbody, 6, "Flat.");
  }
  function state(s, reason) {
    const el = document.getElementById("state"), was = el.textContent.trim();
    el.textContent = s; el.className = "badge " + s;
    // The notice (why the account is not active, how to resume it) follows the state live; the
    // page's own (with since when and by whom) stays while the state is the one it describes.
    const note = document.getElementById("state-notice");
    if (!note) return;
    if (s === "active") { note.hidden = true; note.textContent = ""; }
    else if (reason !== undefined && (s !== was || !note.textContent)) {
      const means = s === "halted" ? "no order is sent" : "only orders that reduce a position are sent";
      note.textContent = `account '${document.body.dataset.accountName}' is ${s.toUpperCase()} (${reason || "no reason given"}): ${means} until a trader resumes it (Resume, the admin, the API or Telegram).`;
      note.hidden = false;
    }
  }
  RRR.on("portfolio", (type, d) => {
    const rows = type === "snapshot" ? d.accounts : [d];
    for (const p of rows || []) if (RRR.mine(p)) portfolio(p);
  });
  const orderRow = (o) => `<tr data-id="${RRR.esc(RRR.cid(o.client_order_id))}" class="flash"><td>${RRR.time(o.ts).slice(11)}</td><td>${RRR.esc(o.symbol)}</td>` +
    `<td class="${RRR.esc(o.side)}">${RRR.esc(o.side)}</td><td>${RRR.esc(o.type)}</td><td>${RRR.esc(o.quantity)}</td>` +
    `<td>${o.price ? RRR.num(o.price) : "mkt"}</td><td>${RRR.esc(o.status)}</td></tr>`;
  const OPEN = new Set(["pending", "open", "partially_filled"]);
  RRR.on("orders", (type, d) => {
    const tbody = document.querySelector("#open-orders tbody");
    if (type === "snapshot") tbody.innerHTML = (d.open || []).filter(RRR.mine).slice(0, 50).map(orderRow).join("");
    else if (type === "order" && RRR.mine(d)) {
      const old = tbody.querySelector(`tr[data-id="${CSS.escape(RRR.cid(d.client_order_id))}"]`);
      if (old) old.remove();
      if (OPEN.has(d.status)) tbody.insertAdjacentHTML("afterbegin", orderRow(d));
      tbody.querySelectorAll("tr.empty").forEach((r) => r.remove());
    }
    empty(tbody, 7, "None.");
  });
  const fillRow = (f) => `<tr class="flash"><td>${RRR.time(f.ts)}</td><td>${RRR.esc(f.symbol)}</td><td class="${RRR.esc(f.side)}">${RRR.esc(f.side)}</td>` +
    `<td>${RRR.esc(f.quantity)}</td><td>${RRR.num(f.price)}</td><td>${RRR.num(f.fee, 4)}</td></tr>`;
  RRR.on("fills", (type, d) => {
    const tbody = document.querySelector("#fills tbody");
    if (type === "snapshot") tbody.innerHTML = (d.fills || []).filter(RRR.mine).slice(0, 25).map(fillRow).join("");
    else if (type === "fill" && RRR.mine(d)) {
      tbody.querySelectorAll("tr.empty").forEach((r) => r.remove());
      tbody.insertAdjacentHTML("afterbegin", fillRow(d));
      while (tbody.rows.length > 25) tbody.deleteRow(-1);
    }
    empty(tbody, 6, "No fills yet.");
  });
  RRR.on("risk", (type, d) => {
    if (type === "snapshot") (d.states || []).filter(RRR.mine).forEach((s) => state(s.state, s.reason));
    else if (type === "state" && RRR.mine(d)) state(d.state, d.reason);
  });
  RRR.on("system", (type, d) => {
    const beats = type === "snapshot" ? d.heartbeats : type === "heartbeat" ? [d] : [];
    for (const b of beats || []) if (RRR.mine(b)) document.getElementById("heartbeat").textContent = RRR.time(b.ts);
  });
  const result = document.getElementById("control-result");
  document.querySelectorAll(".controls button").forEach((btn) => btn.addEventListener("click", async () => {
    const action = btn.dataset.action;
    const name = document.body.dataset.accountName;
    const words = {halt: `Halt ${name}? Its open orders are cancelled and no new orders go out.`,
                   resume: `Resume trading on ${name}?`,
                   flatten: `Flatten ${name}? Every position is closed at market.`};
    if (!window.confirm(words[action])) return;
    btn.disabled = true;
    const body = action === "flatten" ? {} : {reason: "dashboard"};
    const res = await RRR.api("POST", `/api/v1/accounts/${accountId}/${action}`, body);
    btn.disabled = false;
    result.textContent = res.ok ? `${action}: done` : `${action} refused (${res.status}): ${JSON.stringify(res.data)}`;
    if (res.ok && res.data && res.data.state) state(res.data.state);
  }));
})();
