// A badge appearing live on a rep's page, in a real browser against this build's `dialboard
// demo`: the page is open, a meeting is posted for the rep, and the live feed's `badge`
// message shows "New badge" with the badge listed; a correction that takes the meeting away
// announces the revocation.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { launchBrowser, startDemo } from "./support.mjs";

let server;
let base;
let browser;
let dir;

before(async () => {
  ({ server, base, dir } = await startDemo(3, "dialboard-badges-"));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Posts `events` with the page's session; returns the status. */
const post = (page, path, method, body) =>
  page.evaluate(
    async ([path, method, body]) => (await fetch(path, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).status,
    [path, method, body],
  );

const call = (disposition, version) => ({
  id: `ui-badge-call-v${version}`,
  type: "call",
  call_id: "ui-badge-call",
  agent_id: "ui-badge-rep",
  disposition,
  started_at: new Date(Date.now() - 10 * 60_000).toISOString(),
  updated_at: new Date(Date.now() - 10 * 60_000 + version * 1000).toISOString(),
});

test("a badge appears live on the rep's open page, and a correction revokes it", async () => {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}/login`);
  await page.fill("input[name=email]", "admin@demo.test");
  await page.fill("input[name=password]", "demo");
  await page.click("button[type=submit]");
  await page.waitForSelector("nav.sidebar");
  assert.equal(await post(page, "/api/v1/agents/ui-badge-rep", "PUT", { name: "Badge Rep" }), 200);

  await page.goto(`${base}/agent?agent=ui-badge-rep`);
  const badges = page.getByTestId("badges");
  await badges.getByText("No badge yet.").waitFor();
  const news = page.getByTestId("badge-announcements");
  assert.equal(await news.locator("li").count(), 0);

  // The rep's first meeting: announced on the open page, and listed with its badges.
  assert.equal(await post(page, "/api/v1/events", "POST", [call("Meeting Booked", 1)]), 200);
  const awarded = news.locator("li[data-badge=first_meeting][data-change=awarded]");
  await awarded.waitFor({ timeout: 20_000 });
  assert.match(await awarded.textContent(), /New badge: First meeting/);
  await badges.locator("li.badge[data-badge=first_meeting]").waitFor();

  // A correction takes the meeting away: the revocation is announced and the badge goes.
  assert.equal(await post(page, "/api/v1/events", "POST", [call("No Answer", 2)]), 200);
  const revoked = news.locator("li[data-badge=first_meeting][data-change=revoked]");
  await revoked.waitFor({ timeout: 20_000 });
  assert.match(await revoked.textContent(), /Badge revoked: First meeting/);
  await badges.getByText("No badge yet.").waitFor();
  // Each change was announced once.
  assert.equal(await news.locator("li").count(), 2);
  assert.deepEqual(errors, []);
  await context.close();
});
