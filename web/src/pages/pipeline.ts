import { get, latest } from "../api";
import { choice, drillUrl, nameOf, type Page, type PageContext } from "../app";
import { barOption, chart, funnelOption } from "../charts";
import { fill, fmt, h, panel, table } from "../dom";
import { includesToday, sharedParams } from "../filters";
import { exploreLink, pageExport, viewQuestion } from "../saved";
import type { Schemas } from "../api";

type Group = Schemas["FunnelMetrics"];

type Campaign = Schemas["CampaignView"];

/** A number, or "—" that says (on hover and to screen readers) why it cannot be computed. */
function orWhyNot(text: string, reason: string | null): string | HTMLElement {
  return reason ? h("span", { class: "unavailable", title: reason, "aria-label": `unavailable: ${reason}` }, "—") : text;
}

const GROUPINGS = [
  ["campaign", "By campaign"],
  ["lead_source", "By lead source"],
  ["agent", "By agent"],
];

function render(ctx: PageContext) {
  const { filters: f, app } = ctx;
  const params = sharedParams(f);
  const [groupBy, grouping] = choice(ctx, "group_by", GROUPINGS, "campaign");
  const funnel = h("div", { class: "chart tall", "data-testid": "chart-funnel" });
  const revenue = h("div", { class: "chart tall", "data-testid": "chart-revenue" });
  const groups = h("div", {});
  const campaigns = h("div", {});
  ctx.root.replaceChildren(
    h(
      "div",
      { class: "grid two" },
      panel("Contacts through the stages", funnel, exploreLink(viewQuestion("conversion-funnel", params, "funnel", "Conversion funnel"))),
      panel("Closed-won revenue", revenue, exploreLink(viewQuestion("pipeline-funnel", { ...params, group_by: groupBy }, "bar", "Closed-won revenue"))),
    ),
    panel("Funnel", groups, [grouping, exploreLink(viewQuestion("pipeline-funnel", { ...params, group_by: groupBy }, "table", "Pipeline funnel"))], "wide"),
    panel("Campaigns: cost and return", campaigns, null, "wide"),
  );
  const name = (g: string | null) =>
    g === null ? "—" : groupBy === "campaign" ? nameOf(app.campaigns, g) : groupBy === "agent" ? nameOf(app.agents, g) : g;

  const load = latest(() => {
    get<{ stages: { stage: string; contacts: number }[] }>("/analytics/conversion-funnel", params)
      .then((r) => chart(funnel, funnelOption(r.stages.filter((s) => s.stage !== "closed_lost").map((s) => ({ name: fmt.label(s.stage), value: s.contacts })))))
      .catch((e) => fill(funnel, () => Promise.reject(e)));
    fill(groups, async () => {
      const r = await get<{ groups: Group[]; steps: string[]; overall: Group }>("/analytics/pipeline-funnel", { ...params, group_by: groupBy });
      chart(
        revenue,
        barOption(
          r.groups.map((g) => name(g.group)),
          [{ name: "Revenue", values: r.groups.map((g) => g.revenue.total_closed_won) }],
          true,
        ),
        (p) => {
          const g = r.groups[p.dataIndex]?.group;
          if (g) ctx.navigate(drillUrl(f, { [groupBy]: g }));
        },
      );
      const rows = [...r.groups, { ...r.overall, group: "__all" }];
      return table(
        rows,
        [
          { label: fmt.label(groupBy), value: (g) => (g.group === "__all" ? h("strong", {}, "All") : name(g.group)) },
          ...r.steps.map((s) => ({ label: fmt.label(s), value: (g: Group) => fmt.int(g.stages[s]), numeric: true })),
          { label: "Call → won", value: (g) => fmt.pct(g.conversion_rates.calls_to_closed_won), numeric: true },
          { label: "Revenue", value: (g) => fmt.money(g.revenue.total_closed_won), numeric: true },
          { label: "Per call", value: (g) => fmt.money(g.revenue.revenue_per_call), numeric: true },
          { label: "Days to meeting", value: (g) => fmt.num(g.avg_days_first_call_to_meeting), numeric: true },
        ],
        (g) => g.group && g.group !== "__all" && ctx.navigate(drillUrl(f, { [groupBy]: g.group })),
        "funnel-table",
      );
    });
    fill(campaigns, async () => {
      const ids = f.campaign ? [f.campaign] : app.campaigns.map((c) => c.id);
      const rows = await Promise.all(ids.map((id) => get<Campaign>(`/analytics/campaigns/${encodeURIComponent(id)}`, { ...params, campaign: undefined, compare: "none" })));
      return table(
        rows,
        [
          { label: "Campaign", value: (c) => c.name },
          { label: "Calls", value: (c) => fmt.int(c.metrics.total_calls), numeric: true },
          { label: "Leads", value: (c) => fmt.int(c.leads), numeric: true },
          { label: "Meetings", value: (c) => fmt.int(c.metrics.meetings_booked), numeric: true },
          { label: "Deals", value: (c) => fmt.int(c.metrics.deals_won), numeric: true },
          { label: "Revenue", value: (c) => fmt.money(c.metrics.revenue), numeric: true },
          { label: "Cost", value: (c) => fmt.money(c.cost), numeric: true },
          { label: "Cost per lead", value: (c) => orWhyNot(fmt.money(c.cost_per_lead), c.cost_per_lead_unavailable), numeric: true },
          { label: "ROI", value: (c) => orWhyNot(fmt.pct(c.roi_percent), c.roi_unavailable), numeric: true },
        ],
        (c) => ctx.navigate(drillUrl(f, { campaign: c.campaign_id })),
        "campaigns",
      );
    });
  });
  load();
  if (includesToday(f)) ctx.live(load);
}

export const pipeline: Page = {
  path: "/pipeline",
  title: "Campaigns & pipeline",
  controls: ["range", "timezone", "team", "agent", "campaign", "lead_source"],
  defaultPreset: "last_30_days",
  render,
  exportable: (ctx) => pageExport(viewQuestion("pipeline-funnel", { ...sharedParams(ctx.filters), group_by: ctx.params.get("group_by") ?? "campaign" }, "table", "Pipeline")),
};
