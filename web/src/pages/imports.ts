// Imports (SPEC §11): upload a CDR file or a dialer's CSV export; it becomes a job on the
// server, whose progress (bytes read) and summary this page shows until it is done.

import { get, upload, type Schemas } from "../api";
import type { Page, PageContext } from "../app";
import { fill, fmt, h, panel, table } from "../dom";

type ImportJob = Schemas["ImportJob"];

const FORMATS = [
  ["asterisk-cdr", "Asterisk CDR (Master.csv)"],
  ["freeswitch-cdr", "FreeSWITCH CDR (mod_cdr_csv)"],
  ["csv", "CSV export (map the columns)"],
  ["ndjson", "Events (NDJSON)"],
];

function progress(job: ImportJob): HTMLElement {
  const total = job.progress.total ?? 0;
  const share = total > 0 ? Math.min(1, job.progress.done / total) : 0;
  const bar = h("progress", { max: 1, value: job.status === "succeeded" ? 1 : share, "data-testid": "import-progress" });
  return h("span", {}, bar, ` ${Math.round((job.status === "succeeded" ? 1 : share) * 100)}%`);
}

function outcome(job: ImportJob): HTMLElement | string {
  if (job.error && job.status === "failed") return h("span", { class: "down" }, job.error);
  if (!job.summary) return job.status;
  const s = job.summary;
  return h(
    "span",
    {},
    `${fmt.int(s.accepted)} accepted, ${fmt.int(s.duplicates)} duplicates, ${fmt.int(s.rejected)} rejected `,
    job.rejects_url ? h("a", { href: job.rejects_url, download: "" }, "rejected rows") : null,
  );
}

function render(ctx: PageContext) {
  const { app } = ctx;
  const file = h("input", { type: "file", "data-testid": "import-file" });
  const format = h("select", { "data-testid": "import-format" }, FORMATS.map(([v, l]) => h("option", { value: v }, l)));
  const timezone = h("input", { value: app.settings.timezone, placeholder: "IANA zone of the file's times" });
  const columns = h("input", { placeholder: "started_at=Start,agent_id=Agent,disposition=Result,…", size: 60 });
  const dispositions = h("input", { placeholder: "ANSWERED=Connected,NO ANSWER=No Answer,…", size: 60 });
  const message = h("div", { class: "muted", role: "status" });
  const jobs = h("div", {});
  let timer: number | undefined;
  ctx.onLeave(() => window.clearTimeout(timer));

  const refresh = () =>
    fill(jobs, async () => {
      const r = await get<{ imports: ImportJob[] }>("/imports");
      window.clearTimeout(timer);
      if (r.imports.some((j) => j.status === "queued" || j.status === "running")) timer = window.setTimeout(refresh, 1000);
      return table(
        r.imports,
        [
          { label: "File", value: (j) => j.name ?? j.id },
          { label: "Format", value: (j) => j.format ?? "—" },
          { label: "Started", value: (j) => (j.created_at ? new Date(j.created_at).toLocaleString() : "—") },
          { label: "Progress", value: progress },
          { label: "Outcome", value: outcome },
        ],
        undefined,
        "imports",
      );
    });

  const start = h(
    "button",
    {
      type: "button",
      "data-testid": "import-start",
      onclick: async () => {
        const chosen = file.files?.[0];
        if (!chosen) {
          message.textContent = "Choose a file first.";
          return;
        }
        message.textContent = `Uploading ${chosen.name}…`;
        try {
          await upload("/imports", chosen, {
            format: format.value,
            timezone: timezone.value.trim(),
            columns: format.value === "csv" ? columns.value.trim() : undefined,
            map_disposition: dispositions.value.trim(),
            name: chosen.name,
          });
          message.textContent = `${chosen.name} is being imported.`;
        } catch (e) {
          message.textContent = e instanceof Error ? e.message : String(e);
        }
        refresh();
      },
    },
    "Import",
  );
  const label = (text: string, input: HTMLElement) => h("label", {}, text, " ", input);
  const form = h(
    "div",
    { class: "import-form" },
    label("File", file),
    label("Format", format),
    label("Timezone", timezone),
    label("Columns (CSV)", columns),
    label("Dispositions", dispositions),
    start,
    message,
  );
  ctx.root.replaceChildren(panel("Import call records", form, null, "wide"), panel("Imports", jobs, null, "wide"));
  refresh();
}

export const imports: Page = {
  path: "/imports",
  title: "Imports",
  controls: [],
  defaultPreset: "today",
  roles: ["admin"],
  render,
};
