import { get, latest } from "../api";
import { type Page, type PageContext } from "../app";
import { barOption, chart, donutOption } from "../charts";
import { fill, fmt, h, isNum, panel, table } from "../dom";
import { includesToday, sharedParams } from "../filters";
import { exploreLink, pageExport, viewQuestion } from "../saved";
import type { Schemas } from "../api";

type Channel = Schemas["ChannelEntry"];

function render(ctx: PageContext) {
  const { filters: f } = ctx;
  const params = sharedParams(f);
  const kpis = h("div", { class: "kpis" });
  const response = h("div", { class: "chart", "data-testid": "chart-response" });
  const csat = h("div", { class: "chart", "data-testid": "chart-csat" });
  const intents = h("div", { class: "chart", "data-testid": "chart-intents" });
  const channels = h("div", {});
  ctx.root.replaceChildren(
    kpis,
    h(
      "div",
      { class: "grid three" },
      panel("First response by channel (minutes)", response, exploreLink(viewQuestion("channels", params, "bar", "Channels"))),
      panel("CSAT by channel", csat, exploreLink(viewQuestion("channels", params, "bar", "Channels"))),
      panel("Intents (calls and conversations)", intents, exploreLink(viewQuestion("intents", params, "bar", "Intents"))),
    ),
    panel("Channels", channels, exploreLink(viewQuestion("channels", params, "table", "Channels")), "wide"),
  );
  const load = latest(() => {
    fill(channels, async () => {
      const r = await get<{ channels: Channel[]; totals: Channel }>("/analytics/channels", params);
      const text = r.channels.filter((c) => c.channel !== "voice");
      const t = r.totals;
      fill(kpis, async () =>
        [
          ["Tickets", fmt.int(t.ticket_volume)],
          ["Avg first response", fmt.duration(t.avg_first_response_time)],
          ["Avg resolution", fmt.duration(t.avg_resolution_time)],
          ["Resolution rate", fmt.pct(t.resolution_rate)],
          ["CSAT", isNum(t.csat_avg) ? `${t.csat_avg.toFixed(2)} / 5` : "—"],
          ["CSAT positive", fmt.pct(t.csat_positive_rate)],
        ].map(([l, v]) => h("div", { class: "kpi" }, h("div", { class: "kpi-label" }, l), h("div", { class: "kpi-value" }, v))),
      );
      const minutes = (v: number | null) => (isNum(v) ? +(v / 60).toFixed(1) : null);
      chart(
        response,
        barOption(
          text.map((c) => fmt.label(c.channel)),
          [
            { name: "Average", values: text.map((c) => minutes(c.avg_first_response_time)) },
            { name: "Median", values: text.map((c) => minutes(c.median_first_response_time)) },
          ],
        ),
      );
      chart(csat, barOption(text.map((c) => fmt.label(c.channel)), [{ name: "Positive %", values: text.map((c) => c.csat_positive_rate) }]));
      return table(
        r.channels,
        [
          { label: "Channel", value: (c) => fmt.label(c.channel) },
          { label: "Volume", value: (c) => fmt.int(c.channel === "voice" ? c.calls : c.ticket_volume), numeric: true },
          { label: "First response (avg)", value: (c) => fmt.duration(c.avg_first_response_time), numeric: true },
          { label: "First response (median)", value: (c) => fmt.duration(c.median_first_response_time), numeric: true },
          { label: "Resolution time", value: (c) => fmt.duration(c.avg_resolution_time), numeric: true },
          { label: "Resolved", value: (c) => fmt.pct(c.resolution_rate), numeric: true },
          { label: "CSAT", value: (c) => (isNum(c.csat_avg) ? c.csat_avg.toFixed(2) : "—"), numeric: true },
          { label: "Scores", value: (c) => fmt.int(c.csat_count), numeric: true },
        ],
        undefined,
        "channels",
      );
    });
    get<{ intents: { intent: string; total: number }[]; total: number }>("/analytics/intents", params)
      .then((r) => chart(intents, donutOption(r.intents.map((i) => ({ name: fmt.label(i.intent), value: i.total })), `${fmt.int(r.total)}`)))
      .catch((e) => fill(intents, () => Promise.reject(e)));
  });
  load();
  if (includesToday(f)) ctx.live(load);
}

export const tickets: Page = {
  path: "/tickets",
  title: "Tickets & channels",
  controls: ["range", "timezone", "team", "agent"],
  defaultPreset: "last_7_days",
  render,
  exportable: (ctx) => pageExport(viewQuestion("channels", sharedParams(ctx.filters), "table", "Channels")),
};
