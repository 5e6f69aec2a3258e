/* Performance: equity, drawdown and the monthly returns heatmap from the page's data; the
   equity and drawdown curves, the P&L figures and P&L per symbol then follow the account's
   `portfolio` messages live (each engine snapshot). */
"use strict";
(() => {
  const eq = RRR.data("equity-data"), months = RRR.data("monthly-data");
  if (!eq) return;
  const x = eq.map((p) => p.ts);
  // A snapshot's drawdown is money below the peak (peak = equity + drawdown): shown as a fraction.
  const ddFraction = (p) => { const dd = Math.abs(+p.drawdown || 0), peak = +p.equity + dd; return peak > 0 ? -dd / peak : 0; };
  let peak = eq.reduce((m, p) => Math.max(m, +p.equity + Math.abs(+p.drawdown || 0)), 0);
  let lastTs = eq.length ? eq[eq.length - 1].ts : "";
  Plotly.newPlot("equity-chart", [{x, y: eq.map((p) => +p.equity), type: "scatter", mode: "lines", line: {color: "#5fa8ff"}}], RRRChart.layout(), RRRChart.config);
  Plotly.newPlot("dd-chart", [{x, y: eq.map(ddFraction), type: "scatter", fill: "tozeroy", line: {color: "#ff5f5f"}}], RRRChart.layout({yaxis: {tickformat: ".2%", gridcolor: "#232c36"}}), RRRChart.config);
  const years = [...new Set(months.map((m) => m.year))].sort();
  const z = years.map((y) => Array.from({length: 12}, (_, i) => { const m = months.find((r) => r.year === y && r.month === i + 1); return m ? m.return : null; }));
  Plotly.newPlot("heatmap", [{type: "heatmap", z, x: ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    y: years.map(String), colorscale: [[0, "#ff5f5f"], [0.5, "#121820"], [1, "#3fcf7a"]], zmid: 0, texttemplate: "%{z:.1%}"}],
    RRRChart.layout({margin: {l: 45, r: 10, t: 10, b: 25}, yaxis: {type: "category", gridcolor: "#232c36"}}), RRRChart.config);
  const set = (id, v, colour) => { const el = document.getElementById(id); if (!el || v === undefined) return;
    el.textContent = RRR.num(v); if (colour) RRR.signed(el, v); };
  const perSymbol = document.querySelector("#per-symbol tbody");
  let updates = 0;
  function portfolio(p) {
    set("k-equity", p.equity); set("k-total", p.total_pnl, true); set("k-daily", p.daily_pnl, true);
    set("k-real", p.realized_pnl); set("k-unreal", p.unrealized_pnl, true);
    if (p.ts) document.getElementById("k-ts").textContent = RRR.time(p.ts).slice(11);
    if (p.ts && p.equity !== undefined && p.ts > lastTs) {
      const e = Number(p.equity); peak = Math.max(peak, e); lastTs = p.ts;
      Plotly.extendTraces("equity-chart", {x: [[p.ts]], y: [[e]]}, [0], 5000);
      Plotly.extendTraces("dd-chart", {x: [[p.ts]], y: [[peak > 0 ? e / peak - 1 : 0]]}, [0], 5000);
    }
    for (const r of p.positions || []) {
      const row = perSymbol.querySelector(`tr[data-symbol="${CSS.escape(r.symbol)}"]`);
      if (!row) continue;   // a symbol first traded since the load: its fees come with a reload
      row.querySelector(".qty").textContent = r.quantity.includes(".") ? r.quantity.replace(/0+$/, "").replace(/\.$/, "") : r.quantity;
      row.querySelector(".real").textContent = RRR.num(r.realized_pnl);
      row.querySelector(".unreal").textContent = RRR.num(r.unrealized_pnl);
      const net = Number(r.realized_pnl) + Number(r.unrealized_pnl) - Number(row.dataset.fees || 0);
      const cell = row.querySelector(".net"); cell.textContent = RRR.num(net); RRR.signed(cell, net);
    }
    document.getElementById("live-pnl").dataset.updates = ++updates;
  }
  RRR.on("portfolio", (type, d) => {
    const rows = type === "snapshot" ? d.accounts : [d];
    for (const p of rows || []) if (RRR.mine(p)) portfolio(p);
  });
})();
