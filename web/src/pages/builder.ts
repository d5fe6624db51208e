// The report builder: a question made from the server's catalogue (measures, dimensions,
// filters, granularity, range, timezone, comparison, or a built-in view with its parameters),
// its answer drawn live as it changes, saved as a versioned report, opened, edited, restored,
// shared and exported. `/builder?id=` opens a saved report; `/builder?q=` an explored question.

import { del, get, post, put } from "../api";
import type { Page, PageContext } from "../app";
import { drawAnswer } from "../answer";
import { disposeCharts } from "../charts";
import { failure, fmt, h, loading, panel } from "../dom";
import { exportButtons, loadCatalogue, postPreview, type Catalogue, type Query, type Report, type ReportDef, type ReportVersion, type Sharing } from "../saved";

const FILTERABLE_ROWS = 4;

function blank(ctx: PageContext): ReportDef {
  return {
    name: "",
    description: "",
    query: { measures: ["total_calls"], dimensions: [], range: { preset: "last_7_days" }, timezone: ctx.app.settings.timezone },
    visualization: "table",
    sharing: { kind: "private" },
  };
}

/** What the URL asks for: an explored question (`q`), else a new one. */
function fromUrl(ctx: PageContext): ReportDef {
  const q = ctx.params.get("q");
  if (!q) return blank(ctx);
  try {
    const asked = JSON.parse(q) as Partial<ReportDef>;
    return { ...blank(ctx), ...asked, name: asked.name ?? "", query: asked.view ? undefined : { ...blank(ctx).query!, ...asked.query } };
  } catch {
    return blank(ctx);
  }
}

function render(ctx: PageContext) {
  ctx.root.replaceChildren(loading());
  loadCatalogue()
    .then((cat) => builder(ctx, cat))
    .catch((e) => ctx.root.replaceChildren(failure(e)));
}

