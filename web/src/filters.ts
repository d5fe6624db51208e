// The filter bar's state lives in the URL: a link or the back button restores a view exactly.

import type { Params } from "./api";

export const PRESETS = [
  ["today", "Today"],
  ["yesterday", "Yesterday"],
  ["this_week", "This week"],
  ["last_7_days", "Last 7 days"],
  ["last_30_days", "Last 30 days"],
  ["this_month", "This month"],
  ["this_quarter", "This quarter"],
  ["all_time", "All time"],
] as const;

/** The dimension filters of the bar, each a query parameter of the same name. */
export const DIMENSIONS = ["team", "agent", "campaign", "disposition", "lead_source"] as const;
export type Dimension = (typeof DIMENSIONS)[number];

export interface Filters {
  preset?: string;
  start?: string;
  end?: string;
  timezone?: string;
  team?: string;
  agent?: string;
  campaign?: string;
  disposition?: string;
  lead_source?: string;
  /** Comparison with the previous period; on unless the URL says `compare=off`. */
  compare: boolean;
}

export const FILTER_KEYS = ["preset", "start", "end", "timezone", ...DIMENSIONS, "compare"];

/** The URL's filters; without dates or a preset, the range is the page's `defaultPreset`. */
export function readFilters(defaultPreset: string): Filters {
  const q = new URLSearchParams(location.search);
  const f: Filters = { compare: q.get("compare") !== "off" };
  for (const k of ["preset", "start", "end", "timezone", ...DIMENSIONS] as const) f[k] = q.get(k) || undefined;
  if (!f.start && !f.end) f.preset ??= defaultPreset;
  return f;
}

/** The URL's query with `changes` applied; other parameters (a page's own) are kept. */
export function withFilters(changes: Partial<Filters> & Record<string, string | boolean | undefined>): string {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (k === "compare") {
      if (v === false) q.set("compare", "off");
      else q.delete("compare");
    } else if (v === undefined || v === "" || v === false) q.delete(k);
    else q.set(k, String(v));
  }
  // A custom range replaces the preset and the other way round.
  if ("start" in changes || "end" in changes) q.delete("preset");
  if ("preset" in changes) {
    q.delete("start");
    q.delete("end");
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** The range as the API takes it. */
export function rangeParams(f: Filters): Params {
  if (f.start || f.end) {
    // The bar's dates are inclusive; the API's end is exclusive. One date alone is one day.
    const start = f.start ?? f.end!;
    const last = f.end && f.end >= start ? f.end : start;
    return { start, end: nextDay(last) };
  }
  return { preset: f.preset };
}

export function nextDay(date: string): string {
  const d = new Date(`${date}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

/** The shared parameters of an analytics view or a drill-down: range, zone, dimension filters. */
export function sharedParams(f: Filters): Params {
  const p: Params = { ...rangeParams(f), timezone: f.timezone };
  for (const d of DIMENSIONS) p[d] = f[d];
  return p;
}

/** Whether the range shown includes today, so live updates can change it. */
export function includesToday(f: Filters): boolean {
  if (f.start || f.end) return !f.end || f.end >= new Date().toISOString().slice(0, 10);
  return f.preset !== "yesterday";
}
