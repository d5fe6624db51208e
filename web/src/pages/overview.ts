import { get, latest } from "../api";
import { drillUrl, type Page, type PageContext } from "../app";
import { chart, donutOption, sparklineOption, timeOption } from "../charts";
import { change, failure, fill, fmt, h, isNum, panel } from "../dom";
import { includesToday, sharedParams } from "../filters";
import { exploreLink, pageExport, queryOf, viewQuestion } from "../saved";
import type { Schemas } from "../api";

type Kpi = Schemas["Kpi"];

/** How each KPI reads: label, format, whether lower is better, and the calls behind it. */
const KPIS: Record<string, { label: string; format: (v: unknown) => string; lower?: boolean; drill?: Record<string, string> | "meetings" }> = {
  total_calls: { label: "Calls", format: fmt.int, drill: {} },
  connected_calls: { label: "Connected", format: fmt.int, drill: { disposition_category: "connected" } },
  connect_rate: { label: "Connect rate", format: fmt.pct, drill: { disposition_category: "connected" } },
  meetings_booked: { label: "Meetings booked", format: fmt.int, drill: "meetings" },
  meeting_booked_rate: { label: "Meeting rate", format: fmt.pct },
  total_talk_time: { label: "Talk time", format: fmt.duration },
  active_agents: { label: "Active agents", format: fmt.int },
  ticket_volume: { label: "Tickets", format: fmt.int },
  avg_first_response_time: { label: "Avg first response", format: fmt.duration, lower: true },
  resolution_rate: { label: "Resolution rate", format: fmt.pct },
  deals_won: { label: "Deals won", format: fmt.int },
};

type CallMetrics = Schemas["CallMetricsView"];

type Dispositions = Schemas["DispositionsView"];

