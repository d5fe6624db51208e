import { get, latest } from "../api";
import { choice, drillUrl, type Page, type PageContext } from "../app";
import { chart, sparklineOption } from "../charts";
import { empty, fill, fmt, h, isNum, panel, plural, table } from "../dom";
import type { Schemas } from "../api";
import { exploreLink, pageExport, viewQuestion } from "../saved";

type Entry = Leaderboard["entries"][number];
/** An entry's `fair` placement (an object in the schema): the connect rate's part of it. */
interface Fair {
  min_calls: number;
  connect_rate: { rank: number | null; low: number | null; high: number | null; shrunk: number | null; uncertain: boolean };
}

/** The connect rate's fair rank: "3", "≈3" when the data cannot tell it from a neighbour, or
 * "—" below the minimum volume; the title gives the 95% interval. */
function fairRank(e: Entry): HTMLElement {
  const fair = e.fair as Fair | null | undefined;
  const r = fair?.connect_rate;
  if (!r) return h("span", {}, "—");
  const interval = isNum(r.low) && isNum(r.high) ? `95% interval ${fmt.pct(r.low)}–${fmt.pct(r.high)}` : "no calls";
  if (r.rank === null) return h("span", { class: "muted", title: `fewer than ${fair!.min_calls} calls: not ranked on rate; ${interval}`, "data-testid": "fair-unranked" }, "—");
  return h("span", { title: `${r.uncertain ? "uncertain: overlaps a neighbour; " : ""}${interval}`, "data-testid": r.uncertain ? "fair-uncertain" : "fair-rank" }, `${r.uncertain ? "≈" : ""}${r.rank}`);
}

type Leaderboard = Schemas["LeaderboardView"];

const SORTS = [
  ["calls", "Calls"],
  ["connects", "Connects"],
  ["meetings", "Meetings"],
  ["score", "Score"],
];

function render(ctx: PageContext) {
  const { filters: f, app } = ctx;
  const team = f.team;
  if (!team) {
    ctx.root.replaceChildren(empty("No team is visible to you."));
    return;
  }
  const [sortBy, sort] = choice(ctx, "sort_by", SORTS.map(([v, l]) => [v, `Sort by ${l.toLowerCase()}`]), "calls");
  const stats = h("div", { class: "kpis" });
  const board = h("div", {});
  const onCall = h("div", {});
  ctx.root.replaceChildren(stats, h("div", { class: "grid side" }, panel("Leaderboard", board, [sort, exploreLink(viewQuestion("team-leaderboard", { team_id: team, timezone: f.timezone, sort_by: sortBy }, "table", "Leaderboard"))], "wide"), panel("On a call now", onCall)));
  const t = app.settings.coaching;
  const load = latest(async () => {
    const r = await get<Leaderboard>(`/analytics/team-leaderboard/${encodeURIComponent(team)}`, { timezone: f.timezone, sort_by: sortBy });
    const today = (extra: Record<string, string> = {}) => drillUrl(f, { team, preset: "today", ...extra });
    fill(stats, async () =>
      (
        [
          ["Team", r.team_name, null],
          ["Calls", fmt.int(r.team_total_calls), today()],
          ["Connect rate", fmt.pct(r.team_connect_rate), today({ disposition_category: "connected" })],
          ["Meetings", fmt.int(r.team_meetings), today({ disposition: app.settings.taxonomy.meeting.join(",") })],
          ["Avg score", fmt.num(r.team_avg_score), null],
        ] as [string, string, string | null][]
      ).map(([label, value, href]) => {
        const body = [h("div", { class: "kpi-label" }, label), h("div", { class: "kpi-value" }, value)];
        return href ? h("a", { class: "kpi", href }, body) : h("div", { class: "kpi" }, body);
      }),
    );
    const good = (ok: boolean | null) => (ok === null ? "" : ok ? "good" : "bad");
    const sparks: [HTMLElement, number[]][] = [];
    fill(board, async () =>
      table(
        r.entries,
        [
          { label: "#", value: (e) => e.rank, numeric: true },
          {
            label: "Rep",
            value: (e) => h("span", { class: "rep" }, h("span", { class: `dot ${e.current_status ?? "offline"}`, title: e.current_status ?? "offline" }), h("a", { href: `/agent?agent=${encodeURIComponent(e.agent_id)}` }, e.agent_name)),
          },
          { label: "Calls", value: (e) => h("a", { href: drillUrl(f, { agent: e.agent_id, preset: "today" }) }, fmt.int(e.calls)), numeric: true },
          { label: "Connects", value: (e) => fmt.int(e.connects), numeric: true },
          { label: "Rate", value: (e) => fmt.pct(e.connect_rate), numeric: true, cls: (e) => good(isNum(e.connect_rate) ? e.connect_rate >= t.low_connect_rate : null) },
          { label: "Rate rank", value: fairRank, numeric: true },
          { label: "Meetings", value: (e) => fmt.int(e.meetings), numeric: true },
          { label: "Talk min", value: (e) => fmt.num(e.talk_time_minutes), numeric: true },
          { label: "Score", value: (e) => fmt.num(e.avg_call_score), numeric: true, cls: (e) => good(isNum(e.avg_call_score) ? e.avg_call_score >= t.low_call_score : null) },
          { label: "Meeting streak", value: (e) => (e.meeting_streak ? plural(e.meeting_streak, "call") + " in a row" : "—"), numeric: true },
          {
            label: "Daily goal",
            value: (e) => {
              const p = e.daily_goal_progress ?? 0;
              return h("div", { class: `progress ${good(p >= 100)}`, title: `${fmt.int(e.calls)} of ${fmt.int(e.daily_goal)}` }, h("div", { style: `width:${Math.min(p, 100)}%` }), h("span", {}, fmt.pct(p)));
            },
          },
          {
            label: "Today by hour",
            value: (e) => {
              const el = h("div", { class: "spark" });
              sparks.push([el, e.sparkline]);
              return el;
            },
          },
        ],
        undefined,
        "leaderboard",
      ),
    ).then(() => sparks.forEach(([el, v]) => chart(el, sparklineOption(v))));
    const now = r.entries.filter((e) => e.is_online);
    fill(onCall, async () =>
      now.length === 0
        ? empty("Nobody is online.")
        : h(
            "ul",
            { class: "presence", "data-testid": "on-call" },
            now.map((e) => h("li", {}, h("span", { class: `dot ${e.current_status}` }), e.agent_name, h("span", { class: "muted" }, fmt.label(e.current_status ?? "")))),
          ),
    );
  });
  load().catch((e) => fill(board, () => Promise.reject(e)));
  ctx.live(() => void load().catch(() => undefined));
}

export const team: Page = {
  path: "/team",
  title: "Team",
  controls: ["timezone", "team"],
  requires: ["team"],
  defaultPreset: "today",
  render,
  exportable: (ctx) => pageExport(viewQuestion("team-leaderboard", { team_id: ctx.filters.team, timezone: ctx.filters.timezone, sort_by: ctx.params.get("sort_by") ?? "calls" }, "table", "Leaderboard")),
};
