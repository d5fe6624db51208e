// What every page needs: who is signed in, the tenant's settings and directory, the filters,
// and a way to navigate.

import { get, post, type Agent, type Campaign, type Me, type Named, type Schemas, type Settings, type Team } from "./api";
import { h } from "./dom";
import { DIMENSIONS, type Dimension, type Filters } from "./filters";
import type { Exportable } from "./saved";

export interface App {
  me: Me;
  settings: Settings;
  teams: Team[];
  agents: Agent[];
  campaigns: Campaign[];
  leadSources: string[];
  /** The signed-in user's role (`admin` for an API key). */
  role: string;
  /** The rep this user is, when the role is `agent`. */
  ownAgent?: string;
}

export async function loadApp(me: Me): Promise<App> {
  const [settings, teams, agents, campaigns, leadSources] = await Promise.all([
    get<Settings>("/settings"),
    get<Schemas["TeamsAnswer"]>("/teams"),
    get<Schemas["AgentsAnswer"]>("/agents"),
    get<Schemas["CampaignsAnswer"]>("/campaigns"),
    // Lead sources have no directory: the ones calls carry fill the filter.
    post<Schemas["QueryAnswer"]>("/query", {
      measures: ["total_calls"],
      dimensions: ["lead_source"],
      range: { preset: "all_time" },
      order_by: [["total_calls", "desc"]],
    }).then((r) => r.rows.map((row) => row[0]).filter((s): s is string => typeof s === "string" && s !== "")),
  ]);
  const reachTeams = me.reach.all ? null : new Set(me.reach.teams ?? []);
  return {
    me,
    settings,
    teams: teams.teams.filter((t) => !reachTeams || reachTeams.has(t.id)),
    agents: agents.agents.filter((a) => {
      if (me.reach.agent_id) return a.id === me.reach.agent_id;
      return !reachTeams || (typeof a.team_id === "string" && reachTeams.has(a.team_id));
    }),
    campaigns: campaigns.campaigns,
    leadSources,
    role: me.user.role ?? "admin",
    ownAgent: me.reach.agent_id ?? undefined,
  };
}

export const nameOf = (list: Named[], id: string | null | undefined) => list.find((x) => x.id === id)?.name ?? id ?? "—";

export interface PageContext {
  app: App;
  filters: Filters;
  /** The page's own URL parameters (besides the filters). */
  params: URLSearchParams;
  root: HTMLElement;
  navigate: (url: string) => void;
  /** Runs `refresh` (debounced) whenever the live scope of these filters changes; until the page leaves. */
  live: (refresh: () => void) => void;
  /** Called when the page is left. */
  onLeave: (cleanup: () => void) => void;
}

export type Control = "range" | "timezone" | "compare" | Dimension;

export interface Page {
  path: string;
  title: string;
  /** Filter bar controls this page honours. */
  controls: Control[];
  defaultPreset: string;
  /** Dimensions the page needs one value of (the bar offers no "all"; the URL gets a default). */
  requires?: Dimension[];
  /** Roles that see the page (all when absent). */
  roles?: string[];
  /** What the page's CSV, XLSX and PDF buttons export: its main view, with its filters. */
  exportable?: (ctx: PageContext) => Exportable;
  render: (ctx: PageContext) => void;
}

/** A link to the calls behind a number: the page's filters plus `extra`. */
export function drillUrl(f: Filters, extra: Record<string, string | undefined> = {}): string {
  // A drill with its own dates or preset (one bucket, today's leaderboard) replaces the page's range.
  const range = extra.start || extra.preset ? {} : { preset: f.preset, start: f.start, end: f.end };
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...range, timezone: f.timezone, ...pick(f, DIMENSIONS), ...extra })) if (v) q.set(k, v);
  return `/calls?${q}`;
}

const pick = (f: Filters, keys: readonly Dimension[]) => Object.fromEntries(keys.map((k) => [k, f[k]]));

/** A page's own choice (sort order, period, …): a select kept in the URL as `name`. */
export function choice(ctx: PageContext, name: string, options: string[][], fallback: string): [string, HTMLSelectElement] {
  const current = ctx.params.get(name) ?? fallback;
  const select = h(
    "select",
    {
      "data-testid": name,
      onchange: (e: Event) => {
        const q = new URLSearchParams(location.search);
        q.set(name, (e.target as HTMLSelectElement).value);
        ctx.navigate(`${location.pathname}?${q}`);
      },
    },
    options.map(([v, l]) => h("option", { value: v, selected: v === current }, l)),
  );
  return [current, select];
}
