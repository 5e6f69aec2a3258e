/* Performance: equity, drawdown and the monthly returns heatmap from the page's data. */
"use strict";
(() => {
  const eq = RRR.data("equity-data"), months = RRR.data("monthly-data");
  if (!eq) return;
  const x = eq.map((p) => p.ts);
  // A snapshot's drawdown is money below the peak (peak = equity + drawdown): shown as a fraction.
  const ddFraction = (p) => { const dd = Math.abs(+p.drawdown || 0), peak = +p.equity + dd; return peak > 0 ? -dd / peak : 0; };
  Plotly.newPlot("equity-chart", [{x, y: eq.map((p) => +p.equity), type: "scatter", mode: "lines", line: {color: "#5fa8ff"}}], RRRChart.layout(), RRRChart.config);
  Plotly.newPlot("dd-chart", [{x, y: eq.map(ddFraction), type: "scatter", fill: "tozeroy", line: {color: "#ff5f5f"}}], RRRChart.layout({yaxis: {tickformat: ".2%", gridcolor: "#232c36"}}), RRRChart.config);
  const years = [...new Set(months.map((m) => m.year))].sort();
  const z = years.map((y) => Array.from({length: 12}, (_, i) => { const m = months.find((r) => r.year === y && r.month === i + 1); return m ? m.return : null; }));
  Plotly.newPlot("heatmap", [{type: "heatmap", z, x: ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    y: years.map(String), colorscale: [[0, "#ff5f5f"], [0.5, "#121820"], [1, "#3fcf7a"]], zmid: 0, texttemplate: "%{z:.1%}"}],
    RRRChart.layout({margin: {l: 45, r: 10, t: 10, b: 25}}), RRRChart.config);
})();
