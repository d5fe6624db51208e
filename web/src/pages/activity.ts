import { apiUrl, get } from "../api";
import { nameOf, type App, type Page, type PageContext } from "../app";
import { empty, failure, fmt, h, loading, panel } from "../dom";
import { scopeOf, subscribe, type ActivityItem } from "../live";

const MAX_ITEMS = 200;

const ICONS: Record<string, string> = {
  call_ended: "☎",
  meeting_booked: "★",
  status_changed: "●",
  stage_changed: "➜",
  conversion: "$",
  ticket_resolved: "✓",
};

function describe(a: ActivityItem, app: App): (string | HTMLElement)[] {
  const d = a.detail;
  const who = a.agent_id ? nameOf(app.agents, a.agent_id) : "Someone";
  const call = (text: string) => (d.call_id ? h("a", { href: `/calls?preset=today&call=${encodeURIComponent(String(d.call_id))}` }, text) : text);
  switch (a.kind) {
    case "call_ended":
      return [`${who} ended a `, call("call"), `: ${d.disposition}`, d.talk_seconds ? ` (${fmt.duration(d.talk_seconds)} talk)` : ""];
    case "meeting_booked":
      return [`${who} booked a meeting on a `, call("call"), d.talk_seconds ? ` (${fmt.duration(d.talk_seconds)} talk)` : ""];
    case "status_changed":
      return [`${who} is now ${fmt.label(String(d.status))}`];
    case "conversion":
      return [`${who}: ${d.contact_id} reached ${fmt.label(String(d.stage))}`, d.amount ? ` — ${fmt.money(d.amount)}` : ""];
    case "stage_changed":
      return [`${who}: ${d.contact_id} moved to ${fmt.label(String(d.stage))}`];
    case "ticket_resolved":
      return [`${who} resolved a ${d.channel} conversation`];
    default:
      return [a.kind];
  }
}

function render(ctx: PageContext) {
  const { filters: f, app } = ctx;
  const list = h("ol", { class: "feed", "data-testid": "feed" });
  const note = h("span", { class: "muted" }, "newest first; live as events arrive");
  ctx.root.replaceChildren(panel("Activity", list, note, "wide"));
  const item = (a: ActivityItem, fresh: boolean) =>
    h(
      "li",
      { class: `${a.kind}${fresh ? " fresh" : ""}` },
      h("span", { class: "icon" }, ICONS[a.kind] ?? "•"),
      h("time", { datetime: a.at }, a.at.slice(11, 19)),
      h("span", {}, describe(a, app)),
    );
  // Newest first by when things happened, not by when they were reported: a call is reported
  // when its wrap-up ends, a rep's status may be sent late, and one message holds both.
  const insert = (a: ActivityItem, fresh: boolean) => {
    const at = Date.parse(a.at);
    const after = [...list.querySelectorAll<HTMLTimeElement>(":scope > li > time")].find((t) => Date.parse(t.dateTime) < at);
    const li = item(a, fresh);
    if (after) list.insertBefore(li, after.parentElement);
    else list.append(li);
  };
  // The feed starts with today's latest calls, then grows live.
  list.replaceChildren(loading());
  get<{ calls: { call_id: string; agent_id: string; disposition: string; ended_at: string | null; started_at: string; talk_seconds: number | null }[] }>("/calls", {
    preset: "today",
    timezone: f.timezone,
    team: f.team,
    agent: f.agent,
    limit: "30",
  })
    .then((r) => {
      const meeting = new Set(app.settings.taxonomy.meeting);
      // Live items may have arrived meanwhile: they stay, in their place.
      list.querySelector(":scope > .state")?.remove();
      for (const c of r.calls)
        insert(
          {
            kind: meeting.has(c.disposition) ? "meeting_booked" : "call_ended",
            at: c.ended_at ?? c.started_at,
            agent_id: c.agent_id,
            team_id: null,
            campaign_id: null,
            detail: { call_id: c.call_id, disposition: c.disposition, talk_seconds: c.talk_seconds },
          },
          false,
        );
      if (!list.children.length) list.replaceChildren(h("li", { class: "none" }, empty("No activity yet today: events appear here as they arrive.")));
    })
    .catch((e) => list.replaceChildren(failure(e)));
  ctx.onLeave(
    subscribe({
      // The page honours team and agent only, as its first calls do.
      scope: scopeOf({ ...f, campaign: undefined }),
      onActivity: (items) => {
        const waiting = list.querySelector(".state");
        (waiting?.closest("li") ?? waiting)?.remove();
        for (const a of items) insert(a, true);
        while (list.children.length > MAX_ITEMS) list.lastElementChild?.remove();
      },
    }),
  );
}

export const activity: Page = {
  path: "/activity",
  title: "Activity feed",
  controls: ["team", "agent"],
  defaultPreset: "today",
  render,
  // The calls behind the feed: today's, of the chosen team or agent.
  exportable: ({ filters: f }) => ({ url: (format) => apiUrl("/calls", { preset: "today", timezone: f.timezone, team: f.team, agent: f.agent, format }) }),
};
