/* Orders and trades, newest page: new orders and fills appear at the top and an order's row
   follows its state (status, filled quantity, average price) over the `orders` and `fills`
   channels, within the page's filters. Older pages are history and stay as loaded. */
"use strict";
(() => {
  const f = RRR.data("history-filter");
  if (!f) return;
  const plain = (v) => { const s = String(v ?? ""); return RRR.esc(s === "" ? "—" : s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s); };
  const fixed = (v, d) => (v === null || v === undefined || v === "") ? "—" : Number(v).toFixed(d);
  const inSpan = (ts) => (!f.since || Date.parse(ts) >= Date.parse(f.since)) && (!f.until || Date.parse(ts) < Date.parse(f.until));
  const matches = (d) => RRR.mine(d) && (!f.symbol || d.symbol === f.symbol) && (!f.side || d.side === f.side) && inSpan(d.ts);
  const byClient = (id) => `/orders/by-client/${encodeURIComponent(RRR.cid(id))}/`;
  const listed = (o) => orders.querySelector(`tr[data-id="${CSS.escape(RRR.cid(o.client_order_id))}"]`);
  // Rows are added, never trimmed: the "older" link goes on from the page's last row as loaded,
  // so trimming would hide the rows between it and the new last one.
  function add(tbody, html) {
    tbody.querySelectorAll("tr.empty").forEach((r) => r.remove());
    tbody.insertAdjacentHTML("afterbegin", html);
  }
  const orders = document.querySelector("#orders tbody");
  function orderRow(o) {
    const side = RRR.esc(o.side);
    return `<tr data-id="${RRR.esc(RRR.cid(o.client_order_id))}" data-ts="${RRR.esc(o.ts)}" data-status="${RRR.esc(o.status)}" class="flash">` +
      `<td><a href="${byClient(o.client_order_id)}">new</a></td><td>${RRR.esc(RRR.time(o.ts))}</td><td>${RRR.esc(o.symbol)}</td>` +
      `<td class="${side}">${side}</td><td>${RRR.esc(o.type)}</td><td>${plain(o.quantity)}</td>` +
      `<td class="filled">${plain(o.filled_quantity)}</td><td class="avg">${fixed(o.average_fill_price, 2)}</td>` +
      `<td class="status">${RRR.esc(o.status)}</td><td class="l">${RRR.esc(o.strategy || "")}</td></tr>`;
  }
  function onOrder(o) {
    if (!RRR.mine(o)) return;
    const row = listed(o);
    if (row) {   // a state transition of a listed order: update it in place
      if (row.dataset.status === o.status && row.querySelector(".filled").textContent === plain(o.filled_quantity)) return;
      row.dataset.status = o.status;
      row.querySelector(".status").textContent = o.status;
      row.querySelector(".filled").textContent = plain(o.filled_quantity);
      row.querySelector(".avg").textContent = fixed(o.average_fill_price, 2);
      row.classList.remove("flash"); void row.offsetWidth; row.classList.add("flash");
    } else if (matches(o) && (!f.status || o.status === f.status)) add(orders, orderRow(o));
  }
  // The newest row's time: a snapshot's rows after it arrived between the page's load and the
  // subscription (or while disconnected) and are added; older ones are only brought up to date.
  const newest = (tbody) => { const r = tbody.querySelector("tr[data-ts]"); return r ? Date.parse(r.dataset.ts) : -Infinity; };
  RRR.on("orders", (type, d) => {
    if (type === "order") onOrder(d);
    else if (type === "snapshot") {
      const after = newest(orders);
      const rows = [...(d.open || []), ...(d.recent || [])].sort((a, b) => Date.parse(a.ts) - Date.parse(b.ts));
      for (const o of rows) {
        if (listed(o) || Date.parse(o.ts) > after) onOrder(o);
      }
      document.getElementById("orders").dataset.synced = "1";
    }
  });
  const fills = document.querySelector("#fills tbody");
  function onFill(d) {
    if (!matches(d)) return;
    const side = RRR.esc(d.side);
    add(fills, `<tr class="flash" data-order="${RRR.esc(RRR.cid(d.client_order_id))}" data-ts="${RRR.esc(d.ts)}"><td>${RRR.esc(RRR.time(d.ts))}</td><td>${RRR.esc(d.symbol)}</td>` +
      `<td class="${side}">${side}</td><td>${plain(d.quantity)}</td><td>${fixed(d.price, 2)}</td>` +
      `<td>${fixed(d.fee, 4)}</td><td><a href="${byClient(d.client_order_id)}">order</a></td></tr>`);
  }
  RRR.on("fills", (type, d) => {
    if (type === "fill") onFill(d);
    else if (type === "snapshot") {   // fills newer than the newest listed one (see orders)
      const after = newest(fills);
      (d.fills || []).filter((x) => Date.parse(x.ts) > after).reverse().forEach(onFill);
      document.getElementById("fills").dataset.synced = "1";
    }
  });
})();
