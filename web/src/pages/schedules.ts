// Schedules (SPEC §7): e-mail a saved report or a built-in view on a recurrence (daily,
// weekdays, weekly on chosen days, monthly on a day or the last day, or cron) at a local time
// in a zone, to addresses or each member of a team, as PDF, XLSX, CSV or an HTML e-mail, with
// an optional webhook told of each delivery. The list shows each schedule's state; "Run now",
// pause and resume act on it; a schedule's runs (status, when, attempts, recipients, size,
// error) are its history.

import { del, get, post, put, type Schemas } from "../api";
import type { Page, PageContext } from "../app";
import { fill, fmt, h, panel, table } from "../dom";
import { loadCatalogue, type Report, type ViewInfo } from "../saved";

type Recipient = Schemas["Recipient"];
type Recurrence = Schemas["Recurrence"];
/** What the server stores and accepts (its PUT replaces the whole body). */
type ScheduleDef = Schemas["ScheduleDef"];
type Schedule = Schemas["Schedule"];
type Run = Schemas["RunAnswer"];

const DEF_FIELDS: (keyof ScheduleDef)[] = ["name", "description", "report_id", "view", "params", "recurrence", "recipients", "format", "paused", "webhook_id"];
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FORMATS: [string, string][] = [
  ["pdf", "PDF"],
  ["xlsx", "XLSX"],
  ["csv", "CSV"],
  ["html", "HTML e-mail"],
];

const label = (text: string, input: HTMLElement) => h("label", {}, text, " ", input);
const when = (t: string | null) => (t ? new Date(t).toLocaleString() : "—");
const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The body to PUT back: only the fields a schedule is made of (not its id, owner, …). */
function definition(s: Schedule): ScheduleDef {
  const out: Record<string, unknown> = {};
  for (const k of DEF_FIELDS) if (s[k] !== undefined) out[k] = s[k];
  return out as unknown as ScheduleDef;
}

function describeRecurrence(r: Recurrence): string {
  const at = `at ${r.time} ${r.timezone}`;
  switch (r.frequency) {
    case "weekly":
      return `weekly on ${(r.days ?? []).join(", ")} ${at}`;
    case "monthly":
      return `monthly on ${r.day_of_month === "last" ? "the last day" : `day ${r.day_of_month}`} ${at}`;
    case "cron":
      return `cron ${r.cron} (${r.timezone})`;
    default:
      return `${r.frequency} ${at}`;
  }
}

function describeRecipients(ctx: PageContext, recipients: Recipient[]): string {
  return recipients
    .map((r) => (typeof r === "string" ? r : `each member of ${ctx.app.teams.find((t) => t.id === r.team)?.name ?? r.team}`))
    .join(", ");
}

/**
 * The form that makes a schedule, or with `editing` changes one (the server replaces its whole
 * body and recomputes when it runs next); `onSaved` after either, `onCancel` leaves an edit.
 */