async function builder(ctx: PageContext, cat: Catalogue) {
  const id = ctx.params.get("id");
  let report: Report | null = id ? await get<Report>(`/reports/${encodeURIComponent(id)}`) : null;
  let def: ReportDef = report ? strip(report) : fromUrl(ctx);
  const form = h("form", { class: "builder-form", "data-testid": "builder-form", onsubmit: (e: Event) => e.preventDefault() });
  const preview = h("div", { class: "builder-preview", "data-testid": "builder-preview" });
  const status = h("span", { class: "builder-status", "data-testid": "builder-status" });
  const versions = h("div", { class: "versions", "data-testid": "builder-versions" });
  const saved = h("select", { "data-testid": "builder-open", onchange: (e: Event) => open((e.target as HTMLSelectElement).value) });
  const exports = h("span");
  ctx.root.replaceChildren(
    h(
      "div",
      { class: "builder" },
      panel("Question", form, h("label", { class: "control" }, h("span", {}, "Open"), saved)),
      h("div", { class: "builder-side" }, panel("Answer", preview, exports), panel("Versions", versions, status)),
    ),
  );

  const open = (reportId: string) => ctx.navigate(reportId ? `/builder?id=${encodeURIComponent(reportId)}` : "/builder");
  const refreshSaved = async () => {
    const list = await get<{ reports: Report[] }>("/reports");
    saved.replaceChildren(h("option", { value: "" }, "New report"), ...list.reports.map((r) => h("option", { value: r.id, selected: r.id === report?.id }, r.name)));
  };
  const showStatus = () => {
    status.textContent = report ? `Saved · version ${report.version}${report.can_edit ? "" : " · shared with you"}` : "Not saved";
    exports.replaceChildren(exportButtons(report && same(def, strip(report)) ? { report: report.id } : { def: () => def }, fmt.label(def.name || "report").replace(/\s+/g, "-").toLowerCase()));
  };
  const refreshVersions = async () => {
    if (!report) return versions.replaceChildren(h("p", { class: "muted" }, "Save the report to keep its versions."));
    const list = await get<{ versions: ReportVersion[] }>(`/reports/${report.id}/versions`);
    versions.replaceChildren(
      h(
        "ol",
        { class: "version-list" },
        list.versions.map((v) =>
          h(
            "li",
            { "data-testid": `version-${v.version}` },
            h("strong", {}, `v${v.version}`),
            ` ${v.report?.name ?? ""} · ${v.author} · ${(v.created_at ?? "").slice(0, 16).replace("T", " ")}`,
            report!.can_edit && v.version !== report!.version ? h("button", { type: "button", class: "small", "data-testid": `restore-${v.version}`, onclick: () => restore(v.version) }, "Restore") : null,
          ),
        ),
      ),
    );
  };
  const restore = async (n: number) => {
    report = await post<Report>(`/reports/${report!.id}/versions/${n}/restore`, {});
    def = strip(report);
    drawForm();
    changed();
    await Promise.all([refreshVersions(), refreshSaved()]);
  };
  const save = async () => {
    status.textContent = "Saving…";
    try {
      report = report?.can_edit ? await put<Report>(`/reports/${report.id}`, def) : await post<Report>("/reports", def);
      history.replaceState(null, "", `/builder?id=${report.id}`);
      showStatus();
      await Promise.all([refreshVersions(), refreshSaved()]);
    } catch (e) {
      status.replaceChildren(failure(e));
    }
  };
  const remove = async () => {
    if (!report || !confirm(`Delete "${report.name}" and its history?`)) return;
    await del(`/reports/${report.id}`);
    open("");
  };

  // The answer follows every change, the newest question's answer only.
  let asked = 0;
  let timer: number | undefined;
  const changed = () => {
    showStatus();
    clearTimeout(timer);
    timer = window.setTimeout(async () => {
      const mine = ++asked;
      preview.replaceChildren(loading());
      try {
        const { result } = await postPreview({ ...def, name: def.name || "preview" });
        if (mine !== asked) return;
        disposeCharts();
        drawAnswer(preview, result, def.visualization, cat.measures);
      } catch (e) {
        if (mine === asked) preview.replaceChildren(failure(e));
      }
    }, 250);
  };
  const set = (change: (d: ReportDef) => void, redraw = false) => {
    change(def);
    if (redraw) drawForm();
    changed();
  };

  const drawForm = () => {
    const isView = def.view !== undefined;
    const q = def.query;
    const select = (testid: string, value: string | undefined, options: [string, string][], onchange: (v: string) => void) =>
      h("select", { "data-testid": testid, onchange: (e: Event) => onchange((e.target as HTMLSelectElement).value) }, options.map(([v, l]) => h("option", { value: v, selected: v === (value ?? "") }, l)));
    const field = (label: string, control: HTMLElement) => h("label", { class: "field" }, h("span", {}, label), control);
    const checks = (name: string, all: string[], chosen: string[], title: (s: string) => string, onchange: (list: string[]) => void) =>
      h(
        "fieldset",
        { class: "checks", "data-testid": `builder-${name}` },
        h("legend", {}, fmt.label(name)),
        all.map((m) =>
          h(
            "label",
            { title: title(m) },
            h("input", {
              type: "checkbox",
              "data-testid": `${name.replace(/s$/, "")}-${m}`,
              checked: chosen.includes(m),
              onchange: (e: Event) => onchange((e.target as HTMLInputElement).checked ? [...chosen, m] : chosen.filter((x) => x !== m)),
            }),
            fmt.label(m),
          ),
        ),
      );
    const setQuery = (change: (q: Query) => void, redraw = false) => set((d) => change(d.query!), redraw);
    const queryControls = q
      ? [
          checks("measures", cat.measures.map((m) => m.name), q.measures, (m) => cat.measures.find((x) => x.name === m)?.description ?? "", (list) => setQuery((q) => (q.measures = list), true)),
          checks("dimensions", cat.dimensions, q.dimensions ?? [], () => "", (list) => setQuery((q) => ((q.dimensions = list), (q.order_by = undefined)), true)),
          h(
            "div",
            { class: "row" },
            field("Granularity", select("builder-granularity", q.granularity, [["", "None"], ...cat.granularities.map((g): [string, string] => [g, g])], (v) => setQuery((q) => (q.granularity = v || undefined)))),
            field(
              "Range",
              select("builder-preset", q.range.preset ?? "custom", [...cat.presets.map((p): [string, string] => [p, fmt.label(p)]), ["custom", "Custom dates"]], (v) =>
                setQuery((q) => (q.range = v === "custom" ? { start: new Date(Date.now() - 7 * 864e5).toISOString().slice(0, 10), end: new Date().toISOString().slice(0, 10) } : { preset: v }), true),
              ),
            ),
            q.range.preset
              ? null
              : [
                  field("From", h("input", { type: "date", "data-testid": "builder-start", value: q.range.start ?? "", onchange: (e: Event) => setQuery((q) => (q.range.start = (e.target as HTMLInputElement).value)) })),
                  field("To (exclusive)", h("input", { type: "date", "data-testid": "builder-end", value: q.range.end ?? "", onchange: (e: Event) => setQuery((q) => (q.range.end = (e.target as HTMLInputElement).value)) })),
                ],
            field("Timezone", h("input", { "data-testid": "builder-timezone", value: q.timezone ?? "", placeholder: ctx.app.settings.timezone, onchange: (e: Event) => setQuery((q) => (q.timezone = (e.target as HTMLInputElement).value || undefined)) })),
            field("Compare", select("builder-compare", q.compare, [["", "No comparison"], ...cat.comparisons.map((c): [string, string] => [c, fmt.label(c)])], (v) => setQuery((q) => (q.compare = v || undefined)))),
          ),
          filterRows(q, cat, setQuery),
        ]
      : [];
    const view = cat.views.find((v) => v.name === def.view);
    const viewControls =
      isView && view
        ? [
            field("View", select("builder-view", def.view ?? undefined, cat.views.map((v): [string, string] => [v.name, fmt.label(v.name)]), (v) => set((d) => ((d.view = v), (d.params = {})), true))),
            h(
              "div",
              { class: "row" },
              [...(view.path_param ? [view.path_param] : []), ...view.params, ...(view.shared ? ["preset", "start", "end", "timezone"] : [])].map((p) =>
                field(fmt.label(p), h("input", { "data-testid": `param-${p}`, value: def.params?.[p] ?? "", onchange: (e: Event) => set((d) => ((d.params ??= {}), (d.params[p] = (e.target as HTMLInputElement).value), d.params[p] || delete d.params[p])) })),
              ),
            ),
          ]
        : [];
    form.replaceChildren(
      h(
        "div",
        { class: "row" },
        field("Name", h("input", { "data-testid": "builder-name", value: def.name, required: true, oninput: (e: Event) => set((d) => (d.name = (e.target as HTMLInputElement).value)) })),
        field("Description", h("input", { "data-testid": "builder-description", value: def.description ?? "", oninput: (e: Event) => set((d) => (d.description = (e.target as HTMLInputElement).value)) })),
      ),
      h(
        "div",
        { class: "row" },
        field(
          "Question",
          select("builder-kind", isView ? "view" : "query", [["query", "Measures and dimensions"], ["view", "A built-in view"]], (v) =>
            set((d) => {
              if (v === "view") {
                d.view = cat.views.find((x) => !x.path_param)?.name ?? cat.views[0].name;
                d.params = {};
                d.query = undefined;
              } else {
                d.view = undefined;
                d.params = undefined;
                d.query = blank(ctx).query;
              }
            }, true),
          ),
        ),
        field("Visualization", select("builder-visualization", def.visualization, cat.visualizations.map((v): [string, string] => [v, fmt.label(v)]), (v) => set((d) => (d.visualization = v)))),
        sharingControl(ctx, def.sharing, (s) => set((d) => (d.sharing = s), true)),
      ),
      ...queryControls,
      ...viewControls,
      h(
        "div",
        { class: "row actions" },
        h("button", { type: "button", "data-testid": "builder-save", onclick: save }, report?.can_edit ? "Save as new version" : "Save report"),
        report?.can_edit ? h("button", { type: "button", class: "link", "data-testid": "builder-delete", onclick: remove }, "Delete") : null,
      ),
    );
  };

  drawForm();
  changed();
  await Promise.all([refreshSaved(), refreshVersions()]);
}

