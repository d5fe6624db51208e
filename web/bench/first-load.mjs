// First load of the overview, as a manager would open it: a fresh browser profile (cold cache),
// already signed in, from navigation to every KPI, chart and the donut drawn with data.
//
//   cargo build --release --bin dialboard && node web/bench/first-load.mjs [--runs 20] [--days 90]
//
// Runs the release `dialboard demo` on a fresh database (90 days of history by default) and
// Debian's Chromium (CHROMIUM to override), both on this machine.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values } = parseArgs({ options: { runs: { type: "string", default: "20" }, days: { type: "string", default: "90" } } });
const here = dirname(fileURLToPath(import.meta.url));
const binary = process.env.DIALBOARD_BIN ?? join(here, "..", "..", "target", "release", "dialboard");
const dir = mkdtempSync(join(tmpdir(), "dialboard-first-load-"));
const server = spawn(binary, ["demo", "--database", `sqlite://${join(dir, "demo.db")}`, "--listen", "127.0.0.1:0", "--days", values.days], {
  stdio: ["ignore", "pipe", "ignore"],
});
const base = await new Promise((resolve, reject) => {
  let out = "";
  server.stdout.on("data", (c) => {
    out += c;
    const m = out.match(/^(http:\/\/\S+)$/m);
    if (m) resolve(m[1]);
  });
  server.on("exit", (code) => reject(new Error(`demo exited ${code}`)));
});
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const times = [];
for (let i = 0; i < Number(values.runs); i++) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  await context.request.post(`${base}/api/v1/auth/login`, { data: { email: "manager@demo.test", password: "demo" } });
  const page = await context.newPage();
  const start = Date.now();
  await page.goto(`${base}/`);
  await page.waitForFunction(
    () =>
      document.querySelectorAll("[data-metric]").length > 0 &&
      !document.querySelector(".state.loading") &&
      document.querySelectorAll(".chart canvas").length >= 3,
    null,
    { polling: "raf", timeout: 30_000 },
  );
  times.push(Date.now() - start);
  await context.close();
}
await browser.close();
server.kill("SIGTERM");
rmSync(dir, { recursive: true, force: true });
times.sort((a, b) => a - b);
const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
console.log(`overview first load, ${times.length} cold loads, ${values.days} days of demo data: p50 ${at(0.5)} ms, p95 ${at(0.95)} ms, max ${times.at(-1)} ms (target < 1000 ms)`);
