// What the browser tests share: this build's binary, Chromium launched with the flags the
// project runs it with, and `dialboard` processes whose URL is read from their output.

import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, "..", "..");
export const binary = process.env.DIALBOARD_BIN ?? join(root, "target", "debug", "dialboard");
export const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** Debian's Chromium (or $CHROMIUM) with the project's flags. */
export const launchBrowser = () => chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: FLAGS });

/** Resolves with the first stdout line of `child` matching `pattern` (its first group). */
export function waitForLine(child, pattern, what) {
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const m = out.match(pattern);
      if (m) resolve(m[1]);
    });
    child.on("exit", (code) => reject(new Error(`${what} exited (${code}): ${out}`)));
  });
}

/** Runs `dialboard args…`; resolves with the process and the URL it announces. */
export async function startDialboard(args) {
  const server = spawn(binary, args, { stdio: ["ignore", "pipe", "inherit"] });
  const base = await waitForLine(server, /^(http:\/\/\S+)$/m, `dialboard ${args[0]}`);
  return { server, base };
}

/** `dialboard demo` of `days` on a fresh database in a new temporary directory. */
export async function startDemo(days, prefix = "dialboard-web-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const database = `sqlite://${join(dir, "demo.db")}`;
  const started = await startDialboard(["demo", "--database", database, "--listen", "127.0.0.1:0", "--days", String(days)]);
  return { ...started, dir, database };
}