/** The filters: a dimension and its comma-separated values, a few rows. */
function filterRows(q: Query, cat: Catalogue, setQuery: (c: (q: Query) => void, redraw?: boolean) => void): HTMLElement {
  const entries = Object.entries(q.filters ?? {});
  const rows = [...entries, ...Array.from({ length: Math.max(1, FILTERABLE_ROWS - entries.length) }, (): [string, string[]] => ["", []])].slice(0, Math.max(FILTERABLE_ROWS, entries.length + 1));
  const write = (i: number, dim: string, values: string) =>
    setQuery((q) => {
      const next: Record<string, string[]> = {};
      rows.forEach(([d, v], j) => {
        const [dd, vv] = j === i ? [dim, values.split(",").map((s) => s.trim()).filter(Boolean)] : [d, v];
        if (dd && vv.length) next[dd] = vv;
      });
      q.filters = Object.keys(next).length ? next : undefined;
    });
  return h(
    "fieldset",
    { class: "filters-edit", "data-testid": "builder-filters" },
    h("legend", {}, "Filters"),
    rows.map(([dim, values], i) => {
      const dimSel = h("select", { "data-testid": `filter-dim-${i}` }, h("option", { value: "" }, "—"), cat.dimensions.map((d) => h("option", { value: d, selected: d === dim }, fmt.label(d))));
      const valIn = h("input", { "data-testid": `filter-values-${i}`, value: values.join(","), placeholder: "values, comma-separated" });
      dimSel.onchange = () => write(i, dimSel.value, valIn.value);
      valIn.onchange = () => write(i, dimSel.value, valIn.value);
      return h("div", { class: "row" }, dimSel, valIn);
    }),
  );
}

