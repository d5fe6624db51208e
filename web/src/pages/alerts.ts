// Alerts (SPEC §7): create one from a coaching template or from scratch, list them with their
// state, and read an alert's firings and recoveries. Webhooks (admins): register an endpoint
// (its secret shown once), read its deliveries, re-enable one that failures disabled.

import { del, get, post, put, type Schemas } from "../api";
import type { Page, PageContext } from "../app";
import { fill, fmt, h, panel, table } from "../dom";

type AlertDef = Schemas["AlertDefinition"];
type Alert = Schemas["AlertAnswer"];
type AlertEvent = Schemas["AlertEvent"];
type Template = Schemas["AlertTemplate"];
type Webhook = Schemas["WebhookAnswer"];
type Delivery = Schemas["DeliveryAnswer"];

const num = (v: number | null | undefined) => (v === null || v === undefined ? "—" : fmt.num(v));
const label = (text: string, input: HTMLElement) => h("label", {}, text, " ", input);

function alertForm(ctx: PageContext, onSaved: () => void): HTMLElement {
  const input = (attrs: Record<string, string>) => h("input", attrs);
  const name = input({ "data-testid": "alert-name", placeholder: "Low connect rate" });
  const measure = input({ "data-testid": "alert-measure", value: "connect_rate" });
  const scope = h(
    "select",
    { "data-testid": "alert-scope" },
    ["team", "each_agent_of_team", "agent", "campaign", "tenant"].map((s) => h("option", { value: s }, s.replace(/_/g, " "))),
  );
  const scopeId = input({ "data-testid": "alert-scope-id", placeholder: "team, agent or campaign id" });
  const window_ = input({ "data-testid": "alert-window", type: "number", value: "120" });
  const condition = h(
    "select",
    { "data-testid": "alert-condition" },
    ["below", "above", "rises_by", "falls_by"].map((c) => h("option", { value: c }, c.replace(/_/g, " "))),
  );
  const threshold = input({ "data-testid": "alert-threshold", type: "number", value: "20" });
  const recovery = input({ "data-testid": "alert-recovery", type: "number", placeholder: "same as threshold" });
  const compareTo = h(
    "select",
    {},
    h("option", { value: "" }, "—"),
    h("option", { value: "previous_window" }, "previous window"),
    h("option", { value: "week_before" }, "same window a week earlier"),
  );
  const minVolume = input({ "data-testid": "alert-min-volume", type: "number", value: "10" });
  const rearm = input({ type: "number", value: "60" });
  const emails = input({ placeholder: "lead@example.com, …", size: "40" });
  const message = h("div", { class: "muted", role: "status", "data-testid": "alert-message" });

  const templates = h("select", { "data-testid": "alert-template" }, h("option", { value: "" }, "From scratch"));
  let loaded: Template[] = [];
  get<{ templates: Template[] }>("/alerts/templates")
    .then((r) => {
      loaded = r.templates;
      templates.append(...r.templates.map((t) => h("option", { value: t.key }, t.name)));
    })
    .catch(() => undefined);
  templates.addEventListener("change", () => {
    const t = loaded.find((x) => x.key === templates.value);
    if (!t) return;
    const a = t.alert;
    name.value = a.name;
    measure.value = a.measure;
    scope.value = a.scope;
    scopeId.value = a.scope_id ?? (ctx.filters.team || "");
    window_.value = String(a.window_minutes);
    condition.value = a.condition;
    threshold.value = String(a.threshold);
    recovery.value = a.recovery_threshold === null || a.recovery_threshold === undefined ? "" : String(a.recovery_threshold);
    compareTo.value = a.compare_to ?? "";
    minVolume.value = String(a.min_volume ?? 0);
    rearm.value = String(a.rearm_minutes ?? 0);
    message.textContent = t.suggested_action;
  });

  const save = h(
    "button",
    {
      type: "button",
      "data-testid": "alert-save",
      onclick: async () => {
        const n = (el: HTMLInputElement) => (el.value.trim() === "" ? undefined : Number(el.value));
        const body: AlertDef = {
          name: name.value.trim(),
          measure: measure.value.trim(),
          scope: scope.value,
          scope_id: scope.value === "tenant" ? undefined : scopeId.value.trim(),
          window_minutes: Number(window_.value),
          condition: condition.value,
          threshold: Number(threshold.value),
          recovery_threshold: n(recovery),
          compare_to: compareTo.value || undefined,
          min_volume: n(minVolume) ?? 0,
          rearm_minutes: n(rearm) ?? 0,
          emails: emails.value
            .split(",")
            .map((e) => e.trim())
            .filter(Boolean),
        };
        try {
          await post("/alerts", body);
          message.textContent = `Alert "${body.name}" saved.`;
          onSaved();
        } catch (e) {
          message.textContent = e instanceof Error ? e.message : String(e);
        }
      },
    },
    "Save alert",
  );
  return h(
    "div",
    { class: "import-form" },
    label("Template", templates),
    label("Name", name),
    label("Measure", measure),
    label("Scope", scope),
    label("Id", scopeId),
    label("Window (minutes)", window_),
    label("Condition", condition),
    label("Threshold", threshold),
    label("Recovery threshold", recovery),
    label("Compare to", compareTo),
    label("Minimum volume", minVolume),
    label("Re-arm (minutes)", rearm),
    label("E-mail", emails),
    save,
    message,
  );
}

