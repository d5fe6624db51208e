// A hostile page on another origin of the same site (another port of 127.0.0.1, so the
// browser sends the SameSite=Strict session cookie along) tries what a logged-in admin's
// browser would let it: create an admin through an `enctype=text/plain` form, and read live
// metrics over a WebSocket. Both must fail, in a real Chromium.
//
// DIALBOARD_BIN: the binary; CHROMIUM: the browser (see browser.test.mjs).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const binary = process.env.DIALBOARD_BIN ?? join(here, "..", "..", "target", "debug", "dialboard");
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let server;
let base;
let browser;
let dir;
let hostile;
let hostileBase;

function startDemo() {
  dir = mkdtempSync(join(tmpdir(), "dialboard-xorigin-"));
  server = spawn(binary, ["demo", "--database", `sqlite://${join(dir, "demo.db")}`, "--listen", "127.0.0.1:0", "--days", "2"], {
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

/** The attacker's pages, served from another port. */
function hostilePages(target) {
  const ws = target.replace(/^http/, "ws");
  // The field's name and value join as `name=value`: the body is a valid new user,
  // `{"email": "evil@demo.test", …, "role": "admin", "teams": ["="]}`.
  const name = JSON.stringify(`{"email": "evil@demo.test", "password": "long-enough-secret", "role": "admin", "teams": ["`);
  const form = `<!doctype html><form method="POST" enctype="text/plain" action="${target}/api/v1/users">
    <input name=${name} value='"]}'></form><script>document.forms[0].submit()</script>`;
  const socket = `<!doctype html><script>
    window.outcome = new Promise((resolve) => {
      const seen = { opened: false, messages: 0 };
      const s = new WebSocket("${ws}/api/v1/live");
      s.onopen = () => { seen.opened = true; s.send(JSON.stringify({ type: "subscribe", scope: "tenant" })); };
      s.onmessage = () => { seen.messages += 1; };
      s.onclose = () => resolve(seen);
      setTimeout(() => resolve(seen), 5000);
    });
  </script>`;
  return createServer((req, res) => {
    res.setHeader("content-type", "text/html");
    res.end(req.url === "/form" ? form : socket);
  });
}

before(async () => {
  base = await startDemo();
  hostile = hostilePages(base);
  await new Promise((resolve) => hostile.listen(0, "127.0.0.1", resolve));
  hostileBase = `http://127.0.0.1:${hostile.address().port}`;
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: FLAGS });
});

after(async () => {
  await browser?.close();
  hostile?.close();
  server?.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("a page of another origin can neither write nor read live metrics with the admin's cookie", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/login`);
  await page.fill("input[name=email]", "admin@demo.test");
  await page.fill("input[name=password]", "demo");
  await page.click("button[type=submit]");
  await page.waitForSelector("nav.sidebar");

  // The form post: the browser sends the cookie, the server refuses.
  const attacker = await context.newPage();
  const posted = attacker.waitForResponse((r) => r.url() === `${base}/api/v1/users`);
  await attacker.goto(`${hostileBase}/form`);
  const response = await posted;
  assert.equal(response.request().headers()["content-type"], "text/plain");
  assert.equal(response.status(), 403, await response.text());

  // The WebSocket: never opens, nothing is read.
  await attacker.goto(`${hostileBase}/socket`);
  const seen = await attacker.evaluate(() => window.outcome);
  assert.deepEqual(seen, { opened: false, messages: 0 });

  // The admin's own page sees that no user was made, and its own live socket opens.
  const users = await page.evaluate(async () => (await fetch("/api/v1/users")).json());
  assert.ok(users.users.length > 0, "the admin reads the users");
  assert.ok(!users.users.some((u) => u.email === "evil@demo.test"), "the hostile form created a user");
  const own = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const s = new WebSocket(`${location.origin.replace(/^http/, "ws")}/api/v1/live`);
        s.onopen = () => { s.close(); resolve(true); };
        s.onerror = () => resolve(false);
      }),
  );
  assert.equal(own, true, "the server's own page opens the live socket");
  await context.close();
});