function scheduleForm(ctx: PageContext, onSaved: () => void, editing?: Schedule, onCancel?: () => void): HTMLElement {
  const message = h("div", { class: "muted", role: "status", "data-testid": "schedule-message" });
  const name = h("input", { "data-testid": "schedule-name", placeholder: "Monday scorecard", size: 30, value: editing?.name ?? "" });

  // What it sends: a saved report, or a built-in view with its parameters.
  const source = h(
    "select",
    { "data-testid": "schedule-source" },
    h("option", { value: "report" }, "A saved report"),
    h("option", { value: "view" }, "A built-in view"),
  );
  const report = h("select", { "data-testid": "schedule-report" });
  const view = h("select", { "data-testid": "schedule-view" });
  const paramRow = h("span", { class: "row" });
  const params: Record<string, HTMLInputElement> = {};
  let views: ViewInfo[] = [];
  const showParams = () => {
    const info = views.find((v) => v.name === view.value);
    const names = info ? [...(info.path_param ? [info.path_param] : []), ...info.params, ...(info.shared ? ["preset", "start", "end", "timezone"] : [])] : [];
    for (const k of Object.keys(params)) delete params[k];
    paramRow.replaceChildren(
      ...names.map((p) => {
        params[p] = h("input", { "data-testid": `schedule-param-${p}`, size: 12 });
        return label(fmt.label(p), params[p]);
      }),
    );
  };
  view.addEventListener("change", showParams);
  get<{ reports: Report[] }>("/reports")
    .then((r) => {
      report.append(...r.reports.map((x) => h("option", { value: x.id }, x.name)));
      if (r.reports.length === 0 || editing?.view) source.value = "view";
      if (editing?.report_id) report.value = editing.report_id;
      showSource();
    })
    .catch((e) => (message.textContent = errorText(e)));
  loadCatalogue()
    .then((cat) => {
      views = cat.views;
      view.append(...views.map((v) => h("option", { value: v.name }, fmt.label(v.name))));
      if (editing?.view) view.value = editing.view;
      showParams();
      for (const [k, v] of Object.entries(editing?.params ?? {})) if (params[k]) params[k].value = String(v);
    })
    .catch((e) => (message.textContent = errorText(e)));
  const reportPart = label("Report", report);
  const viewPart = h("span", {}, label("View", view), paramRow);
  const showSource = () => {
    reportPart.hidden = source.value !== "report";
    viewPart.hidden = source.value !== "view";
  };
  source.addEventListener("change", showSource);
  showSource();

  // When: a frequency, its days or day of month or cron, a local time in a zone.
  const frequency = h(
    "select",
    { "data-testid": "schedule-frequency" },
    ["daily", "weekdays", "weekly", "monthly", "cron"].map((f) => h("option", { value: f }, fmt.label(f))),
  );
  const days = DAYS.map((d) => h("input", { type: "checkbox", value: d, "data-testid": `schedule-day-${d}`, checked: d === "mon" }));
  const daysPart = h(
    "span",
    {},
    days.map((box) => h("label", {}, box, " ", box.value)),
  );
  const dayOfMonth = h("input", { "data-testid": "schedule-day-of-month", value: "1", size: 4, title: "1 to 28, or last" });
  const dayPart = label("Day of month", dayOfMonth);
  const cron = h("input", { "data-testid": "schedule-cron", placeholder: "0 8 * * 1-5", size: 14 });
  const cronPart = label("Cron", cron);
  const time = h("input", { type: "time", "data-testid": "schedule-time", value: "08:00" });
  const timePart = label("Time", time);
  const timezone = h("input", { "data-testid": "schedule-timezone", value: ctx.app.settings.timezone, size: 18 });
  // An edited schedule's recurrence fills the fields.
  const editedRecurrence = editing?.recurrence;
  if (editedRecurrence) {
    frequency.value = editedRecurrence.frequency;
    for (const box of days) box.checked = (editedRecurrence.days ?? []).includes(box.value);
    if (editedRecurrence.day_of_month !== undefined) dayOfMonth.value = String(editedRecurrence.day_of_month);
    if (editedRecurrence.cron) cron.value = editedRecurrence.cron;
    if (editedRecurrence.time) time.value = editedRecurrence.time;
    timezone.value = editedRecurrence.timezone;
  }
  const showFrequency = () => {
    daysPart.hidden = frequency.value !== "weekly";
    dayPart.hidden = frequency.value !== "monthly";
    cronPart.hidden = frequency.value !== "cron";
    timePart.hidden = frequency.value === "cron";
  };
  frequency.addEventListener("change", showFrequency);
  showFrequency();

  // To whom, and how.
  const addresses = h("input", { "data-testid": "schedule-addresses", placeholder: "lead@example.com, …", size: 40 });
  const team = h(
    "select",
    { "data-testid": "schedule-team" },
    h("option", { value: "" }, "—"),
    ctx.app.teams.map((t) => h("option", { value: t.id }, t.name)),
  );
  const format = h(
    "select",
    { "data-testid": "schedule-format" },
    FORMATS.map(([v, l]) => h("option", { value: v }, l)),
  );
  // An edited schedule's recipients: its addresses, its first team in the select, and any
  // further teams kept as they are (the form names one).
  const editedTeams = (editing?.recipients ?? []).filter((r): r is { team: string } => typeof r !== "string");
  if (editing) {
    addresses.value = editing.recipients.filter((r): r is string => typeof r === "string").join(", ");
    team.value = editedTeams[0]?.team ?? "";
    format.value = editing.format;
  }
  // A webhook that hears of each delivery; only admins manage (and list) webhooks.
  const webhook = h("select", { "data-testid": "schedule-webhook" }, h("option", { value: "" }, "—"));
  const webhookPart = label("Webhook", webhook);
  webhookPart.hidden = ctx.app.role !== "admin";
  if (ctx.app.role === "admin")
    get<{ webhooks: { id: string; url: string }[] }>("/webhooks")
      .then((r) => {
        webhook.append(...r.webhooks.map((w) => h("option", { value: w.id }, w.url)));
        if (editing?.webhook_id) webhook.value = editing.webhook_id;
      })
      .catch((e) => (message.textContent = errorText(e)));

  const recurrence = (): Recurrence => {
    const r: Recurrence = { frequency: frequency.value, timezone: timezone.value.trim() };
    if (frequency.value !== "cron") r.time = time.value;
    if (frequency.value === "weekly") r.days = days.filter((d) => d.checked).map((d) => d.value);
    if (frequency.value === "monthly") {
      const day = dayOfMonth.value.trim();
      r.day_of_month = day === "last" ? "last" : Number(day);
    }
    if (frequency.value === "cron") r.cron = cron.value.trim();
    return r;
  };

  const save = h(
    "button",
    {
      type: "button",
      "data-testid": "schedule-save",
      onclick: async () => {
        const recipients: Recipient[] = addresses.value
          .split(",")
          .map((a) => a.trim())
          .filter(Boolean);
        if (team.value) recipients.push({ team: team.value });
        recipients.push(...editedTeams.slice(1));
        const body: ScheduleDef = { name: name.value.trim(), recurrence: recurrence(), recipients, format: format.value };
        if (webhook.value) body.webhook_id = webhook.value;
        else if (editing?.webhook_id && ctx.app.role !== "admin") body.webhook_id = editing.webhook_id;
        if (editing?.description) body.description = editing.description;
        if (editing?.paused) body.paused = true;
        if (source.value === "report") body.report_id = report.value;
        else {
          body.view = view.value;
          body.params = Object.fromEntries(
            Object.entries(params)
              .map(([k, input]): [string, string] => [k, input.value.trim()])
              .filter(([, v]) => v),
          );
        }
        try {
          if (editing) await put(`/schedules/${editing.id}`, body);
          else await post("/schedules", body);
          message.textContent = `Schedule "${body.name}" saved.`;
          onSaved();
        } catch (e) {
          message.textContent = errorText(e);
        }
      },
    },
    editing ? "Save changes" : "Save schedule",
  );
  const cancel = onCancel ? h("button", { type: "button", "data-testid": "schedule-cancel", onclick: onCancel }, "Cancel") : null;
  return h(
    "div",
    { class: "import-form" },
    label("Name", name),
    label("Send", source),
    reportPart,
    viewPart,
    label("Frequency", frequency),
    daysPart,
    dayPart,
    cronPart,
    timePart,
    label("Timezone", timezone),
    label("To", addresses),
    label("and each member of team", team),
    label("Format", format),
    webhookPart,
    save,
    cancel,
    message,
  );
}

