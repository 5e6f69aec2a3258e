/* Launch a backtest or optimisation through the REST API (POST /api/v1/backtests, the session
   and its CSRF token): the API checks it by the backtest command's rules; a refusal (400) is
   shown per field and writes nothing; an accepted run (202) opens its page, live over
   backtests.<id>. */
"use strict";
(() => {
  const form = document.getElementById("launch");
  const errors = document.getElementById("launch-errors");
  const words = (v) => v.split(/[\s,]+/).filter(Boolean);
  const scalar = (v) => (v === "true" || v === "false") ? v === "true"
    : (v !== "" && !Number.isNaN(Number(v))) ? Number(v) : v;
  function body() {
    const f = Object.fromEntries(new FormData(form).entries());
    const out = {
      strategy: f.strategy, symbols: words(f.symbols.toUpperCase()), timeframe: f.timeframe,
      start: f.start ? f.start + "T00:00:00Z" : "", end: f.end ? f.end + "T00:00:00Z" : "",
      source: f.source, objective: f.objective || "sharpe",
    };
    const params = {};
    for (const item of f.params.split(/\s+/).filter(Boolean)) {
      const at = item.indexOf("=");
      params[at < 0 ? item : item.slice(0, at)] = at < 0 ? "" : scalar(item.slice(at + 1));
    }
    if (Object.keys(params).length) out.params = params;
    if (f.fees_bps) out.fees_bps = f.fees_bps;
    if (f.optimize) { out.optimize = f.optimize; const space = f.space.split(/\s+/).filter(Boolean); if (space.length) out.space = space; }
    return out;
  }
  function show(data) {
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    const lines = [];
    for (const [field, msgs] of Object.entries(data || {})) {
      const el = form.elements[field];
      if (el) el.setAttribute("aria-invalid", "true");
      lines.push(`${field}: ${[].concat(msgs).join(" ")}`);
    }
    errors.textContent = lines.join("\n") || "refused";
    errors.hidden = false;
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = document.getElementById("launch-submit");
    button.disabled = true;
    errors.hidden = true;
    try {
      const res = await RRR.api("POST", form.dataset.api, body());
      if (res.status === 202) { location.href = `/backtests/${res.data.id}/`; return; }
      show(res.data && typeof res.data === "object" ? res.data : {error: `HTTP ${res.status}`});
    } catch (e) {
      show({error: String(e)});
    } finally {
      button.disabled = false;
    }
  });
})();
