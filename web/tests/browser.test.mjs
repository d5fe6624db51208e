// Browser tests: the real `dialboard demo` binary and Debian's Chromium, driven by
// playwright-core. Every page as every demo role (Schedules and Alerts too, each role seeing
// what it may), the filters in the URL, a drill-down, a live update, and no console errors anywhere. Screenshots go to web/test-artifacts/.
//
// DIALBOARD_BIN: the binary (the Rust test that runs this passes its debug build).
// CHROMIUM: the browser (default /usr/bin/chromium).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = join(here, "..", "test-artifacts");
const binary = process.env.DIALBOARD_BIN ?? join(here, "..", "..", "target", "debug", "dialboard");
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let server;
let base;
let browser;
let dir;

/** Starts `dialboard demo` on a fresh database and a free port; resolves with its URL. */
function startDemo() {
  dir = mkdtempSync(join(tmpdir(), "dialboard-web-"));
  server = spawn(binary, ["demo", "--database", `sqlite://${join(dir, "demo.db")}`, "--listen", "127.0.0.1:0", "--days", "21"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let out = "";
    server.stdout.on("data", (chunk) => {
      out += chunk;
      const url = out.match(/^(http:\/\/\S+)$/m);
      if (url) resolve(url[1]);
    });
    server.on("exit", (code) => reject(new Error(`dialboard demo exited (${code}): ${out}`)));
  });
}

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  base = await startDemo();
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: FLAGS });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A fresh page that records every console error and uncaught exception. */
async function open(viewport = { width: 1440, height: 1000 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(`${page.url()}: ${m.text()}`));
  page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
  return { page, errors, context };
}

/** A signed-in page, signed in as a newcomer would: the app's address first, then the login. */
async function signIn(email, viewport) {
  const { page, errors, context } = await open(viewport);
  await page.goto(`${base}/`);
  await page.waitForURL(/\/login\?next=/);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", "demo");
  await page.click("button[type=submit]");
  await page.waitForSelector("nav.sidebar");
  return { page, errors, context };
}

/** Waits until the page shows no loading state, then checks it shows no error state. */
async function settled(page) {
  await page.waitForFunction(() => document.querySelector("main.content") && !document.querySelector(".state.loading"), null, { timeout: 20_000 });
  // Charts draw after their data arrives.
  await page.waitForTimeout(300);
  const failures = await page.locator(".state.error").allTextContents();
  assert.deepEqual(failures, [], `error states on ${page.url()}`);
}

const PAGES = ["overview", "team", "agent", "pipeline", "best-time", "staffing", "tickets", "coaching", "activity", "calls", "builder", "schedules", "alerts"];
/** What a page with no data yet shows: its form (a role's own schedules and alerts). */
const FORMS = "[data-testid=schedule-save], [data-testid=alert-save]";

/**
 * Schedules and Alerts as `role` may use them: both list exactly what the API lets the role see
 * and offer the form to make one; only an admin picks a webhook (they manage them); a rep's
 * alert scope is themselves.
 */
async function checkRolePage(page, role, name) {
  if (name === "schedules") {
    const { schedules } = await page.evaluate(async () => (await fetch("/api/v1/schedules")).json());
    assert.equal(await page.getByTestId("schedules").locator("tbody tr").count(), schedules.length, `${role}'s schedules`);
    assert.equal(await page.getByTestId("schedule-webhook").isVisible(), role === "admin", `${role} picks a webhook`);
    assert.ok(await page.getByTestId("schedule-save").isVisible());
  }
  if (name === "alerts") {
    const { alerts } = await page.evaluate(async () => (await fetch("/api/v1/alerts")).json());
    assert.equal(await page.getByTestId("alerts").locator("tbody tr").count(), alerts.length, `${role}'s alerts`);
    assert.ok(await page.getByTestId("alert-save").isVisible());
  }
}