/** A schedule's runs, newest first; polled while one is pending or running. */
function history(ctx: PageContext, schedule: Schedule): HTMLElement {
  const body = h("div", { "data-testid": "schedule-history" });
  let timer: number | undefined;
  const load = () =>
    fill(body, async () => {
      const r = await get<{ runs: Run[] }>(`/schedules/${schedule.id}/runs`);
      window.clearTimeout(timer);
      if (r.runs.some((run) => run.status === "pending" || run.status === "running") && body.isConnected) timer = window.setTimeout(load, 1000);
      return table(
        r.runs,
        [
          { label: "Scheduled for", value: (run) => [when(run.scheduled_for), run.late ? h("span", { class: "down" }, " late") : null] },
          { label: "Status", value: (run) => h("span", { class: run.status === "succeeded" ? "up" : run.status === "failed" ? "down" : "muted" }, run.status) },
          { label: "Attempts", value: (run) => run.attempts, numeric: true },
          { label: "Started", value: (run) => when(run.started) },
          { label: "Finished", value: (run) => when(run.finished) },
          { label: "Recipients", value: (run) => run.recipients.join(", ") },
          { label: "Size", value: (run) => (run.size === null ? "—" : `${fmt.int(run.size)} B`), numeric: true },
          { label: "Error", value: (run) => [run.error ?? "", run.next_attempt ? ` (retry ${when(run.next_attempt)})` : ""] },
        ],
        undefined,
        "schedule-runs",
      );
    });
  ctx.onLeave(() => window.clearTimeout(timer));
  load();
  const refresh = h("button", { type: "button", "data-testid": "schedule-history-refresh", onclick: () => load() }, "Refresh");
  return panel(`Runs: ${schedule.name}`, body, refresh, "wide");
}

