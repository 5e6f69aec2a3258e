/* Market: candles + volume, SMA overlays, the account's fills as markers, live bar, book depth,
   recent trades, and the quick-order ticket (POST /api/v1/orders; a 422 shows the risk verdict). */
"use strict";
(() => {
  const c = RRR.data("chart-data");
  if (!c) return;
  const bars = c.bars.map((b) => ({...b, open: +b.open, high: +b.high, low: +b.low, close: +b.close, volume: +b.volume}));
  const markers = c.markers.slice();
  const sma = (n) => bars.map((_, i) => i + 1 < n ? null : bars.slice(i + 1 - n, i + 1).reduce((a, b) => a + b.close, 0) / n);
  function traces() {
    const x = bars.map((b) => b.ts);
    const out = [
      {type: "candlestick", x, open: bars.map((b) => b.open), high: bars.map((b) => b.high),
       low: bars.map((b) => b.low), close: bars.map((b) => b.close), name: c.symbol,
       increasing: {line: {color: "#3fcf7a"}}, decreasing: {line: {color: "#ff5f5f"}}},
      {type: "bar", x, y: bars.map((b) => b.volume), yaxis: "y2", marker: {color: "#2f3e4f"}, name: "volume"},
    ];
    if (document.getElementById("ov-sma20").checked) out.push({type: "scatter", mode: "lines", x, y: sma(20), line: {color: "#e0a030", width: 1}, name: "SMA 20"});
    if (document.getElementById("ov-sma50").checked) out.push({type: "scatter", mode: "lines", x, y: sma(50), line: {color: "#b57cff", width: 1}, name: "SMA 50"});
    for (const side of ["buy", "sell"]) {
      const m = markers.filter((f) => f.side === side);
      out.push({type: "scatter", mode: "markers", x: m.map((f) => f.ts), y: m.map((f) => +f.price), name: side === "buy" ? "entries (buys)" : "exits (sells)",
                text: m.map((f) => `${f.strategy} ${f.side} ${f.quantity}`), hoverinfo: "text+y",
                marker: {symbol: side === "buy" ? "triangle-up" : "triangle-down", size: 10, color: side === "buy" ? "#3fcf7a" : "#ff5f5f"}});
    }
    return out;
  }
  const layout = RRRChart.layout({xaxis: {gridcolor: "#232c36", rangeslider: {visible: false}},
    yaxis: {gridcolor: "#232c36", domain: [0.22, 1]}, yaxis2: {domain: [0, 0.18], gridcolor: "#232c36"}});
  let drawn = 0;
  function draw() { Plotly.react("candles", traces(), layout, RRRChart.config); drawn += 1; document.getElementById("candles").dataset.draws = drawn; }
  function lastPrice(p, ts) { document.getElementById("last-price").textContent = RRR.num(p); if (ts) document.getElementById("last-bar").textContent = RRR.time(ts).slice(11); }
  draw();
  if (bars.length) lastPrice(bars[bars.length - 1].close, bars[bars.length - 1].ts);
  ["ov-sma20", "ov-sma50"].forEach((id) => document.getElementById(id).addEventListener("change", draw));
  function onBar(b) {
    if (b.timeframe !== c.timeframe) return;
    const bar = {ts: b.ts, open: +b.open, high: +b.high, low: +b.low, close: +b.close, volume: +b.volume};
    const last = bars[bars.length - 1];
    if (last && last.ts === bar.ts) bars[bars.length - 1] = bar;
    else if (!last || bar.ts > last.ts) { bars.push(bar); if (bars.length > 500) bars.shift(); }
    else return;
    lastPrice(bar.close, bar.ts); draw();
    document.getElementById("candles").dataset.lastBar = bar.ts;
  }
  function depth(book) {
    if (!book) return;
    let cum = 0; const bids = book.bids.map(([p, s]) => [+p, (cum += +s)]); cum = 0;
    const asks = book.asks.map(([p, s]) => [+p, (cum += +s)]);
    Plotly.react("depth", [
      {type: "scatter", mode: "lines", fill: "tozeroy", line: {shape: "hv", color: "#3fcf7a"}, x: bids.map((l) => l[0]), y: bids.map((l) => l[1]), name: "bids"},
      {type: "scatter", mode: "lines", fill: "tozeroy", line: {shape: "hv", color: "#ff5f5f"}, x: asks.map((l) => l[0]), y: asks.map((l) => l[1]), name: "asks"},
    ], RRRChart.layout({margin: {l: 45, r: 5, t: 5, b: 25}}), RRRChart.config);
  }
  function quote(q) { if (q) document.getElementById("bid-ask").textContent = `${RRR.num(q.bid)} / ${RRR.num(q.ask)}`; }
  const tradesBody = document.querySelector("#trades tbody");
  function trade(t, append) {
    const row = `<tr><td>${RRR.time(t.ts).slice(11)}</td><td>${RRR.num(t.price)}</td><td>${RRR.esc(t.size)}</td><td class="${RRR.esc(t.side)}">${RRR.esc(t.side || "")}</td></tr>`;
    tradesBody.insertAdjacentHTML(append ? "beforeend" : "afterbegin", row);
    while (tradesBody.rows.length > 40) tradesBody.deleteRow(-1);
  }
  const fillsBody = document.querySelector("#my-fills tbody");
  function fillRow(f, append) {
    fillsBody.insertAdjacentHTML(append ? "beforeend" : "afterbegin", `<tr><td>${RRR.time(f.ts).slice(11)}</td><td class="${RRR.esc(f.side)}">${RRR.esc(f.side)}</td><td>${RRR.esc(f.quantity)}</td><td>${RRR.num(f.price)}</td><td>${RRR.esc(f.strategy || "")}</td></tr>`);
    while (fillsBody.rows.length > 40) fillsBody.deleteRow(-1);
  }
  c.trades.forEach((t) => trade(t, true)); c.markers.slice(0, 40).forEach((f) => fillRow(f, true));
  depth(c.book); quote(c.quote);
  RRR.on(`market.${c.symbol}`, (type, d) => {
    if (type === "snapshot") { (d.bars || []).forEach(onBar); depth(d.book); quote(d.quote); }
    else if (type === "bar") onBar(d);
    else if (type === "trade") { trade(d, false); lastPrice(d.price); }
    else if (type === "quote") quote(d);
    else if (type === "book") depth(d);
  });
  RRR.on("fills", (type, d) => {
    if (type !== "fill" || d.symbol !== c.symbol || !RRR.mine(d)) return;
    markers.unshift({ts: d.ts, side: d.side, price: d.price, quantity: d.quantity, strategy: d.strategy || ""});
    fillRow(d, false); draw();
  });
  const form = document.getElementById("ticket");
  if (!form) return;
  const verdict = document.getElementById("verdict");
  const riskText = (r) => !r ? "—" : Object.entries(r).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("\n");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const body = {account: c.account, symbol: c.symbol, side: f.get("side"), type: f.get("type"), quantity: f.get("quantity")};
    for (const k of ["price", "stop_price", "stop_loss", "take_profit"]) if (f.get(k)) body[k] = f.get(k);
    const button = document.getElementById("ticket-submit"); button.disabled = true;
    verdict.className = "verdict muted"; verdict.textContent = "sending…";
    const res = await RRR.api("POST", "/api/v1/orders", body);
    button.disabled = false;
    if (res.status === 201) {
      verdict.className = "verdict ok";
      const o = res.data.order;
      verdict.textContent = `accepted: order #${o.id} ${o.side} ${o.quantity} ${o.symbol} (${o.status})\nrisk: ${riskText(res.data.risk)}`;
      verdict.dataset.order = o.id;
    } else if (res.status === 422) {
      verdict.className = "verdict refused";
      const v = res.data || {};
      verdict.textContent = `refused: ${v.detail || ""}\nrisk: ${riskText(v.risk)}`;
    } else {
      verdict.className = "verdict refused";
      verdict.textContent = `error ${res.status}: ${JSON.stringify(res.data)}`;
    }
  });
})();