for (const [role, email, hidden] of [
  ["admin", "admin@demo.test", []],
  ["manager", "manager@demo.test", []],
  ["agent", "agent@demo.test", ["coaching", "staffing"]],
]) {
  describe(`as ${role}`, () => {
    test("every page loads, renders its charts and tables, and logs no errors", async () => {
      const { page, errors, context } = await signIn(email);
      for (const name of PAGES) {
        const link = page.getByTestId(`nav-${name}`);
        if (hidden.includes(name)) {
          assert.equal(await link.count(), 0, `${role} should not see ${name}`);
          continue;
        }
        await link.click();
        await page.waitForURL((u) => u.pathname === (name === "overview" ? "/" : `/${name}`));
        await settled(page);
        await checkRolePage(page, role, name);
        const shown = await page.locator(`.chart canvas, table, [data-testid=feed] li, [data-testid=coaching], ${FORMS}`).count();
        // Coaching is about today: in the first minutes after the demo's midnight (New York)
        // no rep has a call yet, and both its panels rightly say so.
        const emptyToday = name === "coaching" && (await page.locator(".state.empty").count()) === 2;
        assert.ok(shown > 0 || emptyToday, `${name} shows no chart, table or feed`);
        await page.screenshot({ path: join(artifacts, `${role}-${name}.png`), fullPage: true });
      }
      assert.deepEqual(errors, []);
      await context.close();
    });
  });
}

