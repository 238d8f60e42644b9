// The dashboard: workers, queues, per-model figures and uPlot charts, redrawn from
// dashboard.json every few seconds without reloading the page.
(function () {
  "use strict";
  const root = document.getElementById("dashboard");
  if (!root) return;
  const COLORS = ["#b45309", "#2563eb", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#4b5563"];
  let data = JSON.parse(document.getElementById("dashboard-data").textContent);
  let windowName = "hour";
  const charts = {};

  function cell(row, text, cls) {
    const td = row.insertCell();
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function fill(tableId, rows, empty, columns) {
    const body = document.querySelector(`#${tableId} tbody`);
    body.replaceChildren();
    if (!rows || !rows.length) {
      cell(body.insertRow(), empty, "muted").colSpan = columns;
      return body;
    }
    return body;
  }

  // Small rates keep two significant digits (8 tokens in an hour is 0.0022/s, not 0.00).
  const rate = (v) => (v === 0 ? "0" : v < 0.1 ? v.toPrecision(2) : v.toFixed(2));
  const ms = (v) => (v === null || v === undefined ? "—" : `${Math.round(v)} ms`);

  function renderWorkers() {
    const body = fill("workers", data.workers, data.workers === null ? "unknown: Redis is not answering" : "no worker is running", 4);
    for (const w of data.workers || []) {
      const row = body.insertRow();
      row.dataset.state = w.state;
      cell(row, w.name);
      cell(row, w.kind);
      cell(row, w.state, `state state-${w.state}`);
      const what = w.kind === "jobs" ? (w.jobs.join(", ") || "—")
        : (w.models.map((m) => `${m.model} (${m.digest}) ${m.state}`).join(", ") || "none loaded");
      cell(row, what);
    }
  }

  function renderQueues() {
    const body = fill("queues", data.queues, "unknown: Redis is not answering", 2);
    for (const q of data.queues || []) {
      const row = body.insertRow();
      cell(row, q.model ? `${q.model} (${q.queue})` : `${q.queue} (pulls, checks)`);
      cell(row, q.depth, "num");
    }
  }

  function renderFigures() {
    const models = data.windows[windowName].models;
    const body = fill("model-figures", models, `no requests in the last ${windowName}`, 9);
    for (const m of models) {
      const row = body.insertRow();
      cell(row, m.model);
      cell(row, m.requests, "num");
      cell(row, rate(m.requests_per_minute), "num");
      cell(row, rate(m.tokens_per_second), "num");
      cell(row, `${(m.error_rate * 100).toFixed(1)} %`, "num");
      cell(row, ms(m.latency_p50_ms), "num");
      cell(row, ms(m.latency_p95_ms), "num");
      cell(row, ms(m.ttft_p50_ms), "num");
      cell(row, ms(m.ttft_p95_ms), "num");
    }
  }

  function renderChart(el) {
    const series = data.windows[windowName].series;
    const metric = el.dataset.metric;
    const names = Object.keys(series.models).sort();
    const values = [series.x, ...names.map((n) => series.models[n][metric])];
    const key = `${windowName}|${names.join(",")}`;
    let chart = charts[el.id];
    if (!chart || chart.key !== key) {
      if (chart) chart.plot.destroy();
      const opts = {
        width: Math.max(200, el.clientWidth), height: 200,
        series: [{}, ...names.map((n, i) => ({ label: n, stroke: COLORS[i % COLORS.length], width: 2,
                                               fill: COLORS[i % COLORS.length] + "22" }))],
        axes: [{}, { size: 50 }],
        scales: { y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
        legend: { show: names.length > 0 },
      };
      chart = charts[el.id] = { key, plot: new uPlot(opts, values, el) };
    } else {
      chart.plot.setData(values);
    }
    // What the chart shows, for people who cannot see it (and for the browser tests).
    const total = values.slice(1).reduce((sum, line) => sum + line.reduce((a, b) => a + b, 0), 0);
    el.dataset.total = String(Math.round(total * 1000) / 1000);
    el.setAttribute("aria-label", `${names.length} model(s), sum ${el.dataset.total}`);
  }

  function render() {
    renderWorkers();
    renderQueues();
    renderFigures();
    document.querySelectorAll("#dashboard .chart").forEach(renderChart);
    document.getElementById("updated").textContent = `updated ${new Date(data.now).toLocaleTimeString()}`;
    root.dataset.updated = data.now;
  }

  async function poll() {
    try {
      const response = await fetch(root.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) {
        data = await response.json();
        render();
      } else {
        document.getElementById("updated").textContent = `could not refresh (HTTP ${response.status})`;
      }
    } catch (error) {
      document.getElementById("updated").textContent = "could not refresh (the server does not answer)";
    } finally {
      setTimeout(poll, Number(root.dataset.every) * 1000);
    }
  }

  document.querySelectorAll("#figures .tab").forEach((tab) => tab.addEventListener("click", () => {
    windowName = tab.dataset.window;
    document.querySelectorAll("#figures .tab").forEach((t) => t.setAttribute("aria-selected", String(t === tab)));
    render();
  }));
  render();
  setTimeout(poll, Number(root.dataset.every) * 1000);
})();
