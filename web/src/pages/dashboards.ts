// Dashboards of one's own: a grid (gridstack: drag, resize) of saved reports and built-in
// views, saved on the server after every move, resize, addition or removal, shareable like
// reports, and live like the built-in pages. `/dashboards?id=` opens one.

import { GridStack, type GridStackNode } from "gridstack";
import "gridstack/dist/gridstack.min.css";
import { get, latest, post, put, type Params, type Schemas } from "../api";
import type { Page, PageContext } from "../app";
import { drawAnswer } from "../answer";
import { failure, fmt, h, loading, panel } from "../dom";
import { DIMENSIONS, rangeParams } from "../filters";
import { exportButtons, loadCatalogue, viewAnswer, type Catalogue, type Dashboard, type Report, type Widget } from "../saved";

function render(ctx: PageContext) {
  ctx.root.replaceChildren(loading());
  loadCatalogue()
    .then((cat) => dashboards(ctx, cat))
    .catch((e) => ctx.root.replaceChildren(failure(e)));
}

async function dashboards(ctx: PageContext, cat: Catalogue) {
  const [{ dashboards: list }, { reports }] = await Promise.all([get<Schemas["Dashboards"]>("/dashboards"), get<{ reports: Report[] }>("/reports")]);
  const id = ctx.params.get("id") ?? list[0]?.id;
  const open = (d: string) => ctx.navigate(`/dashboards?id=${encodeURIComponent(d)}`);
  const name = h("input", { "data-testid": "dashboard-new-name", placeholder: "New dashboard's name" });
  const create = async () => {
    const made = await post<Dashboard>("/dashboards", { name: name.value.trim() || "My dashboard", widgets: [], sharing: { kind: "private" } });
    open(made.id);
  };
  const picker = h(
    "div",
    { class: "row" },
    h(
      "select",
      { "data-testid": "dashboard-open", onchange: (e: Event) => open((e.target as HTMLSelectElement).value) },
      list.map((d) => h("option", { value: d.id, selected: d.id === id }, d.name)),
    ),
    name,
    h("button", { type: "button", "data-testid": "dashboard-create", onclick: create }, "New dashboard"),
  );
  if (!id) {
    ctx.root.replaceChildren(panel("Dashboards", [picker, h("p", { class: "muted" }, "No dashboard yet: name one and create it.")]));
    return;
  }
  // The filter bar's choices apply to every widget that takes them; without them each widget
  // keeps its own question's range and filters.
  const filters = dashboardFilters(ctx);
  let board = await get<Dashboard>(`/dashboards/${encodeURIComponent(id)}`);
  const status = h("span", { class: "builder-status", "data-testid": "dashboard-status" }, `version ${board.version}`);
  const gridEl = h("div", { class: "grid-stack", "data-testid": "dashboard-grid" });
  // Every save is a version kept by the server; an editor restores one as the next version.
  const versions = h("div", { class: "versions", "data-testid": "dashboard-versions" });
  const refreshVersions = async () => {
    const { versions: list } = await get<Schemas["DashboardVersions"]>(`/dashboards/${encodeURIComponent(board.id)}/versions`);
    versions.replaceChildren(
      h(
        "ol",
        { class: "version-list" },
        list.map((v) =>
          h(
            "li",
            { "data-testid": `dashboard-version-${v.version}` },
            h("strong", {}, `v${v.version}`),
            ` ${v.dashboard?.widgets?.length ?? 0} widgets · ${v.author} · ${(v.created_at ?? "").slice(0, 16).replace("T", " ")}`,
            board.can_edit && v.version !== board.version
              ? h("button", { type: "button", class: "small", "data-testid": `dashboard-restore-${v.version}`, onclick: () => restore(v.version) }, "Restore")
              : null,
          ),
        ),
      ),
    );
  };
  const restore = async (n: number) => {
    status.textContent = "Restoring…";
    try {
      await saving;
      await post<Dashboard>(`/dashboards/${encodeURIComponent(board.id)}/versions/${n}/restore`, {});
      // Drawn again from the server: the grid, its widgets and the versions.
      ctx.navigate(location.pathname + location.search);
    } catch (e) {
      status.replaceChildren(failure(e));
    }
  };
  const source = h(
    "select",
    { "data-testid": "widget-source" },
    h("optgroup", { label: "Saved reports" }, reports.map((r) => h("option", { value: `report:${r.id}` }, r.name))),
    h("optgroup", { label: "Built-in views" }, cat.views.filter((v) => !v.path_param).map((v) => h("option", { value: `view:${v.name}` }, fmt.label(v.name)))),
  );
  const add = () => {
    const [kind, ref] = source.value.split(/:(.*)/s);
    if (!ref) return;
    const next = Math.max(0, ...board.widgets.map((w) => Number(w.id.replace(/\D/g, "")) || 0)) + 1;
    const w: Widget = { id: `w${next}`, x: 0, y: 1000, w: 6, h: 4, ...(kind === "report" ? { report: ref } : { view: ref, params: {} }) };
    board.widgets.push(w);
    const el = tile(w);
    gridEl.append(el);
    // The grid places it (at the bottom); it is saved where it landed.
    const n = grid.makeWidget(el).gridstackNode;
    if (n) Object.assign(w, { x: n.x ?? w.x, y: n.y ?? w.y, w: n.w ?? w.w, h: n.h ?? w.h });
    void persist();
  };
  ctx.root.replaceChildren(
    panel(
      board.name,
      [
        picker,
        board.can_edit ? h("div", { class: "row" }, source, h("button", { type: "button", "data-testid": "widget-add", onclick: add }, "Add widget")) : null,
        filters.preset || filters.start ? null : h("p", { class: "muted" }, "Each widget shows its own range until you choose one above; the team and campaign chosen narrow every widget that takes them."),
        gridEl,
      ],
      status,
    ),
    panel("Versions", versions),
  );
  void refreshVersions().catch((e) => versions.replaceChildren(failure(e)));

  // Each widget's answer, refreshed together (a live update, a reload).
  const bodies = new Map<string, HTMLElement>();
  const fillWidget = async (w: Widget) => {
    const body = bodies.get(w.id);
    if (!body) return;
    try {
      if (w.report) {
        const saved = reports.find((r) => r.id === w.report);
        const applies = !saved?.view || cat.views.find((v) => v.name === saved.view)?.shared;
        const r = await get<{ report: Report; result: unknown }>(`/reports/${encodeURIComponent(w.report)}/result`, applies ? filters : {});
        drawAnswer(body, r.result, r.report.visualization, cat.measures, true);
      } else if (w.view) {
        const info = cat.views.find((v) => v.name === w.view);
        const params = info?.shared ? { ...w.params, ...(filters as Record<string, string>) } : w.params;
        drawAnswer(body, await viewAnswer(w.view, params, info), "table", cat.measures, true);
      }
    } catch (e) {
      body.replaceChildren(failure(e));
    }
  };
  const refresh = latest(() => board.widgets.forEach((w) => void fillWidget(w)));

  const titleOf = (w: Widget) => w.title || (w.report ? reports.find((r) => r.id === w.report)?.name ?? "Report" : fmt.label(w.view ?? ""));
  const tile = (w: Widget): HTMLElement => {
    const body = h("div", { class: "widget-body" }, loading());
    bodies.set(w.id, body);
    const remove = () => {
      board.widgets = board.widgets.filter((x) => x.id !== w.id);
      grid.removeWidget(el);
      bodies.delete(w.id);
      void persist();
    };
    const el = h(
      "div",
      { class: "grid-stack-item", "gs-id": w.id, "gs-x": w.x, "gs-y": w.y, "gs-w": w.w, "gs-h": w.h, "data-testid": `widget-${w.id}` },
      h(
        "div",
        { class: "grid-stack-item-content widget" },
        h(
          "header",
          { class: "widget-head" },
          h("strong", {}, titleOf(w)),
          w.report ? exportButtons({ report: w.report }, titleOf(w).replace(/\s+/g, "-").toLowerCase()) : null,
          board.can_edit ? h("button", { type: "button", class: "link", "data-testid": `widget-remove-${w.id}`, onclick: remove }, "✕") : null,
        ),
        body,
      ),
    );
    queueMicrotask(() => fillWidget(w));
    return el;
  };
  for (const w of board.widgets) gridEl.append(tile(w));
  const grid = GridStack.init({ column: 12, cellHeight: 70, margin: 6, disableDrag: !board.can_edit, disableResize: !board.can_edit }, gridEl)!;

  // Every arrangement is saved at once: the server keeps it as the dashboard's next version.
  let saving = Promise.resolve();
  const persist = () =>
    (saving = saving.then(async () => {
      status.textContent = "Saving…";
      try {
        const def = { name: board.name, description: board.description, sharing: board.sharing, widgets: board.widgets };
        board = await put<Dashboard>(`/dashboards/${board.id}`, def);
        status.textContent = `Saved · version ${board.version}`;
        await refreshVersions();
      } catch (e) {
        status.replaceChildren(failure(e));
      }
    }));
  grid.on("change", (_e: Event, nodes: GridStackNode[]) => {
    for (const n of nodes) {
      const w = board.widgets.find((x) => x.id === n.id);
      if (w) Object.assign(w, { x: n.x ?? w.x, y: n.y ?? w.y, w: n.w ?? w.w, h: n.h ?? w.h });
    }
    if (board.can_edit) void persist();
  });
  ctx.onLeave(() => grid.destroy(false));
  ctx.live(refresh);
}

/** The filters the URL sets explicitly (the bar's default range is not one). */
function dashboardFilters(ctx: PageContext): Params {
  const q = ctx.params;
  const p: Params = q.get("preset") || q.get("start") || q.get("end") ? rangeParams(ctx.filters) : {};
  for (const k of ["timezone", ...DIMENSIONS]) {
    const v = q.get(k);
    if (v) p[k] = v;
  }
  return p;
}

export const dashboardsPage: Page = {
  path: "/dashboards",
  title: "Dashboards",
  controls: ["range", "timezone", "team", "campaign"],
  defaultPreset: "today",
  render,
};