function sharingControl(ctx: PageContext, sharing: Sharing, onchange: (s: Sharing) => void): HTMLElement {
  const kind = h(
    "select",
    { "data-testid": "builder-sharing" },
    [
      ["private", "Only me"],
      ["team", "A team"],
      ["users", "Named people"],
      ["tenant", "Everyone in the workspace"],
    ].map(([v, l]) => h("option", { value: v, selected: v === sharing.kind }, l)),
  );
  const team = h("select", { "data-testid": "builder-sharing-team" }, ctx.app.teams.map((t) => h("option", { value: t.id, selected: sharing.kind === "team" && sharing.team === t.id }, t.name)));
  const users = h("input", { "data-testid": "builder-sharing-users", placeholder: "e-mails, comma-separated", value: sharing.kind === "users" ? sharing.users.join(", ") : "" });
  const emit = () => {
    const k = kind.value;
    if (k === "team") onchange({ kind: "team", team: team.value });
    else if (k === "users") onchange({ kind: "users", users: users.value.split(",").map((s) => s.trim()).filter(Boolean) });
    else onchange({ kind: k as "private" | "tenant" });
  };
  kind.onchange = emit;
  team.onchange = emit;
  users.onchange = emit;
  return h("label", { class: "field" }, h("span", {}, "Shared with"), kind, sharing.kind === "team" ? team : null, sharing.kind === "users" ? users : null);
}

/** A saved report's definition, without what the server adds. */
function strip(r: Report): ReportDef {
  const def: ReportDef = { name: r.name, description: r.description, visualization: r.visualization, sharing: r.sharing };
  if (r.view) {
    def.view = r.view;
    def.params = r.params ?? {};
  } else def.query = r.query;
  return def;
}

const same = (a: ReportDef, b: ReportDef) => JSON.stringify(a) === JSON.stringify(b);

export const builderPage: Page = {
  path: "/builder",
  title: "Report builder",
  controls: [],
  defaultPreset: "last_7_days",
  render,
};
