// Staffing: the forecast with its 80% band and today's actual calls, the agents Erlang C (or A)
// needs per 15 minutes against the agents online, the service target's inputs, and the
// forecast's backtest against seasonal naive. Every number is the server's
// (/analytics/forecast, /analytics/staffing); the page only draws them.

import { get, latest, type Schemas } from "../api";
import { choice, type Page, type PageContext } from "../app";
import { chart } from "../charts";
import { fill, fmt, h, isNum, panel, table } from "../dom";
import type { Filters } from "../filters";

type Slot = Schemas["StaffingInterval"];
type StaffingView = Schemas["StaffingView"];
type ForecastView = Schemas["ForecastView"];
type Backtest = Schemas["Backtest"];
type Patience = Schemas["Patience"];

/** The service target's inputs, kept in the URL like every choice. */
const TARGET_INPUTS: [string, string, string][] = [
  ["service_level", "Service level %", "80"],
  ["target_seconds", "answered within (s)", "20"],
  ["max_occupancy", "Max occupancy %", "85"],
  ["shrinkage", "Shrinkage %", "30"],
  ["patience_seconds", "Patience (s, Erlang A; empty: from the data)", ""],
];

function targetForm(ctx: PageContext): HTMLElement {
  const inputs = TARGET_INPUTS.map(([name, label, fallback]) =>
    h(
      "label",
      { class: "field" },
      label,
      h("input", { type: "number", name, min: "0", step: "any", value: ctx.params.get(name) ?? fallback, placeholder: fallback || "from data", "data-testid": `input-${name}` }),
    ),
  );
  const apply = (e: Event) => {
    e.preventDefault();
    const q = new URLSearchParams(location.search);
    for (const [name] of TARGET_INPUTS) {
      const v = (form.querySelector(`input[name=${name}]`) as HTMLInputElement).value.trim();
      if (v) q.set(name, v);
      else q.delete(name);
    }
    ctx.navigate(`${location.pathname}?${q}`);
  };
  const form = h("form", { class: "target-form", onsubmit: apply }, inputs, h("button", { type: "submit", "data-testid": "apply-target" }, "Apply"));
  return form;
}

function planParams(f: Filters, params: URLSearchParams): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { team: f.team, campaign: f.campaign, timezone: f.timezone };
  for (const [name] of TARGET_INPUTS) out[name] = params.get(name) ?? undefined;
  return out;
}

const time = (start: string) => start.slice(11, 16);

/** A band (low to high, stacked) under a line, the way ECharts draws confidence areas. */
function bandSeries(name: string, low: number[], high: number[]) {
  return [
    { name: `${name} low`, type: "line", data: low, stack: name, lineStyle: { opacity: 0 }, symbol: "none", tooltip: { show: false } },
    {
      name: `${name} (80% band)`,
      type: "line",
      data: high.map((v, i) => Math.max(0, v - low[i])),
      stack: name,
      lineStyle: { opacity: 0 },
      symbol: "none",
      areaStyle: { opacity: 0.18, color: "#2563eb" },
    },
  ];
}

function todayChart(el: HTMLElement, v: StaffingView) {
  const rows = v.intervals;
  chart(el, {
    tooltip: { trigger: "axis" },
    legend: { bottom: 0, type: "scroll", data: ["Forecast", "Re-forecast", "Actual", "Forecast (80% band)"] },
    grid: { left: 48, right: 16, top: 16, bottom: 48 },
    xAxis: { type: "category", data: rows.map((r) => time(r.start)), boundaryGap: false },
    yAxis: { type: "value", name: "calls / 15 min" },
    series: [
      ...bandSeries(
        "Forecast",
        rows.map((r) => r.forecast_low),
        rows.map((r) => r.forecast_high),
      ),
      { name: "Forecast", type: "line", data: rows.map((r) => r.forecast_calls), showSymbol: false, lineStyle: { width: 2 } },
      { name: "Re-forecast", type: "line", data: rows.map((r) => r.reforecast_calls), showSymbol: false, lineStyle: { type: "dashed", width: 2 } },
      { name: "Actual", type: "bar", data: rows.map((r) => r.actual_calls), itemStyle: { color: "#16a34a", opacity: 0.7 } },
    ],
  });
}

