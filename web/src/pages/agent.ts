import { get, latest } from "../api";
import { choice, drillUrl, nameOf, type Page, type PageContext } from "../app";
import { chart, timeOption } from "../charts";
import { change, empty, fill, fmt, h, isNum, panel, plural } from "../dom";
import { coachingList, type Opportunity } from "./coaching";
import { exploreLink, pageExport, viewQuestion } from "../saved";
import type { Schemas } from "../api";
import { subscribe, type BadgeMessage } from "../live";

type Scorecard = Schemas["RepScorecard"];

type Badges = Schemas["BadgesView"];

/** A badge announced on the live feed while the page is open. */
function announcement(m: BadgeMessage): HTMLElement {
  const what = m.change === "awarded" ? "New badge" : "Badge revoked";
  return h("li", { class: `badge-news ${m.change}`, "data-badge": m.badge, "data-change": m.change }, h("strong", {}, `${what}: ${m.name}`), m.period ? ` · ${m.period}` : "", h("span", { class: "muted" }, ` · ${m.at}`));
}

/** The rep's badges, newest period first, and their streak at the daily goal. */
function badgeList(b: Badges): HTMLElement {
  const streak = b.goal_streak_days > 0 ? `${plural(b.goal_streak_days, "day")} in a row at the daily goal of ${fmt.int(b.daily_goal)} calls` : `no current streak at the daily goal of ${fmt.int(b.daily_goal)} calls`;
  const sorted = [...b.badges].sort((x, y) => y.period.localeCompare(x.period));
  return h(
    "div",
    { "data-testid": "badges" },
    h("p", { class: "muted", "data-testid": "goal-streak" }, streak),
    sorted.length === 0
      ? empty("No badge yet.")
      : h("ul", { class: "badges" }, sorted.map((x) => h("li", { class: "badge", "data-badge": x.badge }, h("strong", {}, x.name ?? x.badge), x.period ? ` · ${x.period}` : ""))),
  );
}

type Trends = Schemas["TrendsView"];

/** The scorecard's groups: field, label, format, its key in `change_percent`, lower is better. */
const GROUPS: [string, [string, string, (v: unknown) => string, string, boolean?][]][] = [
  [
    "Activity",
    [
      ["total_calls", "Calls", fmt.int, "total_calls"],
      ["calls_per_hour", "Calls per hour", fmt.num, "calls_per_hour"],
      ["total_talk_time_minutes", "Talk minutes", fmt.num, "total_talk_time"],
      ["avg_talk_time_seconds", "Avg talk time", fmt.duration, "avg_talk_time"],
    ],
  ],
  [
    "Quality",
    [
      ["avg_call_score", "Call score", fmt.num, "avg_call_score"],
      ["avg_sentiment_score", "Sentiment", (v) => (isNum(v) ? v.toFixed(2) : "—"), "avg_sentiment"],
      ["avg_talk_ratio", "Talk ratio", fmt.ratio, "avg_talk_ratio", true],
      ["filler_word_rate", "Filler words / 100", fmt.num, "filler_word_rate", true],
    ],
  ],
  [
    "Outcomes",
    [
      ["connected_calls", "Connected", fmt.int, "connected_calls"],
      ["connect_rate", "Connect rate", fmt.pct, "connect_rate"],
      ["meetings_booked", "Meetings", fmt.int, "meetings_booked"],
      ["meeting_booked_rate", "Meeting rate", fmt.pct, "meeting_booked_rate"],
      ["callback_conversion_rate", "Callback conversion", fmt.pct, "callback_conversion"],
    ],
  ],
];

const PERIODS = [
  ["daily", "Today"],
  ["weekly", "This week"],
  ["monthly", "This month"],
];

