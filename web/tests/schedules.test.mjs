// The Schedules page in a real browser against this build's `dialboard serve`, delivering to a
// real SMTP server (aiosmtpd, crates/server/tests/smtp/sink.py, which writes each message it
// receives to a directory): a schedule made from the UI, paused and resumed, "Run now", the
// run succeeding in the schedule's history, and the e-mail with its CSV in the sink.
// The data is `dialboard demo`'s, generated into a database that `serve` then opens (the demo
// has no SMTP flags). The sink's Python comes from DIALBOARD_MAIL_PYTHON or the repository's
// .venv-mail (made from PyPI when missing), as the Rust tests find it (tests/api/smtp.rs).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { launchBrowser, root, startDemo, startDialboard, waitForLine } from "./support.mjs";

let sink;
let server;
let base;
let browser;
let dir;
let mailDir;

/** The Python that has aiosmtpd: DIALBOARD_MAIL_PYTHON, or .venv-mail (made when missing). */
function mailPython() {
  if (process.env.DIALBOARD_MAIL_PYTHON) return process.env.DIALBOARD_MAIL_PYTHON;
  const venv = join(root, ".venv-mail", "bin", "python");
  if (existsSync(venv) && spawnSync(venv, ["-c", "import aiosmtpd"]).status === 0) return venv;
  for (const [program, args] of [
    ["python3", ["-m", "venv", ".venv-mail"]],
    [venv, ["-m", "pip", "install", "-q", "aiosmtpd"]],
  ]) {
    const run = spawnSync(program, args, { cwd: root, stdio: "inherit" });
    assert.equal(run.status, 0, `${program} ${args.join(" ")} failed: python3-venv and PyPI are needed`);
  }
  return venv;
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });

before(async () => {
  const smtpPort = await freePort();
  // The demo's call center and logins, written once; then served with a mailer.
  let demo;
  let database;
  ({ server: demo, dir, database } = await startDemo(3, "dialboard-schedules-"));
  const demoExit = new Promise((resolve) => demo.on("exit", resolve));
  demo.kill("SIGTERM");
  await demoExit;

  mailDir = join(dir, "mail");
  mkdirSync(mailDir);
  sink = spawn(mailPython(), [join(root, "crates", "server", "tests", "smtp", "sink.py"), String(smtpPort), mailDir], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await waitForLine(sink, /^(ready)$/m, "the SMTP sink");

  ({ server, base } = await startDialboard(
    ["serve", "--database", database, "--listen", "127.0.0.1:0", "--smtp-url", `smtp://127.0.0.1:${smtpPort}?tls=none`, "--smtp-from", "Dialboard <board@demo.test>"],
  ));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  sink?.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The messages the sink has written (each NNNN.json appears once the message is complete). */
const received = () =>
  readdirSync(mailDir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(mailDir, f), "utf8")));

test("a schedule created in the UI runs now, its history shows the run, and the e-mail arrives", async () => {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}/login`);
  await page.fill("input[name=email]", "admin@demo.test");
  await page.fill("input[name=password]", "demo");
  await page.click("button[type=submit]");
  await page.waitForSelector("nav.sidebar");
  await page.getByTestId("nav-schedules").click();
  await page.waitForURL((u) => u.pathname === "/schedules");

  // The enterprise team's leaderboard of the last 7 days, every Friday at 07:30 in London, as CSV.
  await page.getByTestId("schedule-name").fill("UI leaderboard");
  await page.getByTestId("schedule-source").selectOption("view");
  await page.getByTestId("schedule-view").selectOption("team-leaderboard");
  await page.getByTestId("schedule-param-team_id").fill("enterprise");
  await page.getByTestId("schedule-param-preset").fill("last_7_days");
  await page.getByTestId("schedule-frequency").selectOption("weekly");
  await page.getByTestId("schedule-day-mon").uncheck();
  await page.getByTestId("schedule-day-fri").check();
  await page.getByTestId("schedule-time").fill("07:30");
  await page.getByTestId("schedule-timezone").fill("Europe/London");
  await page.getByTestId("schedule-addresses").fill("lead@example.com");
  await page.getByTestId("schedule-format").selectOption("csv");
  await page.getByTestId("schedule-save").click();
  await page.getByTestId("schedule-message").getByText("saved").waitFor();
  const row = page.getByTestId("schedules").locator("tr", { hasText: "UI leaderboard" });
  await row.waitFor();
  const listed = await row.textContent();
  assert.match(listed, /weekly on fri at 07:30 Europe\/London/);
  assert.match(listed, /lead@example\.com/);
  assert.match(listed, /active/);
  // The next run is the server's: a Friday, 07:30 in London.
  const { schedules } = await page.evaluate(async () => (await fetch("/api/v1/schedules")).json());
  const nextRun = schedules.find((s) => s.name === "UI leaderboard").next_run;
  const london = new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/London", weekday: "short", hour: "2-digit", minute: "2-digit" });
  assert.equal(london.format(new Date(nextRun)), "Fri 07:30", nextRun);
  const shown = await row.getByTestId("schedule-next-run").textContent();
  assert.equal(shown, await page.evaluate((iso) => new Date(iso).toLocaleString(), nextRun));

  // A bad time zone is refused, and the form says which field.
  await page.getByTestId("schedule-name").fill("Bad zone");
  await page.getByTestId("schedule-timezone").fill("Mars/Olympus");
  await page.getByTestId("schedule-save").click();
  await page.getByTestId("schedule-message").getByText(/recurrence\.timezone/).waitFor();

  // Paused, then resumed.
  await row.getByTestId("schedule-pause").click();
  await row.getByText("paused").waitFor();
  await row.getByTestId("schedule-pause").click();
  await row.getByText("active").waitFor();

  // Run now: the history follows the run until it succeeded.
  await row.getByTestId("schedule-run").click();
  await page.getByTestId("schedule-history").waitFor();
  const run = page.getByTestId("schedule-runs").locator("tbody tr").first();
  await run.getByText("succeeded").waitFor({ timeout: 30_000 });
  const cells = await run.locator("td").allTextContents();
  const headers = await page.getByTestId("schedule-runs").locator("thead th").allTextContents();
  const cell = (name) => cells[headers.indexOf(name)];
  assert.equal(cell("Attempts"), "1", `${cells}`);
  assert.equal(cell("Recipients"), "lead@example.com");
  assert.match(cell("Size"), /^[\d,]+ B$/);
  assert.equal(cell("Error"), "");
  mkdirSync(join(root, "web", "test-artifacts"), { recursive: true });
  await page.screenshot({ path: join(root, "web", "test-artifacts", "admin-schedules-run.png"), fullPage: true });

  // The e-mail reached the SMTP server, with the leaderboard attached as CSV: a row per rep
  // the view itself answers (the server's own notices, e.g. retention's, go to the admins).
  const mails = received().filter((m) => m.rcpt_tos.includes("lead@example.com"));
  assert.equal(mails.length, 1, JSON.stringify(mails));
  const mail = mails[0];
  assert.deepEqual(mail.rcpt_tos, ["lead@example.com"]);
  assert.equal(mail.subject, "UI leaderboard");
  assert.match(mail.from, /board@demo\.test/);
  const csv = mail.parts.find((p) => p.disposition === "attachment" && p.content_type === "text/csv");
  assert.ok(csv, `a CSV attachment: ${JSON.stringify(mail.parts)}`);
  const lines = readFileSync(csv.path, "utf8").trim().split(/\r?\n/);
  const view = await page.evaluate(async () => (await fetch("/api/v1/analytics/team-leaderboard/enterprise?preset=last_7_days")).json());
  assert.ok(view.entries.length > 0, "the enterprise team has reps this week");
  assert.equal(lines.length, view.entries.length + 1, `a header and a row per rep: ${lines.join("\n")}`);
  for (const rep of view.entries) assert.ok(lines.some((l) => l.includes(rep.agent_name)), `${rep.agent_name} is in the CSV`);

  // Edited in the same form, filled with the schedule: Tuesdays at 09:15, a second address.
  // A bad zone is refused by field first; the saved edit moves the next run.
  await row.getByTestId("schedule-edit").click();
  assert.equal(await page.getByTestId("schedule-name").inputValue(), "UI leaderboard");
  assert.equal(await page.getByTestId("schedule-frequency").inputValue(), "weekly");
  assert.ok(await page.getByTestId("schedule-day-fri").isChecked(), "the saved day is ticked");
  assert.equal(await page.getByTestId("schedule-time").inputValue(), "07:30");
  assert.equal(await page.getByTestId("schedule-addresses").inputValue(), "lead@example.com");
  await page.getByTestId("schedule-param-team_id").waitFor();
  assert.equal(await page.getByTestId("schedule-param-team_id").inputValue(), "enterprise");
  await page.getByTestId("schedule-day-fri").uncheck();
  await page.getByTestId("schedule-day-tue").check();
  await page.getByTestId("schedule-time").fill("09:15");
  await page.getByTestId("schedule-addresses").fill("lead@example.com, coach@example.com");
  await page.getByTestId("schedule-timezone").fill("Mars/Olympus");
  await page.getByTestId("schedule-save").click();
  await page.getByTestId("schedule-message").getByText(/recurrence\.timezone/).waitFor();
  await page.getByTestId("schedule-timezone").fill("Europe/London");
  await page.getByTestId("schedule-save").click();
  await row.getByText(/weekly on tue at 09:15 Europe\/London/).waitFor();
  assert.match(await row.textContent(), /lead@example\.com, coach@example\.com/);
  const edited = (await page.evaluate(async () => (await fetch("/api/v1/schedules")).json())).schedules.filter((s) => s.name === "UI leaderboard");
  assert.equal(edited.length, 1, "edited in place, not made again");
  assert.equal(edited[0].version, 4, "created, paused, resumed, edited");
  assert.equal(london.format(new Date(edited[0].next_run)), "Tue 09:15", edited[0].next_run);
  assert.equal(await row.getByTestId("schedule-next-run").textContent(), await page.evaluate((iso) => new Date(iso).toLocaleString(), edited[0].next_run));
  await page.getByTestId("schedule-name").and(page.locator("[placeholder='Monday scorecard']")).waitFor();
  assert.equal(await page.getByTestId("schedule-name").inputValue(), "", "the form is back to a new schedule");
  assert.deepEqual(errors, []);
  await context.close();
});