function render(ctx: PageContext) {
  const { filters: f } = ctx;
  const params = sharedParams(f);
  const meetings = { disposition: ctx.app.settings.taxonomy.meeting.join(",") };
  const compare = f.compare ? "previous_period" : "none";
  const cmp = f.compare ? { compare: "previous_period" } : {};
  const kpis = h("div", { class: "kpis", "data-testid": "kpis" });
  const volume = h("div", { class: "chart", "data-testid": "chart-volume" });
  const rate = h("div", { class: "chart", "data-testid": "chart-connect-rate" });
  const donut = h("div", { class: "chart", "data-testid": "chart-dispositions" });
  const donutTitle = h("span", { class: "crumb" });
  let category: string | null = null;
  ctx.root.replaceChildren(
    kpis,
    h(
      "div",
      { class: "grid two" },
      panel("Call volume", volume, exploreLink({ name: "Call volume", visualization: "area", query: queryOf(f, { measures: ["total_calls", "connected_calls"], granularity: "day", ...cmp }) })),
      panel("Connect rate", rate, exploreLink({ name: "Connect rate", visualization: "line", query: queryOf(f, { measures: ["connect_rate"], granularity: "day", ...cmp }) })),
      panel("Dispositions", donut, [donutTitle, exploreLink({ name: "Dispositions", visualization: "donut", query: queryOf(f, { measures: ["total_calls"], dimensions: ["disposition_category"] }) })]),
    ),
  );

  const loadKpis = (series: Promise<CallMetrics>) =>
    fill(kpis, async () => {
      const [r, s] = await Promise.all([get<{ kpis: Kpi[] }>("/analytics/metrics", { ...params, compare }), series.catch(() => null)]);
      const sparks: [HTMLElement, number[]][] = [];
      const cards = r.kpis
        .filter((k) => KPIS[k.metric])
        .map((k) => {
          const d = KPIS[k.metric];
          const body = [
            h("div", { class: "kpi-label" }, d.label),
            h("div", { class: "kpi-value", "data-metric": k.metric }, d.format(k.value)),
            f.compare ? h("div", { class: "kpi-trend" }, change(k.change_percent, d.lower), isNum(k.previous) ? h("span", { class: "prev" }, `prev ${d.format(k.previous)}`) : null) : null,
          ];
          const trend = s?.series.map((p) => (p as unknown as Record<string, unknown>)[k.metric]);
          if (trend?.length && trend.every(isNum)) {
            const el = h("div", { class: "kpi-spark" });
            sparks.push([el, trend as number[]]);
            body.push(el);
          }
          return d.drill
            ? h("a", { class: "kpi", href: drillUrl(f, d.drill === "meetings" ? meetings : d.drill), title: "see the calls" }, body)
            : h("div", { class: "kpi" }, body);
        });
      requestAnimationFrame(() => sparks.forEach(([el, v]) => chart(el, sparklineOption(v))));
      return cards;
    });

  const loadSeries = async (series: Promise<CallMetrics>) => {
    try {
      const r = await series;
      const hourly = r.granularity === "hour";
      const times = r.series.map((s) => String(s.time));
      const col = (rows: Record<string, unknown>[] | undefined, k: string) => (rows ?? []).map((s) => (isNum(s[k]) ? (s[k] as number) : null));
      const prev = f.compare ? r.comparison?.series : undefined;
      // A day's point drills into that day's calls.
      const drillDay = (p: { dataIndex: number }) => {
        const t = times[p.dataIndex];
        if (t) ctx.navigate(drillUrl(f, hourly ? {} : { start: t.slice(0, 10), end: t.slice(0, 10) }));
      };
      chart(
        volume,
        timeOption(times, hourly, [
          { name: "Calls", values: col(r.series, "total_calls"), area: true },
          { name: "Connected", values: col(r.series, "connected_calls"), area: true },
          ...(prev ? [{ name: "Calls, previous period", values: col(prev, "total_calls"), dotted: true }] : []),
        ]),
        drillDay,
      );
      chart(
        rate,
        timeOption(
          times,
          hourly,
          [
            { name: "Connect rate", values: col(r.series, "connect_rate") },
            ...(prev ? [{ name: "Previous period", values: col(prev, "connect_rate"), dotted: true }] : []),
          ],
          { target: ctx.app.settings.coaching.low_connect_rate, percentAxis: true },
        ),
        drillDay,
      );
    } catch (e) {
      volume.replaceChildren(failure(e));
    }
  };

  const loadDonut = async () => {
    const r = await get<Dispositions>("/analytics/dispositions", params);
    const cat = r.categories.find((c) => c.category === category);
    donutTitle.replaceChildren(
      cat ? h("button", { class: "link", "data-testid": "donut-back", onclick: () => ((category = null), loadDonut()) }, "← all categories") : "click a slice to drill down",
    );
    const items = cat
      ? cat.dispositions.map((d) => ({ name: d.disposition as string, value: d.total_calls }))
      : r.categories.map((c) => ({ name: fmt.label(c.category), value: c.total_calls, id: c.category }));
    chart(donut, donutOption(items, cat ? fmt.label(cat.category) : `${fmt.int(r.total_calls)} calls`), (p) => {
      if (cat) ctx.navigate(drillUrl(f, { disposition: p.name }));
      else {
        category = (p.data as { id: string }).id;
        loadDonut();
      }
    });
  };

  const load = latest(() => {
    // The cards and the charts share the time series: the cards draw its trend.
    const s = get<CallMetrics>("/analytics/call-metrics", { ...params, compare });
    loadKpis(s);
    loadSeries(s);
    loadDonut().catch((e) => donut.replaceChildren(failure(e)));
  });
  load();
  if (includesToday(f)) ctx.live(load);
}

export const overview: Page = {
  path: "/",
  title: "Overview",
  controls: ["range", "timezone", "team", "agent", "campaign", "disposition", "lead_source", "compare"],
  defaultPreset: "today",
  render,
  exportable: ({ filters: f }) => pageExport(viewQuestion("call-metrics", { ...sharedParams(f), compare: f.compare ? "previous_period" : "none" }, "line", "Overview")),
};