function render(ctx: PageContext) {
  const { filters: f, app } = ctx;
  const agent = f.agent;
  if (!agent) {
    ctx.root.replaceChildren(empty("No agent is visible to you."));
    return;
  }
  const [period, periodSelect] = choice(ctx, "period", PERIODS, "weekly");
  const card = h("div", { "data-testid": "scorecard" });
  const trends = viewQuestion("trends", { agent_id: agent }, "line", "Trends");
  const ratio = h("div", { class: "chart" });
  const sentiment = h("div", { class: "chart" });
  const score = h("div", { class: "chart" });
  const alerts = h("div", {});
  const badges = h("div", {});
  const news = h("ul", { class: "badges", "data-testid": "badge-announcements", "aria-live": "polite" });
  ctx.root.replaceChildren(
    panel(nameOf(app.agents, agent), card, [periodSelect, exploreLink(viewQuestion("agent-scorecard", { agent_id: agent, period }, "table", "Scorecard"))], "wide"),
    h(
      "div",
      { class: "grid three" },
      panel("Talk ratio (daily)", ratio, exploreLink(trends)),
      panel("Sentiment (weekly)", sentiment, exploreLink(trends)),
      panel("Call score (rolling 7 days)", score, exploreLink(trends)),
    ),
    panel("Coaching alerts", alerts, null, "wide"),
    panel("Streak and badges", h("div", {}, news, badges), null, "wide"),
  );

  const load = latest(() => {
    fill(card, async () => {
      const s = await get<Scorecard>(`/analytics/agent-scorecard/${encodeURIComponent(agent)}`, { period });
      const rank = isNum(s.team_rank) ? `#${s.team_rank} of ${s.team_size} in ${nameOf(app.teams, s.team_id)}` : "—";
      return [
        h("p", { class: "muted" }, `${s.period_start} → ${s.period_end} · team rank ${rank} · percentile ${fmt.num(s.percentile)}`),
        h(
          "div",
          { class: "groups" },
          GROUPS.map(([title, items]) =>
            h(
              "div",
              { class: "group" },
              h("h3", {}, title),
              items.map(([field, label, format, key, lower]) =>
                h("div", { class: "metric" }, h("span", {}, label), h("strong", { "data-metric": field }, format((s as unknown as Record<string, unknown>)[field])), change(s.change_percent![key], lower)),
              ),
            ),
          ),
        ),
        h("a", { href: drillUrl(f, { agent, preset: period === "daily" ? "today" : period === "weekly" ? "this_week" : "this_month" }) }, "See these calls →"),
      ];
    });
    get<Trends>(`/analytics/trends/${encodeURIComponent(agent)}`)
      .then((t) => {
        const days = (xs: { time: string }[]) => xs.map((x) => x.time);
        chart(ratio, timeOption(days(t.talk_ratio), false, [{ name: "Talk ratio", values: t.talk_ratio.map((x) => (isNum(x.avg_talk_ratio) ? +(x.avg_talk_ratio * 100).toFixed(1) : null)) }], { target: app.settings.coaching.high_talk_ratio * 100, percentAxis: true }));
        chart(
          sentiment,
          timeOption(days(t.sentiment), false, [
            { name: "Rep", values: t.sentiment.map((x) => x.avg_sentiment) },
            { name: "Prospect", values: t.sentiment.map((x) => x.avg_prospect_sentiment), dotted: true },
          ]),
        );
        chart(
          score,
          timeOption(
            t.score.map((x) => `${x.date}T`),
            false,
            [
              { name: "Rolling 7 days", values: t.score.map((x) => x.rolling_7day_avg) },
              { name: "Daily", values: t.score.map((x) => x.avg_call_score), dotted: true },
            ],
          ),
        );
      })
      .catch((e) => fill(ratio, () => Promise.reject(e)));
    fill(badges, async () => badgeList(await get<Badges>(`/analytics/badges/${encodeURIComponent(agent)}`)));
    const team = app.agents.find((a) => a.id === agent)?.team_id;
    fill(alerts, async () => {
      if (!team) return empty("This rep has no team, so no coaching rules apply.");
      const r = await get<{ opportunities: Opportunity[] }>(`/analytics/coaching-opportunities/${encodeURIComponent(team)}`);
      return coachingList(r.opportunities.filter((o) => o.agent_id === agent), app, false);
    });
  });
  load();
  ctx.live(load);
  // Badges are announced on the rep's scope as the on-change reconciliation records them.
  ctx.onLeave(
    subscribe({
      scope: { scope: "agent", scope_id: agent },
      onBadge: (m) => {
        if (m.agent_id !== agent) return;
        news.prepend(announcement(m));
        fill(badges, async () => badgeList(await get<Badges>(`/analytics/badges/${encodeURIComponent(agent)}`)));
      },
    }),
  );
}

export const agent: Page = {
  path: "/agent",
  title: "Agent",
  controls: ["team", "agent"],
  requires: ["agent"],
  defaultPreset: "this_week",
  render,
  exportable: (ctx) => pageExport(viewQuestion("agent-scorecard", { agent_id: ctx.filters.agent, period: ctx.params.get("period") ?? "weekly" }, "table", "Scorecard")),
};
