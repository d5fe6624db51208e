// The Alerts page in a real browser against this build's `dialboard demo`: an alert made from
// the UI (a coaching template offered, then the fields set by hand), events that cross it,
// and the firing in the alert's history; then a webhook endpoint registered from the UI.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { launchBrowser, startDemo } from "./support.mjs";

let server;
let base;
let browser;
let dir;

before(async () => {
  ({ server, base, dir } = await startDemo(3, "dialboard-alerts-"));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("an alert created in the UI fires when events cross it, and its history shows the firing", async () => {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}/login`);
  await page.fill("input[name=email]", "admin@demo.test");
  await page.fill("input[name=password]", "demo");
  await page.click("button[type=submit]");
  await page.waitForSelector("nav.sidebar");
  await page.getByTestId("nav-alerts").click();
  await page.waitForURL((u) => u.pathname === "/alerts");

  // The coaching rules are offered as templates; choosing one fills the form.
  const template = page.getByTestId("alert-template");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=alert-template] option").length === 9);
  await template.selectOption("low_connect_rate");
  assert.equal(await page.getByTestId("alert-name").inputValue(), "Low connect rate");
  assert.equal(await page.getByTestId("alert-scope").inputValue(), "each_agent_of_team");

  // Then an alert of one's own, about a rep nobody else calls for.
  await page.getByTestId("alert-name").fill("UI rep connects");
  await page.getByTestId("alert-measure").fill("connect_rate");
  await page.getByTestId("alert-scope").selectOption("agent");
  await page.getByTestId("alert-scope-id").fill("ui-rep");
  await page.getByTestId("alert-window").fill("120");
  await page.getByTestId("alert-condition").selectOption("below");
  await page.getByTestId("alert-threshold").fill("50");
  await page.getByTestId("alert-recovery").fill("60");
  await page.getByTestId("alert-min-volume").fill("3");
  await page.getByTestId("alert-save").click();
  await page.getByTestId("alert-message").getByText("saved").waitFor();
  const row = page.getByTestId("alerts").locator("tr", { hasText: "UI rep connects" });
  await row.waitFor();

  // Four unanswered calls of that rep, ten minutes ago: 0% connected over four calls.
  const status = await page.evaluate(async () => {
    const at = new Date(Date.now() - 10 * 60_000).toISOString();
    const events = [0, 1, 2, 3].map((i) => ({
      id: `ui-alert-${i}`,
      type: "call",
      call_id: `ui-alert-${i}`,
      agent_id: "ui-rep",
      disposition: "No Answer",
      started_at: at,
    }));
    const r = await fetch("/api/v1/events", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(events) });
    return r.status;
  });
  assert.equal(status, 200);

  // The firing appears in the alert's history (evaluated as the events arrive).
  const deadline = Date.now() + 20_000;
  let fired = 0;
  while (Date.now() < deadline && fired === 0) {
    await row.click();
    await page.getByTestId("alert-history").waitFor();
    await page.waitForTimeout(500);
    fired = await page.getByTestId("alert-events").locator("tr", { hasText: "fired" }).count();
  }
  assert.equal(fired, 1, "one firing in the history");
  const cells = await page.getByTestId("alert-events").locator("tbody tr").first().locator("td").allTextContents();
  assert.ok(cells.includes("ui-rep"), `the firing names the rep: ${cells}`);
  await page.reload();
  await row.waitFor();
  assert.match(await row.textContent(), /firing/);

  // A webhook endpoint from the UI: its secret is shown once; it is listed, enabled.
  await page.getByTestId("nav-webhooks").click();
  await page.waitForURL((u) => u.pathname === "/webhooks");
  await page.getByTestId("webhook-url").fill("https://hooks.example.com/dialboard");
  await page.getByTestId("webhook-save").click();
  assert.match(await page.getByTestId("webhook-secret").textContent(), /^whsec_/);
  await page.getByTestId("webhooks").locator("tr", { hasText: "hooks.example.com" }).getByText("enabled").waitFor();
  // An address inside the network is refused, and the form says why.
  await page.getByTestId("webhook-url").fill("http://169.254.169.254/latest/meta-data");
  await page.getByTestId("webhook-save").click();
  await page.getByTestId("webhook-message").getByText(/link-local/).waitFor();
  assert.deepEqual(errors, []);
  await context.close();
});
