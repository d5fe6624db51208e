// Saved reports, dashboards, the catalogue questions are made of, and file exports (with an
// export job's progress when the server answers 202). The server decides every number: a
// report stores a question, and its answer is always the signed-in user's own.

import { ApiError, apiUrl, get, post, type Params, type Schemas } from "./api";
import { h } from "./dom";
import { DIMENSIONS, rangeParams, type Filters } from "./filters";

export type MeasureInfo = Schemas["MeasureInfo"];
export type ViewInfo = Schemas["ViewSpec"];
export type Catalogue = Schemas["Catalogue"];

let catalogue: Promise<Catalogue> | null = null;
/** The server's catalogue, read once per page load. */
export const loadCatalogue = () => (catalogue ??= get<Catalogue>("/catalogue").catch((e) => ((catalogue = null), Promise.reject(e))));

export type Sharing = Schemas["Sharing"];
/**
 * The general query (SPEC §5) as pages and the builder write it: the server's `Query`, with
 * measure, dimension, granularity and preset names as plain strings (they come from
 * `/catalogue` at run time; the server checks them).
 */
export type Query = Omit<Schemas["Query"], "measures" | "dimensions" | "granularity" | "range" | "compare"> & {
  measures: string[];
  dimensions?: string[];
  granularity?: string;
  range: { preset?: string; start?: string; end?: string };
  compare?: string;
};
/** A report's definition: a query, or a view with its parameters (`description` may be left out). */
export type ReportDef = Omit<Schemas["ReportDef"], "query" | "description"> & { query?: Query; description?: string };
export type Report = ReportDef & Schemas["SavedMeta"];
export type ReportVersion = Omit<Schemas["ReportVersion"], "report"> & { report: ReportDef };
export type Widget = Schemas["Widget"];
export type DashboardDef = Schemas["DashboardDef"];
export type Dashboard = Schemas["Dashboard"];
export type DashboardVersion = Schemas["DashboardVersion"];
/** `/query`'s answer. */
export type QueryResult = Schemas["QueryAnswer"];

/** A view's answer at `/analytics/{name}[/{id}]`, as its page would read it. */
export function viewAnswer(view: string, params: Record<string, string> = {}, info?: ViewInfo): Promise<unknown> {
  const rest: Params = { ...params };
  let path = `/analytics/${view}`;
  if (info?.path_param) {
    path += `/${encodeURIComponent(params[info.path_param] ?? "")}`;
    delete rest[info.path_param];
  }
  return get(path, rest);
}

// --- Files ---------------------------------------------------------------------------------

export type Format = "csv" | "xlsx" | "pdf";

/** An export job, as the OpenAPI document describes it. */
type ExportJob = Schemas["ExportJob"];

/** The progress line of the export running now (one at a time is plenty for a person). */
const progress = h("div", { class: "export-progress", role: "status", "data-testid": "export-progress", hidden: true });
document.body.append(progress);

function showProgress(text: string | null, done = 0, total: number | null = null) {
  progress.hidden = text === null;
  if (text === null) return;
  const bar = h("progress", { max: total ?? 1, value: total ? done : 0 });
  progress.replaceChildren(h("span", {}, text), bar);
}

function saveBlob(blob: Blob, name: string) {
  const href = URL.createObjectURL(blob);
  const a = h("a", { href, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60_000);
}

function fileName(res: Response, fallback: string): string {
  const m = /filename="([^"]+)"/.exec(res.headers.get("content-disposition") ?? "");
  return m?.[1] ?? fallback;
}

async function failed(res: Response): Promise<never> {
  const body = await res.json().catch(() => ({}));
  const err = body?.error ?? {};
  const fields = (err.fields ?? []) as { field: string; message: string }[];
  throw new ApiError(res.status, err.code ?? "error", fields.map((f) => `${f.field}: ${f.message}`).join("; ") || err.message || res.statusText);
}

/** Follows an export job until its file is there, showing its progress, then downloads it. */
async function followJob(location: string, name: string): Promise<void> {
  for (;;) {
    const job = await get<ExportJob>(location.replace(/^\/api\/v1/, ""));
    const { done, total } = job.progress;
    showProgress(`Export ${job.status}: ${done.toLocaleString()}${total ? ` of ${total.toLocaleString()}` : ""} rows`, done, total);
    if (job.status === "succeeded" && job.file_url) return download("GET", job.file_url, undefined, name);
    if (job.status === "failed") throw new Error(`the export failed: ${job.error ?? "unknown error"}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Downloads a file the API renders (`GET …?format=` or `POST …?format=`); a `202` is a job to follow. */
export async function download(method: "GET" | "POST", path: string, body: unknown, name: string): Promise<void> {
  showProgress(`Preparing ${name}…`);
  try {
    const res = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 202) return await followJob(res.headers.get("location") ?? "", name);
    if (!res.ok) await failed(res);
    saveBlob(await res.blob(), fileName(res, name));
  } finally {
    showProgress(null);
  }
}

/** What an export button exports: a saved report, an unsaved question, or a URL with `format`. */
export type Exportable = { report: string } | { def: () => ReportDef } | { url: (format: Format) => string };

/** CSV, XLSX and PDF buttons; errors show beside them. */
export function exportButtons(what: Exportable, name = "export"): HTMLElement {
  const error = h("span", { class: "export-error", role: "alert" });
  const run = async (format: Format) => {
    error.textContent = "";
    try {
      const file = `${name}.${format}`;
      if ("report" in what) await download("GET", apiUrl(`/reports/${what.report}/result`, { format }), undefined, file);
      else if ("def" in what) await download("POST", apiUrl("/reports/preview", { format }), what.def(), file);
      else await download("GET", what.url(format), undefined, file);
    } catch (e) {
      error.textContent = (e as Error).message;
    }
  };
  return h(
    "span",
    { class: "exports", "data-testid": "exports" },
    (["csv", "xlsx", "pdf"] as Format[]).map((f) => h("button", { type: "button", class: "small", "data-testid": `export-${f}`, onclick: () => run(f) }, f.toUpperCase())),
    error,
  );
}

/** A link opening `def` in the report builder ("explore from here"). */
export function exploreLink(def: Partial<ReportDef>): HTMLElement {
  const q = encodeURIComponent(JSON.stringify(def));
  return h("a", { class: "explore", href: `/builder?q=${q}`, "data-testid": "explore", title: "open this question in the report builder" }, "Explore");
}

/** The question of a page's view, as a report asks it. */
export function viewQuestion(view: string, params: Params, visualization = "table", name?: string): Partial<ReportDef> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") clean[k] = v;
  return { name: name ?? view, view, params: clean, visualization };
}

/** A query over a page's filters (range, zone, dimensions) asking `q`. */
export function queryOf(f: Filters, q: Partial<Query>): Query {
  const filters: Record<string, string[]> = {};
  for (const d of DIMENSIONS) if (f[d]) filters[d] = f[d]!.split(",");
  const range = rangeParams(f);
  return {
    measures: [],
    ...q,
    filters: { ...filters, ...q.filters },
    range: range.preset ? { preset: range.preset } : { start: range.start, end: range.end },
    ...(f.timezone ? { timezone: f.timezone } : {}),
  };
}

/** The unsaved report a page's view or query is, for its export buttons. */
export const pageExport = (def: Partial<ReportDef>): Exportable => ({ def: () => ({ visualization: "table", sharing: { kind: "private" }, name: "export", ...def }) });

export const postPreview = (def: ReportDef) => post<Schemas["PreviewAnswer"]>("/reports/preview", def);
