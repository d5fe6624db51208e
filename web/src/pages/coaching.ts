import { get, latest } from "../api";
import { drillUrl, nameOf, type App, type Page, type PageContext } from "../app";
import { empty, fill, fmt, h, isNum, panel, table } from "../dom";
import { exploreLink, pageExport, viewQuestion } from "../saved";
import type { Schemas } from "../api";

export type Opportunity = Schemas["CoachingOpportunity"];

type Compliance = Schemas["AgentCompliance"];
/** Actuals and targets by name, as the table's columns read them. */
type Numbers = Record<string, number>;

const TREND = { improving: "↗ improving", declining: "↘ declining", flat: "→ flat" } as Record<string, string>;

/** The coaching alerts as cards; `withName` when they are about several reps. */
export function coachingList(items: Opportunity[], app: App, withName: boolean): HTMLElement {
  if (items.length === 0) return empty("No coaching alerts: every rule is within its threshold.");
  return h(
    "div",
    { class: "alerts", "data-testid": "coaching" },
    items.map((o) =>
      h(
        "div",
        { class: `alert ${o.severity}` },
        h(
          "div",
          { class: "alert-head" },
          h("span", { class: `badge ${o.severity}` }, o.severity),
          withName ? h("a", { href: `/agent?agent=${encodeURIComponent(o.agent_id)}` }, o.agent_name || nameOf(app.agents, o.agent_id)) : null,
          h("strong", {}, fmt.label(o.issue)),
          h("span", { class: "muted" }, TREND[o.trend] ?? o.trend),
        ),
        h(
          "div",
          {},
          `${fmt.label(o.metric)}: ${fmt.num(o.current_value)}`,
          isNum(o.target_value) ? ` (threshold ${fmt.num(o.target_value)})` : "",
          isNum(o.previous_value) ? `, before ${fmt.num(o.previous_value)}` : "",
        ),
        h("div", { class: "action" }, "Suggested: ", o.suggested_action),
        o.related_calls.length
          ? h("div", { class: "related" }, "Calls: ", o.related_calls.map((c) => h("a", { href: `/calls?preset=all_time&call=${encodeURIComponent(c)}` }, c)))
          : null,
      ),
    ),
  );
}

function render(ctx: PageContext) {
  const { filters: f, app } = ctx;
  const team = f.team;
  const alerts = h("div", {});
  const compliance = h("div", {});
  ctx.root.replaceChildren(h("div", { class: "grid two" }, panel(`Coaching opportunities · ${nameOf(app.teams, team)}`, alerts, exploreLink(viewQuestion("coaching-opportunities", { team_id: team ?? "" }, "table", "Coaching"))),
      panel("Activity compliance today", compliance, exploreLink(viewQuestion("compliance", { timezone: f.timezone, team }, "table", "Compliance"))),));
  const load = latest(() => {
    fill(alerts, async () => {
      if (!team) return empty("No team is visible to you.");
      const r = await get<{ opportunities: Opportunity[] }>(`/analytics/coaching-opportunities/${encodeURIComponent(team)}`);
      return coachingList(r.opportunities, app, true);
    });
    fill(compliance, async () => {
      const r = await get<{ agents: Compliance[] }>("/analytics/compliance", { timezone: f.timezone, team });
      const cell = (key: string, target: string, format: (v: unknown) => string, max = false) => (c: Compliance) =>
        h(
          "span",
          {
            class: (max ? (c.actuals as Numbers)[key] <= (c.targets as Numbers)[target] : (c.actuals as Numbers)[key] >= (c.targets as Numbers)[target])
              ? "good"
              : "bad",
          },
          format((c.actuals as Numbers)[key]),
        );
      return table(
        r.agents,
        [
          { label: "Rep", value: (c) => h("a", { href: drillUrl(f, { agent: c.agent_id, preset: "today" }) }, c.agent_name) },
          { label: "Calls", value: cell("calls", "min_calls", fmt.int), numeric: true },
          { label: "Connects", value: cell("connects", "min_connects", fmt.int), numeric: true },
          { label: "Talk min", value: cell("talk_minutes", "min_talk_minutes", fmt.num), numeric: true },
          { label: "Dialing h", value: cell("dialing_hours", "min_dialing_hours", fmt.num), numeric: true },
          { label: "Idle min", value: cell("idle_minutes", "max_idle_minutes", fmt.num, true), numeric: true },
          { label: "Overall", value: (c) => h("span", { class: `badge ${c.is_compliant ? "ok" : "high"}` }, fmt.pct(c.overall_compliance)), numeric: true },
        ],
        undefined,
        "compliance",
      );
    });
  });
  load();
  ctx.live(load);
}

export const coaching: Page = {
  path: "/coaching",
  title: "Coaching & compliance",
  controls: ["timezone", "team"],
  requires: ["team"],
  defaultPreset: "today",
  roles: ["admin", "manager", "viewer"],
  render,
  exportable: (ctx) => pageExport(viewQuestion("coaching-opportunities", { team_id: ctx.filters.team }, "table", "Coaching")),
};
