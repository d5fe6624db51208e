// Drawing a report's answer: a query's rows as the chosen visualization (and a table), a
// view's answer as its lists of records. Used by the report builder and dashboard widgets.

import { barOption, chart, donutOption, funnelOption, heatmapOption, timeOption } from "./charts";
import { empty, fmt, h, isNum, table } from "./dom";
import type { MeasureInfo, QueryResult } from "./saved";

/** A value by its measure's unit. */
export function formatValue(v: unknown, unit?: string): string {
  if (v === null || v === undefined) return "—";
  if (!isNum(v)) return String(v);
  if (unit === "percent") return fmt.pct(v);
  if (unit === "seconds") return fmt.duration(v);
  if (unit === "count") return fmt.int(v);
  return fmt.num(v);
}

function isQueryResult(r: unknown): r is QueryResult {
  return typeof r === "object" && r !== null && Array.isArray((r as QueryResult).columns) && Array.isArray((r as QueryResult).rows);
}

/** Draws `result` into `into`: the chart of `visualization` above a table of the rows. */
export function drawAnswer(into: HTMLElement, result: unknown, visualization: string, measures: MeasureInfo[], compact = false): void {
  if (!isQueryResult(result)) {
    into.replaceChildren(viewTables(result, compact));
    return;
  }
  const unit = (name: string) => measures.find((m) => m.name === name)?.unit;
  const measureNames = Object.keys(result.totals ?? {});
  const keys = result.columns.slice(0, result.columns.length - measureNames.length);
  const rows = result.rows;
  const parts: HTMLElement[] = [];
  if (visualization === "kpi" || keys.length === 0) {
    parts.push(
      h(
        "div",
        { class: "kpis", "data-testid": "answer-kpis" },
        measureNames.map((m) =>
          h("div", { class: "kpi" }, h("div", { class: "kpi-label" }, fmt.label(m)), h("div", { class: "kpi-value", "data-metric": m }, formatValue(result.totals[m], unit(m)))),
        ),
      ),
    );
  } else if (visualization !== "table" && rows.length > 0) {
    const el = h("div", { class: compact ? "chart small" : "chart", "data-testid": "answer-chart" });
    parts.push(el);
    const labelAt = keys.indexOf("time") >= 0 ? keys.indexOf("time") : 0;
    const labels = rows.map((r) => String(r[labelAt] ?? "—"));
    const series = measureNames.map((m) => ({ name: fmt.label(m), values: rows.map((r) => (isNum(r[result.columns.indexOf(m)]) ? (r[result.columns.indexOf(m)] as number) : null)) }));
    const first = (r: unknown[]) => (isNum(r[keys.length]) ? (r[keys.length] as number) : 0);
    const option = (() => {
      switch (visualization) {
        case "line":
        case "area":
          return timeOption(labels, labels[0]?.length > 10 && keys[labelAt] === "time", series.map((s) => ({ ...s, area: visualization === "area" })));
        case "donut":
          return donutOption(rows.map((r) => ({ name: labels[rows.indexOf(r)], value: first(r) })), fmt.label(measureNames[0] ?? ""));
        case "funnel":
          return funnelOption(rows.map((r, i) => ({ name: labels[i], value: first(r) })));
        case "heatmap": {
          const hour = keys.indexOf("hour_of_day");
          const day = keys.indexOf("day_of_week");
          if (hour < 0 || day < 0) return barOption(labels, series);
          return heatmapOption(rows.map((r) => ({ hour_of_day: Number(r[hour]), day_of_week: Number(r[day]), value: first(r) })), unit(measureNames[0]) === "percent");
        }
        case "stacked_bar": {
          const o = barOption(labels, series) as { series: Record<string, unknown>[] };
          o.series = o.series.map((s) => ({ ...s, stack: "all" }));
          return o;
        }
        default:
          return barOption(labels, series);
      }
    })();
    requestAnimationFrame(() => el.isConnected && chart(el, option));
  }
  if (!compact || visualization === "table") {
    const cols = result.columns.map((c, i) => ({
      label: fmt.label(c),
      numeric: measureNames.includes(c),
      value: (r: unknown[]) => (c === "time" ? String(r[i]).slice(0, 16).replace("T", " ") : formatValue(r[i], unit(c))),
    }));
    parts.push(table(rows, cols, undefined, "answer-table"));
  }
  into.replaceChildren(...(parts.length ? parts : [empty()]));
}

/** A view's answer: each list of records a table, its single numbers a summary line. */
function viewTables(result: unknown, compact: boolean): HTMLElement {
  const lists: [string, Record<string, unknown>[]][] = [];
  const numbers: [string, unknown][] = [];
  const walk = (path: string, v: unknown) => {
    if (Array.isArray(v)) {
      if (v.length && v.every((x) => typeof x === "object" && x !== null && !Array.isArray(x))) lists.push([path, v as Record<string, unknown>[]]);
    } else if (typeof v === "object" && v !== null) {
      for (const [k, x] of Object.entries(v)) walk(path ? `${path}.${k}` : k, x);
    } else if (isNum(v)) numbers.push([path, v]);
  };
  walk("", result);
  const tables = lists.slice(0, compact ? 1 : lists.length).map(([name, records]) => {
    const cols = [...new Set(records.flatMap((r) => Object.keys(r).filter((k) => typeof r[k] !== "object" || r[k] === null)))].slice(0, compact ? 6 : 12);
    return h(
      "div",
      { class: "view-list" },
      compact ? null : h("h3", {}, fmt.label(name)),
      table(records, cols.map((c) => ({ label: fmt.label(c), numeric: records.some((r) => isNum(r[c])), value: (r: Record<string, unknown>) => formatValue(r[c]) })), undefined, "answer-table"),
    );
  });
  const summary = numbers.length
    ? h("div", { class: "view-numbers" }, numbers.slice(0, compact ? 4 : 20).map(([k, v]) => h("span", { class: "pill" }, `${fmt.label(k)}: ${formatValue(v)}`)))
    : null;
  return h("div", { class: "view-answer" }, summary, tables.length ? tables : summary ? null : empty());
}
