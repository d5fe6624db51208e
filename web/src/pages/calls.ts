import { apiUrl, get, latest, type Params, type Schemas } from "../api";
import { nameOf, type Page, type PageContext } from "../app";
import { empty, failure, fill, fmt, h, isNum, loading, panel, table } from "../dom";
import { DIMENSIONS, includesToday, rangeParams } from "../filters";
import { onStatus } from "../live";

type Call = Schemas["Call"];
type CallDetail = Schemas["CallDetail"];

/** Drill-down parameters beyond the filter bar's that a chart may add. */
const EXTRA = ["disposition_category", "hour_of_day", "day_of_week", "direction", "list", "channel", "score_range"];

/** The drill-down's parameters: the filters and what a chart added. */
function callsQuery(ctx: PageContext): Params {
  const query: Params = { ...rangeParams(ctx.filters), timezone: ctx.filters.timezone };
  for (const d of [...DIMENSIONS, ...EXTRA]) query[d] = ctx.params.get(d) ?? undefined;
  return query;
}

function render(ctx: PageContext) {
  const { filters: f, app } = ctx;
  const query = callsQuery(ctx);
  const chips = EXTRA.filter((d) => ctx.params.get(d)).map((d) =>
    h("a", { class: "chip", href: location.pathname + "?" + without(ctx.params, d), title: "remove this filter" }, `${fmt.label(d)}: ${ctx.params.get(d)} ✕`),
  );
  const detail = h("div", { class: "detail" });
  const list = h("div", {}, loading());
  const more = h("div", { class: "more" });
  const live = h("span", { class: "badge", "data-testid": "calls-live" });
  ctx.root.replaceChildren(
    chips.length ? h("div", { class: "chips" }, chips) : "",
    detail,
    panel("Calls", list, [live, h("span", { class: "muted" }, " newest first · click a call for its analysis and versions")], "wide"),
    more,
  );
  const open = ctx.params.get("call");
  if (open) showDetail(detail, open, ctx);

  const rows: Call[] = [];
  /** Calls that arrived live since the page opened, highlighted. */
  const fresh = new Set<string>();
  const draw = () =>
    list.replaceChildren(
      rows.length === 0
        ? empty("No calls match these filters.")
        : table(
            rows,
            [
              { label: "Started", value: (c) => c.started_at.replace("T", " ").slice(0, 16), cls: (c) => (fresh.has(c.call_id) ? "fresh" : "") },
              { label: "Agent", value: (c) => nameOf(app.agents, c.agent_id) },
              { label: "Campaign", value: (c) => nameOf(app.campaigns, c.campaign_id) },
              { label: "Disposition", value: (c) => h("span", { class: `tag ${c.disposition_category ?? ""}` }, c.disposition) },
              { label: "Talk", value: (c) => fmt.duration(c.talk_seconds), numeric: true },
              { label: "Score", value: (c) => fmt.num(c.analysis?.score), numeric: true },
            ],
            (c) => ctx.navigate(`${location.pathname}?${withParam(ctx.params, "call", c.call_id)}`),
            "calls-table",
          ),
    );
  /** Adds calls to those shown (a corrected call replaces its row), newest first; returns the new ones. */
  const merge = (calls: Call[]): Call[] => {
    const added = calls.filter((c) => {
      const i = rows.findIndex((r) => r.call_id === c.call_id);
      if (i >= 0) rows[i] = c;
      return i < 0;
    });
    rows.push(...added);
    rows.sort((a, b) => Date.parse(b.started_at) - Date.parse(a.started_at));
    return added;
  };
  const page = async (cursor?: string) => {
    more.replaceChildren(loading());
    try {
      const r = await get<{ calls: Call[]; next_cursor: string | null }>("/calls", { ...query, cursor, limit: "50" });
      merge(r.calls);
      draw();
      more.replaceChildren(
        r.next_cursor ? h("button", { "data-testid": "load-more", onclick: () => page(r.next_cursor!) }, "Load more") : rows.length ? h("span", { class: "muted" }, `${rows.length} calls`) : "",
      );
    } catch (e) {
      more.replaceChildren(failure(e));
    }
  };
  page();
  // A range that reaches today is live: calls appear as they end. One that has ended says so.
  if (includesToday(f)) {
    ctx.onLeave(
      onStatus((s) => {
        live.className = `badge${s === "live" ? " ok" : ""}`;
        live.textContent = s === "live" ? "● Live" : s === "connecting" ? "○ Connecting" : "○ Offline: not updating";
      }),
    );
    ctx.live(
      latest(async () => {
        try {
          const r = await get<{ calls: Call[] }>("/calls", { ...query, limit: "50" });
          for (const c of merge(r.calls)) fresh.add(c.call_id);
          draw();
        } catch (e) {
          more.replaceChildren(failure(e));
        }
      }),
    );
  } else live.textContent = "Not live: this range has ended";
}