function renderSchedules(ctx: PageContext) {
  const list = h("div", {});
  const detail = h("div", {});
  const formSlot = h("div", {});
  // The form at the top: a new schedule, or the one being edited until it is saved or left.
  const showNewForm = () => formSlot.replaceChildren(panel("New schedule", scheduleForm(ctx, refresh), null, "wide"));
  const showEditForm = (s: Schedule) => {
    const saved = () => {
      showNewForm();
      refresh();
    };
    formSlot.replaceChildren(panel(`Edit schedule: ${s.name}`, scheduleForm(ctx, saved, s, showNewForm), null, "wide"));
    formSlot.scrollIntoView?.({ block: "start" });
  };
  const message = h("div", { class: "muted", role: "status", "data-testid": "schedules-message" });
  const act = (what: () => Promise<unknown>) => async (ev: Event) => {
    ev.stopPropagation();
    try {
      await what();
    } catch (e) {
      message.textContent = errorText(e);
    }
  };
  const refresh = () =>
    fill(list, async () => {
      const r = await get<{ schedules: Schedule[] }>("/schedules");
      const reports = await get<{ reports: Report[] }>("/reports").then(
        (x) => new Map(x.reports.map((rep) => [rep.id, rep.name])),
        () => new Map<string, string>(),
      );
      return table(
        r.schedules,
        [
          { label: "Name", value: (s) => s.name },
          { label: "Sends", value: (s) => (s.report_id ? `report ${reports.get(s.report_id) ?? s.report_id}` : `view ${fmt.label(s.view ?? "")}`) },
          { label: "When", value: (s) => describeRecurrence(s.recurrence) },
          { label: "To", value: (s) => describeRecipients(ctx, s.recipients) },
          { label: "Format", value: (s) => s.format.toUpperCase() },
          { label: "State", value: (s) => h("span", { class: s.paused ? "down" : "up" }, s.paused ? "paused" : "active") },
          { label: "Next run", value: (s) => h("span", { "data-testid": "schedule-next-run" }, s.next_run ? new Date(s.next_run).toLocaleString() : "—") },
          {
            label: "",
            value: (s) =>
              s.can_edit
                ? h(
                    "span",
                    {},
                    h(
                      "button",
                      {
                        type: "button",
                        "data-testid": "schedule-run",
                        onclick: act(async () => {
                          await post(`/schedules/${s.id}/run`, {});
                          message.textContent = `"${s.name}" started.`;
                          detail.replaceChildren(history(ctx, s));
                        }),
                      },
                      "Run now",
                    ),
                    h(
                      "button",
                      {
                        type: "button",
                        "data-testid": "schedule-edit",
                        onclick: (ev: Event) => {
                          ev.stopPropagation();
                          showEditForm(s);
                        },
                      },
                      "Edit",
                    ),
                    h(
                      "button",
                      {
                        type: "button",
                        "data-testid": "schedule-pause",
                        onclick: act(async () => {
                          await put(`/schedules/${s.id}`, { ...definition(s), paused: !s.paused });
                          refresh();
                        }),
                      },
                      s.paused ? "Resume" : "Pause",
                    ),
                    h(
                      "button",
                      {
                        type: "button",
                        onclick: act(async () => {
                          await del(`/schedules/${s.id}`);
                          detail.replaceChildren();
                          refresh();
                        }),
                      },
                      "Delete",
                    ),
                  )
                : "",
          },
        ],
        (s) => detail.replaceChildren(history(ctx, s)),
        "schedules",
      );
    });
  showNewForm();
  ctx.root.replaceChildren(
    formSlot,
    panel("Schedules", h("div", {}, list, message), h("span", { class: "muted" }, "click a schedule for its runs"), "wide"),
    detail,
  );
  refresh();
}

export const schedules: Page = {
  path: "/schedules",
  title: "Schedules",
  controls: [],
  defaultPreset: "today",
  render: renderSchedules,
};