function history(alert: Alert): HTMLElement {
  const body = h("div", { "data-testid": "alert-history" });
  fill(body, async () => {
    const r = await get<{ events: AlertEvent[] }>(`/alerts/${alert.id}/events`);
    return table(
      r.events,
      [
        { label: "When", value: (e) => new Date(e.at).toLocaleString() },
        { label: "Change", value: (e) => h("span", { class: e.kind === "fired" ? "down" : "up" }, e.kind) },
        { label: "Agent", value: (e) => e.agent_id ?? "" },
        { label: "Team", value: (e) => e.team_id ?? "" },
        { label: "Value", value: (e) => num(e.value), numeric: true },
        { label: "Compared", value: (e) => num(e.compared), numeric: true },
        { label: "Threshold", value: (e) => num(e.threshold), numeric: true },
        { label: "Volume", value: (e) => num(e.volume), numeric: true },
      ],
      undefined,
      "alert-events",
    );
  });
  return panel(`Firing history: ${alert.name}`, body, null, "wide");
}

function renderAlerts(ctx: PageContext) {
  const list = h("div", {});
  const detail = h("div", {});
  const refresh = () =>
    fill(list, async () => {
      const r = await get<{ alerts: Alert[] }>("/alerts");
      return table(
        r.alerts,
        [
          { label: "Name", value: (a) => a.name },
          { label: "Measure", value: (a) => a.measure },
          { label: "Scope", value: (a) => `${a.scope.replace(/_/g, " ")} ${a.scope_id ?? ""}` },
          { label: "Condition", value: (a) => `${a.condition.replace(/_/g, " ")} ${a.threshold}` },
          { label: "State", value: (a) => h("span", { class: a.firing ? "down" : "muted" }, a.firing ? "firing" : "quiet") },
          {
            label: "",
            value: (a) =>
              a.can_edit
                ? h(
                    "button",
                    {
                      type: "button",
                      onclick: async (ev: Event) => {
                        ev.stopPropagation();
                        await del(`/alerts/${a.id}`);
                        refresh();
                      },
                    },
                    "Delete",
                  )
                : "",
          },
        ],
        (a) => detail.replaceChildren(history(a)),
        "alerts",
      );
    });
  ctx.root.replaceChildren(
    panel("New alert", alertForm(ctx, refresh), null, "wide"),
    panel("Alerts", list, h("span", { class: "muted" }, "click an alert for its firing history"), "wide"),
    detail,
  );
  refresh();
}

