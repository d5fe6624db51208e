// The Imports page in a real Chromium: an admin uploads a small Asterisk CDR file (21 columns,
// a queue call of two rows, a quoted comma, a broken line), sees the job's progress reach 100%
// and its summary, and finds the imported calls' numbers on the dashboard and the Calls page.
//
// DIALBOARD_BIN: the binary; CHROMIUM: the browser (see browser.test.mjs).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { launchBrowser, startDemo } from "./support.mjs";

let server;
let base;
let browser;
let dir;

before(async () => {
  ({ server, base, dir } = await startDemo(2, "dialboard-imports-"));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const quoted = (s) => `"${s.replaceAll('"', '""')}"`;

/** One `cdr_csv` row with newcdrcolumns (21 columns), as Asterisk writes it. */
function cdr({ src, dst, clid, channel, dstchannel, start, answer, end, billsec, disposition, id, sequence = 1 }) {
  const seconds = (t) => Date.parse(`${t.replace(" ", "T")}Z`) / 1000;
  const head = ["", src, dst, "from-internal", clid, channel, dstchannel, "Dial", "SIP/trunk/5550001,60,tT", start, answer, end].map(quoted);
  const duration = seconds(end) - seconds(start);
  return [...head, duration, billsec, quoted(disposition), quoted("DOCUMENTATION"), quoted(id), quoted(""), quoted(""), quoted(id), sequence].join(",");
}

/** Three calls on 2025-01-15 (UTC): answered, busy, and a queue call of two rows; a broken line. */
const FILE = [
  cdr({ src: "100", dst: "5550001", clid: '"Agent One" <100>', channel: "SIP/agent01-00000001", dstchannel: "SIP/trunk-00000002",
    start: "2025-01-15 09:00:00", answer: "2025-01-15 09:00:10", end: "2025-01-15 09:02:10", billsec: 120, disposition: "ANSWERED", id: "1736931600.1" }),
  cdr({ src: "101", dst: "5550002", clid: '"Agent Two" <101>', channel: "PJSIP/agent02-00000003", dstchannel: "PJSIP/trunk-00000004",
    start: "2025-01-15 09:05:00", answer: "", end: "2025-01-15 09:05:08", billsec: 0, disposition: "BUSY", id: "1736931900.3" }),
  '"","102","5550009","from-internal","""Agent',
  cdr({ src: "5550003", dst: "600", clid: '"Smith, John" <5550003>', channel: "SIP/trunk-00000005", dstchannel: "Local/600@queues-00000006",
    start: "2025-01-15 10:00:00", answer: "2025-01-15 10:00:02", end: "2025-01-15 10:03:05", billsec: 183, disposition: "ANSWERED", id: "1736935200.5" }),
  cdr({ src: "5550003", dst: "100", clid: '"Smith, John" <5550003>', channel: "Local/600@queues-00000006", dstchannel: "SIP/agent01-00000007",
    start: "2025-01-15 10:00:02", answer: "2025-01-15 10:00:05", end: "2025-01-15 10:03:05", billsec: 180, disposition: "ANSWERED", id: "1736935200.5", sequence: 2 }),
].join("\n") + "\n";

test("the Imports page: upload an Asterisk file, watch it finish, find its calls on the dashboard", async () => {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(`${page.url()}: ${m.text()}`));
  page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
  await page.goto(`${base}/login`);
  await page.fill("input[name=email]", "admin@demo.test");
  await page.fill("input[name=password]", "demo");
  await page.click("button[type=submit]");
  await page.waitForSelector("nav.sidebar");

  await page.getByTestId("nav-imports").click();
  await page.waitForURL((u) => u.pathname === "/imports");
  await page.getByTestId("import-format").selectOption("asterisk-cdr");
  await page.getByPlaceholder("IANA zone of the file's times").fill("UTC");
  await page.getByTestId("import-file").setInputFiles({ name: "Master.csv", mimeType: "text/csv", buffer: Buffer.from(FILE) });
  await page.getByTestId("import-start").click();
  await page.getByRole("status").getByText("Master.csv is being imported.").waitFor();

  // The job's row: progress to 100% and the summary (the broken line rejected, with its rows).
  const row = page.getByTestId("imports").locator("tbody tr", { hasText: "Master.csv" });
  await row.getByText("3 accepted, 0 duplicates, 1 rejected").waitFor({ timeout: 30_000 });
  assert.equal(await row.getByTestId("import-progress").evaluate((p) => p.value), 1);
  assert.match(await row.textContent(), /100%/);
  assert.equal(await row.getByRole("link", { name: "rejected rows" }).count(), 1);

  // The dashboard counts the three calls on their day; the Calls page lists them.
  await page.goto(`${base}/?start=2025-01-15&end=2025-01-16&timezone=UTC`);
  await page.waitForFunction(() => document.querySelector('[data-metric="total_calls"]') && !document.querySelector(".state.loading"), null, { timeout: 20_000 });
  assert.equal((await page.locator('[data-metric="total_calls"]').textContent()).trim(), "3");
  await page.goto(`${base}/calls?start=2025-01-15&end=2025-01-16&timezone=UTC`);
  const rows = page.getByTestId("calls-table").locator("tbody tr");
  await rows.first().waitFor({ timeout: 20_000 });
  assert.equal(await rows.count(), 3);
  assert.deepEqual(errors, []);
  await context.close();
});
