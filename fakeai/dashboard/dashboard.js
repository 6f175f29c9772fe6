// fakeai dashboard: shows GET /metrics and charts GET /metrics/history, refreshed on a timer.
// The range selector charts the live history (no parameters), or the last hour or day from the
// history database (?since=&step=, merged server-side to at most 720 points).
//
// Every figure on the page is an element with data-metric (a JSON path into /metrics) and
// data-format; after each refresh it carries the raw value in data-value and the formatted
// text with its unit, so what is shown is /metrics as it was fetched, nothing recomputed.
"use strict";

(function () {
  const FORMATS = {
    text: (v) => String(v),
    count: (v) => String(v),
    rate: (v, unit) => `${v.toFixed(2)} ${unit}`,
    number: (v, unit) => (unit ? `${v.toFixed(2)} ${unit}` : v.toFixed(2)),
    ms: (v) => `${(v * 1000).toFixed(2)} ms`,
    percent: (v) => `${v.toFixed(2)} %`,
    ratio: (v) => `${(v * 100).toFixed(2)} %`,
  };
  const HEALTH_LEVELS = ["healthy", "degraded", "unhealthy"];

  const RANGES = {
    live: "/metrics/history",
    "1h": "/metrics/history?since=1h&step=5",
    "1d": "/metrics/history?since=1d&step=120",
  };

  const state = {
    refreshSeconds: initialRefresh(),
    range: initialRange(),
    timer: null,
    charts: {},
    snapshot: null,
    refreshes: 0,
  };
  window.fakeaiDashboard = state; // for people (and tests) poking at the page

  function initialRefresh() {
    const fromUrl = new URLSearchParams(window.location.search).get("refresh");
    const fromServer = document.body.dataset.refreshSeconds;
    const value = Number(fromUrl !== null ? fromUrl : fromServer);
    return Number.isFinite(value) && value >= 0 ? value : 5;
  }

  function initialRange() {
    const fromUrl = new URLSearchParams(window.location.search).get("range");
    return Object.prototype.hasOwnProperty.call(RANGES, fromUrl) ? fromUrl : "live";
  }

  function lookup(document_, path) {
    return path.reduce((node, key) => (node === undefined || node === null ? undefined : node[key]), document_);
  }

  function show(element, value) {
    const format = FORMATS[element.dataset.format] || FORMATS.text;
    if (value === undefined || value === null) {
      element.textContent = "\u2013";
      element.removeAttribute("data-value");
      return;
    }
    element.dataset.value = typeof value === "string" ? value : JSON.stringify(value);
    element.textContent = format(value, element.dataset.unit || "");
  }

  function cell(row, path, format, unit) {
    const td = document.createElement("td");
    td.dataset.metric = JSON.stringify(path);
    td.dataset.format = format;
    if (unit) td.dataset.unit = unit;
    row.appendChild(td);
    return td;
  }

  function renderEndpoints(metrics) {
    const body = document.querySelector("#endpoint-table tbody");
    body.replaceChildren();
    for (const endpoint of Object.keys(metrics.responses).sort()) {
      const row = document.createElement("tr");
      row.dataset.endpoint = endpoint;
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = endpoint;
      row.appendChild(name);
      cell(row, ["responses", endpoint, "rate"], "rate", "req/s");
      for (const field of ["p50", "p90", "p99", "min", "max"]) cell(row, ["responses", endpoint, field], "ms");
      cell(row, ["tokens", endpoint, "rate"], "rate", "tokens/s");
      const errors = document.createElement("td");
      const count = metrics.errors[endpoint].count;
      const badge = document.createElement("span");
      badge.className = count > 0 ? "badge badge-error" : "badge badge-ok";
      badge.dataset.metric = JSON.stringify(["errors", endpoint, "count"]);
      badge.dataset.format = "count";
      errors.appendChild(badge);
      const rate = document.createElement("span");
      rate.className = "badge-rate";
      rate.dataset.metric = JSON.stringify(["errors", endpoint, "rate"]);
      rate.dataset.format = "rate";
      rate.dataset.unit = "/s";
      errors.appendChild(rate);
      row.appendChild(errors);
      body.appendChild(row);
    }
  }

  function renderWorkers(metrics) {
    const body = document.querySelector("#workers tbody");
    body.replaceChildren();
    metrics.smart_routing.workers.forEach((worker, index) => {
      const row = document.createElement("tr");
      const name = document.createElement("th");
      name.scope = "row";
      name.textContent = String(worker.worker);
      row.appendChild(name);
      const path = (field) => ["smart_routing", "workers", index, field];
      cell(row, path("active_requests"), "count");
      cell(row, path("requests_running"), "count");
      cell(row, path("requests_waiting"), "count");
      cell(row, path("preemptions"), "count");
      cell(row, path("requests_routed"), "count");
      cell(row, path("cached_tokens"), "count");
      cell(row, path("blocks_used"), "count");
      cell(row, path("usage"), "ratio");
      cell(row, path("evictions"), "count");
      body.appendChild(row);
    });
  }

  function render(metrics) {
    renderEndpoints(metrics);
    renderWorkers(metrics);
    for (const element of document.querySelectorAll("[data-metric]")) {
      show(element, lookup(metrics, JSON.parse(element.dataset.metric)));
    }
    const bar = document.getElementById("status-bar");
    const status = metrics.summary.status;
    bar.classList.remove("health-unknown", ...HEALTH_LEVELS.map((level) => `health-${level}`));
    bar.classList.add(HEALTH_LEVELS.includes(status) ? `health-${status}` : "health-unknown");
    document.getElementById("updated").textContent = new Date(metrics.timestamp * 1000).toLocaleTimeString();
  }

  // -- charts ------------------------------------------------------------------------------

  const CHARTS = {
    "chart-rps": [{ label: "requests/s", field: "requests_per_second", stroke: "#0969da" }],
    "chart-latency": [
      { label: "p50 ms", field: "latency_p50_seconds", scale: 1000, stroke: "#1a7f37" },
      { label: "p99 ms", field: "latency_p99_seconds", scale: 1000, stroke: "#cf222e" },
    ],
    "chart-ttft": [{ label: "TTFT p99 ms", field: "ttft_p99_seconds", scale: 1000, stroke: "#8250df" }],
    "chart-tokens": [{ label: "tokens/s", field: "completion_tokens_per_second", stroke: "#bf8700" }],
    "chart-errors": [{ label: "error %", field: "error_rate_percentage", stroke: "#cf222e" }],
    "chart-kv": [{ label: "hit %", field: "kv_cache_hit_rate", scale: 100, stroke: "#1f883d" }],
    "chart-queue": [
      { label: "waiting", field: "requests_waiting", stroke: "#cf222e" },
      { label: "running", field: "requests_running", stroke: "#0969da" },
    ],
  };

  function chartData(history, lines) {
    const series = history.series;
    const scaled = (values, scale) => values.map((v) => (v === null ? null : v * (scale || 1)));
    return [series.timestamp, ...lines.map((line) => scaled(series[line.field], line.scale))];
  }

  function renderCharts(history) {
    for (const [id, lines] of Object.entries(CHARTS)) {
      const data = chartData(history, lines);
      const target = document.getElementById(id);
      if (!state.charts[id]) {
        const options = {
          width: Math.max(target.clientWidth, 240),
          height: 160,
          legend: { show: lines.length > 1 },
          scales: { x: { time: true } },
          series: [{}, ...lines.map((line) => ({ label: line.label, stroke: line.stroke, width: 1.5, spanGaps: false }))],
        };
        state.charts[id] = new uPlot(options, data, target);
      } else {
        state.charts[id].setData(data);
      }
    }
  }

  window.addEventListener("resize", () => {
    for (const [id, chart] of Object.entries(state.charts)) {
      chart.setSize({ width: Math.max(document.getElementById(id).clientWidth, 240), height: 160 });
    }
  });

  // -- refreshing --------------------------------------------------------------------------

  function setConnection(connected) {
    const element = document.getElementById("connection");
    element.textContent = connected ? "connected" : "disconnected";
    element.className = `connection ${connected ? "connected" : "disconnected"}`;
    document.body.classList.toggle("disconnected", !connected);
  }

  async function fetchJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  }

  async function refresh() {
    try {
      const [metrics, history] = await Promise.all([fetchJson("/metrics"), fetchJson(RANGES[state.range])]);
      state.snapshot = metrics;
      render(metrics);
      renderCharts(history);
      setConnection(true);
    } catch (error) {
      setConnection(false);
    }
    state.refreshes += 1;
    document.body.dataset.refreshes = String(state.refreshes);
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = null;
    if (state.refreshSeconds > 0) {
      state.timer = setTimeout(async () => {
        await refresh();
        schedule();
      }, state.refreshSeconds * 1000);
    }
  }

  const select = document.getElementById("refresh");
  if (![...select.options].some((option) => Number(option.value) === state.refreshSeconds)) {
    select.add(new Option(`${state.refreshSeconds} s`, String(state.refreshSeconds)), 0);
  }
  select.value = String(state.refreshSeconds);
  select.addEventListener("change", () => {
    state.refreshSeconds = Number(select.value);
    schedule();
  });

  const range = document.getElementById("range");
  range.value = state.range;
  range.addEventListener("change", async () => {
    state.range = range.value;
    await refresh();
    schedule();
  });

  refresh().then(schedule);
})();