function renderWebhooks(ctx: PageContext) {
  const url = h("input", { "data-testid": "webhook-url", placeholder: "https://crm.example.com/hooks/dialboard", size: 50 });
  const description = h("input", { placeholder: "what it feeds" });
  const limit = h("input", { type: "number", value: "10" });
  const message = h("div", { class: "muted", role: "status", "data-testid": "webhook-message" });
  const list = h("div", {});
  const detail = h("div", {});
  const deliveries = (hook: Webhook) => {
    const body = h("div", {});
    fill(body, async () => {
      const r = await get<{ deliveries: Delivery[] }>(`/webhooks/${hook.id}/deliveries`);
      return table(
        r.deliveries,
        [
          { label: "When", value: (d) => (d.at ? new Date(d.at).toLocaleString() : "—") },
          { label: "Event", value: (d) => d.event },
          { label: "Attempt", value: (d) => d.attempt, numeric: true },
          { label: "Outcome", value: (d) => h("span", { class: d.outcome === "delivered" ? "up" : "down" }, d.outcome) },
          { label: "Status", value: (d) => d.status_code ?? "", numeric: true },
          { label: "Latency (ms)", value: (d) => d.latency_ms ?? "", numeric: true },
          { label: "Error", value: (d) => d.error ?? "" },
        ],
        undefined,
        "webhook-deliveries",
      );
    });
    detail.replaceChildren(panel(`Deliveries: ${hook.url}`, body, null, "wide"));
  };
  const refresh = () =>
    fill(list, async () => {
      const r = await get<{ webhooks: Webhook[] }>("/webhooks");
      return table(
        r.webhooks,
        [
          { label: "URL", value: (w) => w.url },
          { label: "Description", value: (w) => w.description ?? "" },
          { label: "State", value: (w) => h("span", { class: w.enabled ? "up" : "down" }, w.enabled ? "enabled" : "disabled") },
          { label: "Failures in a row", value: (w) => w.consecutive_failures, numeric: true },
          {
            label: "",
            value: (w) =>
              h(
                "span",
                {},
                h(
                  "button",
                  {
                    type: "button",
                    onclick: async (ev: Event) => {
                      ev.stopPropagation();
                      await post(`/webhooks/${w.id}/ping`, {});
                      message.textContent = "Test delivery queued.";
                    },
                  },
                  "Test",
                ),
                w.enabled
                  ? null
                  : h(
                      "button",
                      {
                        type: "button",
                        "data-testid": "webhook-enable",
                        onclick: async (ev: Event) => {
                          ev.stopPropagation();
                          await put(`/webhooks/${w.id}`, { url: w.url, description: w.description, failure_limit: w.failure_limit, enabled: true });
                          refresh();
                        },
                      },
                      "Re-enable",
                    ),
              ),
          },
        ],
        deliveries,
        "webhooks",
      );
    });
  const create = h(
    "button",
    {
      type: "button",
      "data-testid": "webhook-save",
      onclick: async () => {
        try {
          const body: Record<string, unknown> = { url: url.value.trim(), failure_limit: Number(limit.value) };
          if (description.value.trim()) body.description = description.value.trim();
          const hook = await post<Webhook>("/webhooks", body);
          message.replaceChildren("Signing secret (shown once): ", h("code", { "data-testid": "webhook-secret" }, hook.secret ?? ""));
          refresh();
        } catch (e) {
          message.textContent = e instanceof Error ? e.message : String(e);
        }
      },
    },
    "Add endpoint",
  );
  const form = h("div", { class: "import-form" }, label("URL", url), label("Description", description), label("Disable after failures", limit), create, message);
  ctx.root.replaceChildren(panel("New webhook endpoint", form, null, "wide"), panel("Webhooks", list, null, "wide"), detail);
  refresh();
}

export const alerts: Page = {
  path: "/alerts",
  title: "Alerts",
  controls: [],
  defaultPreset: "today",
  render: renderAlerts,
};

export const webhooks: Page = {
  path: "/webhooks",
  title: "Webhooks",
  controls: [],
  defaultPreset: "today",
  roles: ["admin"],
  render: renderWebhooks,
};