test("the Staffing page: forecast with its band and actual calls, agents required vs online, the target's inputs, the backtest", async () => {
  const { page, errors, context } = await signIn("manager@demo.test");
  await page.getByTestId("nav-staffing").click();
  await page.waitForURL((u) => u.pathname === "/staffing");
  await settled(page);
  for (const id of ["chart-staffing-forecast", "chart-staffing-agents", "chart-forecast"]) {
    await page.getByTestId(id).locator("canvas").first().waitFor();
  }
  // 21 days of history allow a week of backtest; its figures sit beside seasonal naive's.
  const backtest = await page.getByTestId("backtest").textContent();
  assert.match(backtest, /Forecast WAPE\d/);
  assert.match(backtest, /Seasonal naive WAPE\d/);
  const rows = page.getByTestId("staffing-intervals").locator("tbody tr");
  assert.ok((await rows.count()) > 10, "intervals with a forecast are listed");
  // Erlang A with the callers' patience estimated from the demo's abandons and waits.
  assert.equal((await page.getByTestId("kpi-Model").textContent()).trim(), "Erlang A");
  assert.match(await page.getByTestId("kpi-Patience").textContent(), /from [\d,]+ abandons/);
  const scheduled = async () => (await page.getByTestId("kpi-Peak scheduled").textContent()).trim();
  const before = await scheduled();
  // More shrinkage means more agents to schedule; the choice lives in the URL.
  await page.getByTestId("input-shrinkage").fill("50");
  await page.getByTestId("apply-target").click();
  await page.waitForURL(/shrinkage=50/);
  await settled(page);
  assert.ok(Number((await scheduled()).replace(/,/g, "")) > Number(before.replace(/,/g, "")), `scheduled ${before} → ${await scheduled()}`);
  const csv = page.getByTestId("export-staffing");
  assert.match(await csv.getAttribute("download"), /^staffing-\d{4}-\d\d-\d\d\.csv$/);
  await page.screenshot({ path: join(artifacts, "manager-staffing-target.png"), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

test("a rep's page shows their streak at the daily goal and their badges, counted in words that agree", async () => {
  const { page, errors, context } = await signIn("agent@demo.test");
  await page.getByTestId("nav-agent").click();
  await settled(page);
  const badges = page.getByTestId("badges");
  await badges.waitFor();
  // Three weeks of a demo rep's calls book meetings: the first one earned a badge.
  await page.locator("[data-badge=first_meeting]").waitFor();
  const streak = await page.getByTestId("goal-streak").textContent();
  assert.match(streak, /^(1 day|\d+ days) in a row at the daily goal|^no current streak/);
  // The team board's meeting streak counts calls, never "1 days".
  await page.getByTestId("nav-team").click();
  await settled(page);
  assert.doesNotMatch(await page.locator("main").textContent(), /\b1 days\b|\b1 calls\b/);
  assert.deepEqual(errors, []);
  await context.close();
});

test("a first visit, signed out, goes to the login without a console error", async () => {
  const { page, errors, context } = await open();
  await page.goto(`${base}/team?preset=today`);
  await page.waitForURL(/\/login\?next=%2Fteam/);
  await page.locator("input[name=email]").waitFor();
  assert.deepEqual(errors, []);
  await context.close();
});

test("an agent sees their own numbers: the agent filter is fixed to them", async () => {
  const { page, errors, context } = await signIn("agent@demo.test");
  await page.getByTestId("nav-agent").click();
  await settled(page);
  assert.match(page.url(), /agent=maria\.santos/);
  assert.equal(await page.getByTestId("filter-agent").count(), 0, "no agent picker for a rep");
  await assert.doesNotReject(page.getByTestId("scorecard").getByText("Calls").first().waitFor());
  // Another rep's scorecard is refused by the server, and the page says so instead of breaking.
  await page.goto(`${base}/agent?agent=li.wei`);
  await settled(page);
  assert.match(page.url(), /agent=maria\.santos/, "the URL is brought back to the rep");
  assert.deepEqual(errors, []);
  await context.close();
});

test("a manager's team filter offers only their teams", async () => {
  const { page, errors, context } = await signIn("manager@demo.test");
  await settled(page);
  const teams = await page.getByTestId("filter-team").locator("option").allTextContents();
  assert.deepEqual(teams, ["Enterprise"]);

  assert.deepEqual(errors, []);
  await context.close();
});

test("a manager's pipeline counts their team's contacts, and says why ROI is unknown", async () => {
  const { page, errors, context } = await signIn("manager@demo.test");
  await page.getByTestId("nav-pipeline").click();
  await settled(page);
  // The last row is "All": the team's contacts at the first stage (stage events name no team).
  const all = page.getByTestId("funnel-table").locator("tbody tr").last();
  const reached = Number((await all.locator("td").nth(1).textContent()).replace(/\D/g, ""));
  assert.ok(reached > 0, "the manager's team has contacts in the funnel");
  // A campaign's cost is the whole campaign's: for one team ROI is "—", with the reason.
  const roi = page.getByTestId("campaigns").locator("tbody tr").first().locator("td").last();
  assert.equal((await roi.textContent()).trim(), "—");
  assert.match(await roi.locator(".unavailable").getAttribute("title"), /whole campaign/);
  assert.deepEqual(errors, []);
  await context.close();
});

test("filters live in the URL: shareable, and the back button restores them", async () => {
  const { page, errors, context } = await signIn("admin@demo.test");
  await settled(page);
  const calls = async () => page.locator('[data-metric="total_calls"]').textContent();
  const all = await calls();
  await page.getByTestId("filter-team").selectOption("smb");
  await page.waitForURL(/team=smb/);
  await settled(page);
  const smb = await calls();
  assert.notEqual(smb, all, "the team filter changes the numbers");
  await page.getByTestId("filter-preset").selectOption("last_7_days");
  await page.waitForURL(/preset=last_7_days/);
  await settled(page);
  assert.match(page.url(), /team=smb/);
  // A shared link opens the same view.
  const shared = await context.newPage();
  await shared.goto(page.url());
  await settled(shared);
  assert.equal(await shared.getByTestId("filter-team").inputValue(), "smb");
  assert.equal(await shared.getByTestId("filter-preset").inputValue(), "last_7_days");
  // Back twice: today, all teams.
  await page.goBack();
  await settled(page);
  assert.doesNotMatch(page.url(), /last_7_days/);
  await page.goBack();
  await settled(page);
  assert.doesNotMatch(page.url(), /team=/);
  assert.equal(await page.getByTestId("filter-team").inputValue(), "");
  // Picking a team on the agent page shows one of its reps.
  await page.getByTestId("nav-agent").click();
  await settled(page);
  await page.getByTestId("filter-team").selectOption("smb");
  await page.waitForURL(/team=smb/);
  await settled(page);
  const reps = await page.getByTestId("filter-agent").locator("option").evaluateAll((os) => os.map((o) => o.value));
  const shown = new URL(page.url()).searchParams.get("agent");
  assert.ok(reps.includes(shown), `${shown} is not in smb: ${reps}`);
  await page.getByTestId("nav-overview").click();
  await settled(page);
  // A custom range replaces the preset.
  await page.getByTestId("filter-start").fill("2026-01-05");
  await page.getByTestId("filter-start").dispatchEvent("change");
  await page.waitForURL(/start=2026-01-05/);
  assert.doesNotMatch(page.url(), /preset=/);
  await settled(page);
  assert.deepEqual(errors, []);
  await context.close();
});

test("drill-down: from a number to the calls behind it, and into one call", async () => {
  const { page, errors, context } = await signIn("admin@demo.test");
  await page.getByTestId("filter-preset").selectOption("last_7_days");
  await settled(page);
  const shown = Number((await page.locator('[data-metric="connected_calls"]').textContent()).replace(/,/g, ""));
  await page.locator('a.kpi:has([data-metric="connected_calls"])').click();
  await page.waitForURL(/\/calls\?.*disposition_category=connected/);
  await settled(page);
  const rows = page.getByTestId("calls-table").locator("tbody tr");
  assert.ok((await rows.count()) > 0);
  // Every call listed is a connected one, and paging reaches as many as the KPI said (up to 3 pages).
  const categories = await page.locator("td .tag").evaluateAll((els) => els.map((e) => e.className));
  assert.ok(categories.every((c) => c.includes("connected")), categories.join());
  for (let i = 0; i < 2 && (await page.getByTestId("load-more").count()); i++) {
    const listed = await rows.count();
    await page.getByTestId("load-more").click();
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=calls-table] tbody tr").length > n, listed);
  }
  if ((await page.getByTestId("load-more").count()) === 0) assert.equal(await rows.count(), shown);
  await rows.first().click();
  await page.waitForURL(/call=/);
  await page.getByTestId("call-detail").getByText("Versions").waitFor();
  await settled(page);
  // The donut drills from categories to dispositions to calls.
  await page.goto(`${base}/?preset=last_7_days`);
  await settled(page);
  const donut = page.getByTestId("chart-dispositions");
  const box = await donut.boundingBox();
  // The ring sits around the centre (45% down): click on its right side.
  await page.mouse.click(box.x + box.width / 2 + box.height * 0.28, box.y + box.height * 0.45);
  await page.getByTestId("donut-back").waitFor();
  await page.mouse.click(box.x + box.width / 2 + box.height * 0.28, box.y + box.height * 0.45);
  await page.waitForURL(/\/calls\?.*disposition=/);
  await settled(page);
  assert.deepEqual(errors, []);
  await context.close();
});

test("live: numbers move as events arrive, without a reload", async () => {
  const { page, errors, context } = await signIn("admin@demo.test");
  await settled(page);
  await page.getByTestId("live-status").getByText("Live").waitFor();
  const before = await page.locator('[data-metric="total_calls"]').textContent();
  await page.evaluate(() => (window.__sameDocument = true));
  // The demo ends a call every second or two.
  await page.waitForFunction((b) => document.querySelector('[data-metric="total_calls"]')?.textContent !== b, before, { timeout: 30_000 });
  assert.equal(await page.evaluate(() => window.__sameDocument), true, "no reload");
  // The team's leaderboard re-reads itself as its team's events arrive.
  await page.getByTestId("nav-team").click();
  await settled(page);
  const refreshes = await page.evaluate(() => Number(document.body.dataset.liveRefreshes ?? 0));
  await page.waitForFunction((n) => Number(document.body.dataset.liveRefreshes ?? 0) > n, refreshes, { timeout: 30_000 });
  await settled(page);
  // The feed grows live too.
  await page.getByTestId("nav-activity").click();
  await settled(page);
  await page.locator("[data-testid=feed] li.fresh").first().waitFor({ timeout: 30_000 });
  // Newest first: by when things happened, the live items among the first ones.
  const times = await page.locator("[data-testid=feed] li time").evaluateAll((ts) => ts.map((t) => t.getAttribute("datetime") ?? t.textContent));
  const order = times.map((t) => Date.parse(t));
  assert.ok(order.length > 1 && order.every((t, i) => Number.isFinite(t) && (i === 0 || order[i - 1] >= t)), `the feed is not newest first: ${times.join(", ")}`);
  assert.deepEqual(errors, []);
  await context.close();
});

test("the Calls page says when it is live, and new calls appear as they end", async () => {
  const { page, errors, context } = await signIn("admin@demo.test");
  await page.goto(`${base}/calls?preset=today`);
  await settled(page);
  await page.getByTestId("calls-live").getByText("Live").waitFor();
  await page.locator("[data-testid=calls-table] td.fresh").first().waitFor({ timeout: 30_000 });
  const started = await page.locator("[data-testid=calls-table] tbody tr td:first-child").allTextContents();
  assert.deepEqual(started, [...started].sort().reverse(), "newest first");
  // A range that has ended is not live, and says so.
  await page.goto(`${base}/calls?preset=yesterday`);
  await settled(page);
  assert.match(await page.getByTestId("calls-live").textContent(), /not live/i);
  assert.deepEqual(errors, []);
  await context.close();
});

test("an older answer never overwrites a newer one when live refreshes overlap", async () => {
  const { page, errors, context } = await signIn("admin@demo.test");
  await settled(page);
  const STALE = 987654;
  // The first live refresh's numbers come back slowly (after newer refreshes) and marked.
  let requests = 0;
  let stale = null;
  await page.route("**/api/v1/analytics/metrics?**", async (route) => {
    requests += 1;
    if (requests !== 1) return route.continue().catch(() => undefined);
    stale = (async () => {
      try {
        const res = await route.fetch();
        const body = await res.json();
        for (const k of body.kpis) if (k.metric === "total_calls") k.value = STALE;
        await new Promise((r) => setTimeout(r, 5_000));
        await route.fulfill({ response: res, json: body });
      } catch {
        // The page gave up on it: what this test wants.
      }
    })();
    return stale;
  });
  // Everything the calls card ever shows is recorded.
  await page.evaluate(() => {
    window.__shown = new Set();
    const kpis = document.querySelector("[data-testid=kpis]");
    new MutationObserver(() => {
      const v = kpis.querySelector('[data-metric="total_calls"]')?.textContent;
      if (v) window.__shown.add(v);
    }).observe(kpis, { childList: true, subtree: true, characterData: true });
  });
  await page.waitForFunction(() => document.body.dataset.liveRefreshes !== undefined, null, { timeout: 30_000 });
  const first = await page.evaluate(() => Number(document.body.dataset.liveRefreshes));
  // A newer refresh starts while the first is still waiting for its answer.
  await page.waitForFunction((n) => Number(document.body.dataset.liveRefreshes) > n, first, { timeout: 30_000 });
  await stale;
  await page.waitForTimeout(300);
  const shown = await page.evaluate(() => [...window.__shown]);
  assert.ok(!shown.includes(STALE.toLocaleString("en-US")), `the stale answer was shown: ${shown.join(", ")}`);
  await settled(page);
  assert.deepEqual(errors, []);
  await context.close();
});

test("a tablet-sized screen keeps every page readable", async () => {
  const { page, errors, context } = await signIn("manager@demo.test", { width: 820, height: 1180 });
  for (const name of ["overview", "team", "pipeline"]) {
    await page.getByTestId(`nav-${name}`).click();
    await settled(page);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${name} scrolls sideways by ${overflow}px`);
    await page.screenshot({ path: join(artifacts, `tablet-${name}.png`), fullPage: true });
  }
  assert.deepEqual(errors, []);
  await context.close();
});

test("signing in with a wrong password says so; signing out returns to the login", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/login`);
  await page.fill("input[name=email]", "admin@demo.test");
  await page.fill("input[name=password]", "wrong");
  await page.click("button[type=submit]");
  await page.getByText("Wrong e-mail or password.").waitFor();
  await page.fill("input[name=password]", "demo");
  await page.click("button[type=submit]");
  await page.waitForSelector("nav.sidebar");
  await page.getByTestId("logout").click();
  await page.waitForURL(/\/login/);
  await context.close();
});

/** Clicks an export button and waits for its file; returns the file's name and bytes. */
async function downloaded(page, scope, format) {
  const failed = scope.locator(".export-error").first();
  const [file] = await Promise.all([
    page.waitForEvent("download", { timeout: 30_000 }).catch(async (e) => assert.fail(`no ${format} download: ${(await failed.textContent()) || e.message}`)),
    scope.getByTestId(`export-${format}`).first().click(),
  ]);
  const path = await file.path();
  const { readFileSync } = await import("node:fs");
  return { name: file.suggestedFilename(), bytes: readFileSync(path) };
}

/** Checks a download is the format it says: a CSV with `column`, an XLSX (a zip), a PDF. */
function assertFile({ name, bytes }, format, column) {
  assert.ok(name.endsWith(`.${format}`), name);
  if (format === "csv") assert.ok(bytes.toString("utf8").split("\n")[0].split(",").includes(column), bytes.toString("utf8").slice(0, 200));
  if (format === "xlsx") assert.equal(bytes.subarray(0, 2).toString(), "PK");
  if (format === "pdf") assert.equal(bytes.subarray(0, 5).toString(), "%PDF-");
}

test("reports: build, save, reopen, edit, restore, put on a dashboard, move, resize, reload, export", async () => {
  const { page, errors, context } = await signIn("admin@demo.test");
  const status = page.getByTestId("builder-status");
  const answerRows = page.getByTestId("builder-preview").locator("[data-testid=answer-table] tbody tr");
  // Build: measures and a dimension from the server's catalogue; the answer follows.
  await page.goto(`${base}/builder`);
  await page.getByTestId("builder-name").fill("Calls by team");
  await page.getByTestId("measure-connect_rate").check();
  await page.getByTestId("dimension-team").check();
  await page.getByTestId("builder-preset").selectOption("last_30_days");
  await page.getByTestId("builder-visualization").selectOption("bar");
  await page.getByTestId("builder-preview").locator("[data-testid=answer-chart] canvas").waitFor();
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=builder-preview] th").length === 3);
  assert.ok((await answerRows.count()) > 0, "a row per team");
  await page.getByTestId("builder-save").click();
  await page.waitForFunction(() => document.querySelector("[data-testid=builder-status]")?.textContent?.includes("version 1"));
  const id = new URL(page.url()).searchParams.get("id");
  assert.ok(id, "the saved report's id is in the URL");

  // Reopen it from the list, as a fresh visit would.
  await page.goto(`${base}/builder`);
  await page.getByTestId("builder-open").selectOption(id);
  await page.waitForURL((u) => u.searchParams.get("id") === id);
  await page.waitForFunction(() => document.querySelector("[data-testid=builder-name]")?.value === "Calls by team");
  assert.equal(await page.getByTestId("dimension-team").isChecked(), true);

  // Edit: version 2 asks by day instead.
  await page.getByTestId("builder-name").fill("Calls by team, daily");
  await page.getByTestId("builder-granularity").selectOption("day");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=builder-preview] th").length === 4);
  await page.getByTestId("builder-save").click();
  await status.filter({ hasText: "version 2" }).waitFor();
  await page.getByTestId("version-2").waitFor();

  // Restore version 1: its question comes back as version 3.
  await page.getByTestId("restore-1").click();
  await status.filter({ hasText: "version 3" }).waitFor();
  assert.equal(await page.getByTestId("builder-name").inputValue(), "Calls by team");
  assert.equal(await page.getByTestId("builder-granularity").inputValue(), "");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=builder-preview] th").length === 3);

  await page.screenshot({ path: join(artifacts, "builder.png"), fullPage: true });
  // Its files, from the builder.
  for (const format of ["csv", "xlsx", "pdf"]) assertFile(await downloaded(page, page.locator(".builder"), format), format, "team");

  // A dashboard of one's own with the report on it.
  await page.getByTestId("nav-dashboards").click();
  await page.getByTestId("dashboard-new-name").fill("My week");
  await page.getByTestId("dashboard-create").click();
  await page.waitForURL(/\/dashboards\?id=/);
  await page.getByTestId("widget-source").selectOption(`report:${id}`);
  await page.getByTestId("widget-add").click();
  const widget = page.getByTestId("widget-w1");
  await widget.locator("[data-testid=answer-chart] canvas").waitFor();
  await page.getByTestId("dashboard-status").filter({ hasText: "version 2" }).waitFor();

  // Move it right by dragging its header, then resize it from its corner.
  const grid = await page.getByTestId("dashboard-grid").boundingBox();
  const column = grid.width / 12;
  let box = await widget.boundingBox();
  await page.mouse.move(box.x + 40, box.y + 14);
  await page.mouse.down();
  await page.mouse.move(box.x + 40 + column * 2, box.y + 14, { steps: 12 });
  await page.mouse.move(box.x + 40 + column * 3, box.y + 16, { steps: 12 });
  await page.mouse.up();
  await page.waitForFunction(() => document.querySelector("[data-testid=widget-w1]")?.getAttribute("gs-x") === "3");
  await page.getByTestId("dashboard-status").filter({ hasText: "version 3" }).waitFor();
  box = await widget.boundingBox();
  await widget.hover();
  const corner = widget.locator(".ui-resizable-se");
  const handle = await corner.boundingBox();
  await page.mouse.move(handle.x + handle.width / 2, handle.y + handle.height / 2);
  await page.mouse.down();
  await page.mouse.move(handle.x + column, handle.y + 40, { steps: 10 });
  await page.mouse.move(handle.x + column * 2, handle.y + 80, { steps: 10 });
  await page.mouse.up();
  await page.waitForFunction(() => document.querySelector("[data-testid=widget-w1]")?.getAttribute("gs-w") === "8");
  await page.getByTestId("dashboard-status").filter({ hasText: "version 4" }).waitFor();
  const placed = await widget.evaluate((el) => ["gs-x", "gs-y", "gs-w", "gs-h"].map((a) => el.getAttribute(a)));

  // Reloaded, it is where it was left, and its files download from the widget.
  await page.reload();
  await widget.locator("[data-testid=answer-chart] canvas").waitFor();
  assert.deepEqual(await widget.evaluate((el) => ["gs-x", "gs-y", "gs-w", "gs-h"].map((a) => el.getAttribute(a))), placed);
  assertFile(await downloaded(page, widget, "csv"), "csv", "team");
  await page.screenshot({ path: join(artifacts, "dashboard.png"), fullPage: true });

  // Its versions: restoring version 3 (moved, not yet resized) brings that grid back as the
  // next version.
  await page.getByTestId("dashboard-version-4").waitFor();
  await page.getByTestId("dashboard-restore-3").click();
  await page.getByTestId("dashboard-version-5").waitFor();
  await page.waitForFunction(() => document.querySelector("[data-testid=widget-w1]")?.getAttribute("gs-w") === "6");
  assert.equal(await widget.getAttribute("gs-x"), "3");
  await widget.locator("[data-testid=answer-chart] canvas").waitFor();

  // Every page has export buttons, and Explore opens a chart's question in the builder.
  await page.goto(`${base}/?preset=last_7_days`);
  await settled(page);
  // The page's main view as its own export has it (call volume over time).
  for (const format of ["csv", "xlsx", "pdf"]) assertFile(await downloaded(page, page.getByTestId("page-exports"), format), format, "total_calls");
  await page.getByTestId("explore").first().click();
  await page.waitForURL(/\/builder\?q=/);
  await page.waitForFunction(() => document.querySelector("[data-testid=builder-preview] [data-testid=answer-chart] canvas"));
  assert.equal(await page.getByTestId("measure-total_calls").isChecked(), true);
  assert.equal(await page.getByTestId("builder-granularity").inputValue(), "day");
  // The raw calls of the Calls page, every matching row.
  await page.goto(`${base}/calls?preset=last_7_days`);
  await settled(page);
  assertFile(await downloaded(page, page.getByTestId("page-exports"), "csv"), "csv", "call_id");
  assert.deepEqual(errors, []);
  await context.close();
});