function agentsChart(el: HTMLElement, v: StaffingView) {
  const rows = v.intervals;
  chart(el, {
    tooltip: { trigger: "axis" },
    legend: { bottom: 0, type: "scroll" },
    grid: { left: 48, right: 16, top: 16, bottom: 48 },
    xAxis: { type: "category", data: rows.map((r) => time(r.start)), boundaryGap: false },
    yAxis: { type: "value", name: "agents" },
    series: [
      { name: "Required", type: "line", step: "end", data: rows.map((r) => r.agents), showSymbol: false },
      { name: "Scheduled (with shrinkage)", type: "line", step: "end", data: rows.map((r) => r.scheduled_agents), showSymbol: false, lineStyle: { type: "dotted" } },
      { name: "Online", type: "line", data: rows.map((r) => r.agents_online), showSymbol: false, areaStyle: { opacity: 0.12 } },
    ],
  });
}

function forecastChart(el: HTMLElement, f: ForecastView) {
  const slots = f.days.flatMap((d) => d.intervals);
  chart(el, {
    tooltip: { trigger: "axis" },
    legend: { bottom: 0, type: "scroll", data: ["Forecast", "Forecast (80% band)"] },
    grid: { left: 48, right: 16, top: 16, bottom: 48 },
    xAxis: { type: "category", data: slots.map((s) => `${s.start.slice(5, 10)} ${time(s.start)}`), boundaryGap: false },
    yAxis: { type: "value", name: "calls / 15 min" },
    series: [
      ...bandSeries(
        "Forecast",
        slots.map((s) => s.low),
        slots.map((s) => s.high),
      ),
      { name: "Forecast", type: "line", data: slots.map((s) => s.calls), showSymbol: false, lineStyle: { width: 1.5 } },
    ],
  });
}

function backtestPanel(b: Backtest): HTMLElement {
  const pct = (v: number | null) => (isNum(v) ? fmt.pct(v * 100) : "—");
  const verdict = b.beats_baseline === null ? "not enough history" : b.beats_baseline ? "beats seasonal naive" : "does not beat seasonal naive";
  return h(
    "div",
    { class: "kpis", "data-testid": "backtest" },
    [
      ["Forecast WAPE", pct(b.wape)],
      ["Seasonal naive WAPE", pct(b.baseline_wape)],
      ["Forecast MASE", fmt.num(b.mase)],
      ["Seasonal naive MASE", fmt.num(b.baseline_mase)],
      ["Band coverage", pct(b.interval_coverage)],
      ["Weeks tested", `${b.weeks} — ${verdict}`],
    ].map(([l, v]) => h("div", { class: "kpi" }, h("div", { class: "kpi-label" }, l), h("div", { class: "kpi-value" }, v))),
  );
}

