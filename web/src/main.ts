// The shell: sign-in, navigation, the filter bar and the router. Pages live in pages/.

import "./style.css";
import { ApiError, cancelAll, get, post, type Me, type SignedOut } from "./api";
import { loadApp, type App, type Control, type Page, type PageContext } from "./app";
import { disposeCharts } from "./charts";
import { failure, h, loading } from "./dom";
import { FILTER_KEYS, PRESETS, readFilters, withFilters, type Filters } from "./filters";
import { disconnect, onStatus, scopeOf, subscribe, type Scope } from "./live";
import { PAGES } from "./pages";
import { exportButtons } from "./saved";

const root = document.getElementById("app")!;
let app: App | null = null;
let leave: (() => void)[] = [];

function navigate(url: string, replace = false) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  route();
}

/** To the login, back here after it. */
function signIn() {
  if (location.pathname !== "/login") {
    app = null;
    disconnect();
    navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, true);
  }
}

window.addEventListener("popstate", () => route());
window.addEventListener("unauthorized", signIn);
// Links inside the app change the view without a reload.
document.addEventListener("click", (e) => {
  const a = (e.target as Element).closest("a");
  // A download (an export's file) is the browser's, not a view.
  if (!a || a.target || a.hasAttribute("download") || e.ctrlKey || e.metaKey || e.shiftKey || a.origin !== location.origin) return;
  if (a.pathname.startsWith("/api/")) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
});

async function route() {
  // The previous view's answers still in flight would land on a page that is gone.
  cancelAll();
  for (const f of leave.splice(0)) f();
  disposeCharts();
  if (location.pathname === "/login") return renderLogin();
  if (!app) {
    root.replaceChildren(loading());
    try {
      // Signed out, `/auth/me` says so with `user: null` (not a 401, which browsers log as an error).
      const me = await get<Me | SignedOut>("/auth/me");
      if (me.user === null) return signIn();
      app = await loadApp(me as Me);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return; // the unauthorized handler redirects
      root.replaceChildren(failure(e));
      return;
    }
  }
  const pages = PAGES.filter((p) => !p.roles || p.roles.includes(app!.role));
  const page = pages.find((p) => p.path === location.pathname);
  if (!page) return navigate(pages[0].path + location.search, true);
  const filters = readFilters(page.defaultPreset);
  // A rep sees their own numbers: the agent filter is always themselves.
  if (app.ownAgent && page.controls.includes("agent") && filters.agent !== app.ownAgent) {
    return navigate(location.pathname + withFilters({ agent: app.ownAgent }), true);
  }
  const missing = (page.requires ?? []).filter((d) => !filters[d]);
  if (missing.length) {
    const defaults: Record<string, string | undefined> = {};
    for (const d of missing) defaults[d] = defaultOf(app, d, filters);
    if (Object.values(defaults).every(Boolean)) return navigate(location.pathname + withFilters(defaults), true);
  }
  document.title = `${page.title} · dialboard`;
  const content = h("main", { class: "content", "data-page": page.path });
  root.replaceChildren(shell(app, pages, page, filters, content));
  const ctx: PageContext = {
    app,
    filters,
    params: new URLSearchParams(location.search),
    root: content,
    navigate: (url) => navigate(url),
    live: (refresh) => leave.push(watch(scopeOf(filters), refresh)),
    onLeave: (f) => leave.push(f),
  };
  if (page.exportable) content.before(h("div", { class: "page-exports", "data-testid": "page-exports" }, "Export this page:", exportButtons(page.exportable(ctx), page.path.slice(1) || "overview")));
  page.render(ctx);
}

/** A required filter's value when the URL has none: the user's own team or agent, else the first. */
function defaultOf(app: App, d: string, f: Filters): string | undefined {
  const own = app.agents.find((a) => a.id === app.ownAgent);
  if (d === "team") return own?.team_id ?? app.teams[0]?.id;
  if (d === "agent") return own?.id ?? app.agents.find((a) => !f.team || a.team_id === f.team)?.id;
  return undefined;
}

/** Refreshes at most every 750 ms while updates arrive. */
function watch(scope: Scope, refresh: () => void): () => void {
  let timer: number | undefined;
  const stop = subscribe({
    scope,
    onUpdate: () => {
      if (timer === undefined)
        timer = window.setTimeout(() => {
          timer = undefined;
          refresh();
          const n = Number(document.body.dataset.liveRefreshes ?? 0) + 1;
          document.body.dataset.liveRefreshes = String(n);
        }, 750);
    },
  });
  return () => {
    clearTimeout(timer);
    stop();
  };
}

function shell(app: App, pages: Page[], page: Page, f: Filters, content: HTMLElement): HTMLElement {
  const current = new URLSearchParams(location.search);
  const keep = new URLSearchParams();
  for (const k of FILTER_KEYS) {
    const v = current.get(k);
    if (v) keep.set(k, v);
  }
  const status = h("span", { class: "live-status", "data-testid": "live-status" });
  leave.push(
    onStatus((s) => {
      status.className = `live-status ${s}`;
      status.textContent = s === "live" ? "● Live" : s === "connecting" ? "○ Connecting" : "○ Offline";
    }),
  );
  const who = app.me.user.email ?? "API key";
  return h(
    "div",
    { class: "layout" },
    h(
      "nav",
      { class: "sidebar", "aria-label": "pages" },
      h("a", { class: "brand", href: "/" }, "dialboard"),
      pages.map((p) => h("a", { href: `${p.path}?${keep}`, class: p === page ? "active" : "", "data-testid": `nav-${p.path.slice(1) || "overview"}` }, p.title)),
    ),
    h(
      "div",
      { class: "main" },
      h(
        "header",
        { class: "topbar" },
        h("h1", {}, page.title),
        status,
        h(
          "span",
          { class: "who" },
          `${who} · ${app.role} · ${app.me.tenant}`,
          h("button", { class: "link", "data-testid": "logout", onclick: logout }, "Sign out"),
        ),
      ),
      filterBar(app, page, f),
      content,
    ),
  );
}