function without(q: URLSearchParams, key: string): string {
  const c = new URLSearchParams(q);
  c.delete(key);
  return c.toString();
}

function withParam(q: URLSearchParams, key: string, value: string): string {
  const c = new URLSearchParams(q);
  c.set(key, value);
  return c.toString();
}

function showDetail(target: HTMLElement, id: string, ctx: PageContext) {
  const close = h("a", { class: "link", href: `${location.pathname}?${without(ctx.params, "call")}` }, "close ✕");
  const body = h("div", { "data-testid": "call-detail" });
  target.replaceChildren(panel(`Call ${id}`, body, close, "wide"));
  fill(body, async () => {
    const c = await get<CallDetail>(`/calls/${encodeURIComponent(id)}`);
    const a = c.analysis;
    const fact = (label: string, value: unknown) => h("div", { class: "fact" }, h("span", {}, label), h("strong", {}, String(value ?? "—")));
    return [
      h(
        "div",
        { class: "facts" },
        fact("Agent", nameOf(ctx.app.agents, c.agent_id)),
        fact("Team", nameOf(ctx.app.teams, c.team_id)),
        fact("Campaign", nameOf(ctx.app.campaigns, c.campaign_id)),
        fact("Lead source", c.lead_source),
        fact("Direction", c.direction),
        fact("Disposition", c.disposition),
        fact("Contact", c.contact_id),
        fact("Started", c.started_at),
        fact("Ended", c.ended_at),
        fact("Wait", fmt.duration(c.wait_seconds)),
        fact("Talk", fmt.duration(c.talk_seconds)),
        fact("Wrap-up", fmt.duration(c.wrap_seconds)),
      ),
      a
        ? h(
            "div",
            { class: "facts" },
            fact("Call score", fmt.num(a.score)),
            fact("Sentiment", isNum(a.sentiment) ? a.sentiment.toFixed(2) : "—"),
            fact("Prospect sentiment", isNum(a.prospect_sentiment) ? a.prospect_sentiment.toFixed(2) : "—"),
            fact("Agent talk ratio", fmt.ratio(a.agent_talk_ratio)),
            fact("Filler words / 100", fmt.num(a.filler_words_per_100)),
            fact("Intent", a.intent),
          )
        : h("p", { class: "muted" }, "No AI analysis for this call."),
      h("h3", {}, `Versions (${c.versions.length})`),
      table(c.versions, [
        { label: "Event", value: (v) => v.event_id },
        { label: "Received", value: (v) => v.received_at },
        { label: "Disposition", value: (v) => String(v.event.disposition ?? "—") },
        { label: "", value: (v) => (v.current ? h("span", { class: "tag connected" }, "current") : "replaced") },
      ]),
    ];
  });
}

export const calls: Page = {
  path: "/calls",
  title: "Calls",
  controls: ["range", "timezone", "team", "agent", "campaign", "disposition", "lead_source"],
  defaultPreset: "last_7_days",
  render,
  // Every matching call (a job past 100,000, its progress shown), not a page of them.
  exportable: (ctx) => ({ url: (format) => apiUrl("/calls", { ...callsQuery(ctx), format }) }),
};