/** The interval table as CSV, for download: the same rows the table shows. */
function csvLink(v: StaffingView): HTMLElement {
  const columns: [string, (s: Slot) => unknown][] = [
    ["start", (s) => s.start],
    ["forecast_calls", (s) => s.forecast_calls],
    ["forecast_low", (s) => s.forecast_low],
    ["forecast_high", (s) => s.forecast_high],
    ["reforecast_calls", (s) => s.reforecast_calls],
    ["actual_calls", (s) => s.actual_calls],
    ["aht_seconds", (s) => s.aht_seconds],
    ["agents", (s) => s.agents],
    ["scheduled_agents", (s) => s.scheduled_agents],
    ["agents_online", (s) => s.agents_online],
    ["service_level", (s) => s.service_level],
    ["asa_seconds", (s) => s.asa_seconds],
    ["occupancy", (s) => s.occupancy],
  ];
  const lines = [columns.map((c) => c[0]).join(","), ...v.intervals.map((s) => columns.map(([, get]) => (get(s) ?? "") as string).join(","))];
  const href = URL.createObjectURL(new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" }));
  return h("a", { href, download: `staffing-${v.date}.csv`, class: "button", "data-testid": "export-staffing" }, "Export CSV");
}

function patienceText(p: Patience): string {
  if (p.source === "parameter") return `${fmt.duration(p.seconds)} (given)`;
  if (p.source === "none" || !isNum(p.seconds)) return p.source === "data" ? "no abandons seen" : "—";
  return `${fmt.duration(p.seconds)} (from ${fmt.int(p.abandoned_calls)} abandons)`;
}

function render(ctx: PageContext) {
  const { filters: f, params } = ctx;
  const [days, pickDays] = choice(
    ctx,
    "days",
    [
      ["7", "Next 7 days"],
      ["14", "Next 14 days"],
      ["1", "Today"],
    ],
    "7",
  );
  const today = h("div", { class: "chart tall", "data-testid": "chart-staffing-forecast" });
  const agents = h("div", { class: "chart tall", "data-testid": "chart-staffing-agents" });
  const ahead = h("div", { class: "chart", "data-testid": "chart-forecast" });
  const backtest = h("div", {});
  const summary = h("div", { class: "kpis" });
  const rows = h("div", {});
  const exportSlot = h("span", {});
  ctx.root.replaceChildren(
    panel("Service target", targetForm(ctx), null, "wide"),
    summary,
    panel("Today: forecast, band and actual calls", today, null, "wide"),
    panel("Agents required vs online", agents, null, "wide"),
    panel("Forecast", ahead, pickDays, "wide"),
    panel("Backtest (last weeks, 1–7 days ahead)", backtest, null, "wide"),
    panel("Intervals", rows, exportSlot, "wide"),
  );
  const load = latest(() => {
    const p = planParams(f, params);
    fill(rows, async () => {
      const v = await get<StaffingView>("/analytics/staffing", p);
      todayChart(today, v);
      agentsChart(agents, v);
      exportSlot.replaceChildren(csvLink(v));
      fill(summary, async () =>
        [
          ["Model", v.model === "erlang_a" ? "Erlang A" : "Erlang C"],
          ["Patience", patienceText(v.patience)],
          ["Forecast calls today", fmt.int(v.totals.forecast_calls)],
          ["Re-forecast", fmt.int(v.totals.reforecast_calls)],
          ["Actual so far", fmt.int(v.totals.actual_calls)],
          ["Peak agents", fmt.int(v.totals.peak_agents)],
          ["Peak scheduled", fmt.int(v.totals.peak_scheduled_agents)],
        ].map(([l, val]) => h("div", { class: "kpi" }, h("div", { class: "kpi-label" }, l), h("div", { class: "kpi-value", "data-testid": `kpi-${l}` }, val))),
      );
      const busy = v.intervals.filter((s) => s.forecast_calls > 0 || (s.actual_calls ?? 0) > 0 || (s.agents_online ?? 0) > 0);
      return table(
        busy,
        [
          { label: "Interval", value: (s) => time(s.start) },
          { label: "Forecast", value: (s) => fmt.num(s.reforecast_calls ?? s.forecast_calls), numeric: true },
          { label: "Actual", value: (s) => fmt.int(s.actual_calls), numeric: true },
          { label: "AHT", value: (s) => fmt.duration(s.aht_seconds), numeric: true },
          { label: "Required", value: (s) => fmt.int(s.agents), numeric: true },
          { label: "Scheduled", value: (s) => fmt.int(s.scheduled_agents), numeric: true },
          { label: "Online", value: (s) => fmt.num(s.agents_online), numeric: true, cls: (s) => (isNum(s.agents_online) && s.agents_online < s.agents ? "bad" : "") },
          { label: "Service level", value: (s) => fmt.pct(s.service_level), numeric: true },
          { label: "ASA", value: (s) => fmt.duration(s.asa_seconds), numeric: true },
          { label: "Occupancy", value: (s) => fmt.pct(s.occupancy), numeric: true },
        ],
        undefined,
        "staffing-intervals",
      );
    });
    fill(backtest, async () => {
      const r = await get<ForecastView>("/analytics/forecast", { team: f.team, campaign: f.campaign, timezone: f.timezone, days });
      forecastChart(ahead, r);
      return backtestPanel(r.backtest);
    });
  });
  load();
  ctx.live(load);
}

export const staffing: Page = {
  path: "/staffing",
  title: "Staffing",
  controls: ["timezone", "team", "campaign"],
  defaultPreset: "today",
  roles: ["admin", "manager", "viewer"],
  render,
};