async function logout() {
  await post("/auth/logout", {}).catch(() => undefined);
  app = null;
  disconnect();
  navigate("/login", true);
}

/** A filter's select; choosing also clears the filters in `clears` (an agent of another team). */
function select(name: string, label: string, value: string | undefined, options: [string, string][], any = "All", clears: string[] = []): HTMLElement {
  return h(
    "label",
    { class: "control" },
    h("span", {}, label),
    h(
      "select",
      {
        name,
        "data-testid": `filter-${name}`,
        onchange: (e: Event) => update({ ...Object.fromEntries(clears.map((c) => [c, undefined])), [name]: (e.target as HTMLSelectElement).value }),
      },
      any ? h("option", { value: "" }, any) : null,
      options.map(([v, l]) => h("option", { value: v, selected: v === value }, l)),
    ),
  );
}

function update(changes: Record<string, string | boolean | undefined>) {
  navigate(location.pathname + withFilters(changes));
}

const ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "UTC", "Europe/London", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Adelaide", "Asia/Tokyo"];

function filterBar(app: App, page: Page, f: Filters): HTMLElement {
  const has = (c: Control) => page.controls.includes(c);
  const required: Control[] = page.requires ?? [];
  const custom = Boolean(f.start || f.end);
  const zones = [...new Set([app.settings.timezone, ...ZONES])];
  const date = (name: "start" | "end", label: string) =>
    h(
      "label",
      { class: "control" },
      h("span", {}, label),
      h("input", { type: "date", name, "data-testid": `filter-${name}`, value: f[name] ?? "", onchange: (e: Event) => update({ [name]: (e.target as HTMLInputElement).value }) }),
    );
  const taxonomy = app.settings.taxonomy.categories.flatMap(([, ds]) => ds);
  const controls = [
    has("range") && select("preset", "Range", custom ? "" : f.preset, PRESETS.map(([v, l]) => [v, l]), custom ? "Custom" : ""),
    has("range") && date("start", "From"),
    has("range") && date("end", "To"),
    has("timezone") && select("timezone", "Timezone", f.timezone, zones.map((z) => [z, z]), `Tenant (${app.settings.timezone})`),
    has("team") && select("team", "Team", f.team, app.teams.map((t) => [t.id, t.name]), !required.includes("team") && (app.teams.length > 1 || app.me.reach.all) ? "All teams" : "", app.ownAgent ? [] : ["agent"]),
    has("agent") && !app.ownAgent && select("agent", "Agent", f.agent, app.agents.filter((a) => !f.team || a.team_id === f.team).map((a) => [a.id, a.name]), required.includes("agent") ? "" : "All agents"),
    has("agent") && app.ownAgent && h("span", { class: "control fixed" }, h("span", {}, "Agent"), app.agents[0]?.name ?? app.ownAgent),
    has("campaign") && select("campaign", "Campaign", f.campaign, app.campaigns.map((c) => [c.id, c.name]), "All campaigns"),
    has("disposition") && select("disposition", "Disposition", f.disposition, taxonomy.map((d) => [d, d]), "All dispositions"),
    has("lead_source") && select("lead_source", "Lead source", f.lead_source, app.leadSources.map((s) => [s, s]), "All sources"),
    has("compare") &&
      h(
        "label",
        { class: "control check" },
        h("input", { type: "checkbox", name: "compare", "data-testid": "filter-compare", checked: f.compare, onchange: (e: Event) => update({ compare: (e.target as HTMLInputElement).checked }) }),
        h("span", {}, "Compare with previous period"),
      ),
  ];
  return h("form", { class: "filters", "aria-label": "filters", onsubmit: (e: Event) => e.preventDefault() }, controls);
}

function renderLogin() {
  disposeCharts();
  document.title = "Sign in · dialboard";
  const error = h("p", { class: "login-error", role: "alert" });
  const email = h("input", { type: "email", name: "email", required: true, autocomplete: "username", placeholder: "you@company.com" });
  const password = h("input", { type: "password", name: "password", required: true, autocomplete: "current-password" });
  // Only an e-mail used in several workspaces (tenants) needs it.
  const tenant = h("input", { type: "text", name: "tenant", autocomplete: "organization", placeholder: "optional" });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    {
      class: "login",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        submit.disabled = true;
        error.textContent = "";
        try {
          const workspace = tenant.value.trim();
          await post("/auth/login", { email: email.value, password: password.value, ...(workspace ? { tenant: workspace } : {}) });
          app = null;
          const next = new URLSearchParams(location.search).get("next");
          navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/", true);
        } catch (err) {
          error.textContent = err instanceof ApiError && err.status === 401 ? "Wrong e-mail or password. An e-mail used in several workspaces also needs the workspace." : String((err as Error).message);
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("div", { class: "brand" }, "dialboard"),
    h("label", {}, "E-mail", email),
    h("label", {}, "Password", password),
    h("label", {}, "Workspace", tenant),
    submit,
    error,
  );
  root.replaceChildren(h("div", { class: "login-page" }, form));
  email.focus();
}

route();
