/* Shared plotly layout for the dark pages (plotly.js is served from the plotly package). */
"use strict";
const RRRChart = {
  layout(extra) {
    return Object.assign({
      paper_bgcolor: "#121820", plot_bgcolor: "#121820", font: {color: "#dde3ea", size: 11},
      margin: {l: 55, r: 10, t: 10, b: 30}, showlegend: false,
      xaxis: {gridcolor: "#232c36"}, yaxis: {gridcolor: "#232c36"},
    }, extra || {});
  },
  config: {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["toImage"]},
};
