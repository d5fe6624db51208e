import { get } from "../api";
import { choice, drillUrl, type Page, type PageContext } from "../app";
import { chart, heatmapOption, WEEKDAYS } from "../charts";
import { fill, fmt, h, isNum, panel } from "../dom";
import { sharedParams } from "../filters";
import { exploreLink, pageExport, queryOf, viewQuestion } from "../saved";
import type { Schemas } from "../api";

type Cell = Schemas["HeatmapCell"];

function render(ctx: PageContext) {
  const { filters: f } = ctx;
  const [metric, pick] = choice(
    ctx,
    "metric",
    [
      ["connect_rate", "Connect rate"],
      ["calls", "Calls"],
    ],
    "connect_rate",
  );
  const heat = h("div", { class: "chart tall", "data-testid": "chart-heatmap" });
  const best = h("div", {});
  ctx.root.replaceChildren(panel("Day of week × hour of day", heat, [pick, exploreLink({ name: "Best time to call", visualization: "heatmap", query: queryOf(f, { measures: [metric === "calls" ? "total_calls" : "connect_rate"], dimensions: ["day_of_week", "hour_of_day"] }) })], "wide"), panel("Best hours to call", best, h("span", { class: "muted" }, "highest connect rate, at least 20 calls"), "wide"));
  fill(best, async () => {
    const r = await get<{ cells: Cell[] }>("/analytics/call-time-heatmap", { ...sharedParams(f), metric });
    chart(heat, heatmapOption(r.cells, metric === "connect_rate"), (p) => {
      const [hour, day] = p.value as number[];
      ctx.navigate(drillUrl(f, { hour_of_day: String(hour), day_of_week: String(day + 1) }));
    });
    const top = r.cells
      .filter((c) => c.total_calls! >= 20 && isNum(c.connect_rate))
      .sort((a, b) => (b.connect_rate ?? 0) - (a.connect_rate ?? 0))
      .slice(0, 5);
    return h(
      "ol",
      { class: "best" },
      top.map((c) => h("li", {}, h("strong", {}, `${WEEKDAYS[c.day_of_week - 1]} ${String(c.hour_of_day).padStart(2, "0")}:00`), ` — ${fmt.pct(c.connect_rate)} of ${fmt.int(c.total_calls)} calls`)),
    );
  });
}

export const bestTime: Page = {
  path: "/best-time",
  title: "Best time to call",
  controls: ["range", "timezone", "team", "agent", "campaign", "disposition", "lead_source"],
  defaultPreset: "last_30_days",
  render,
  exportable: (ctx) => pageExport(viewQuestion("call-time-heatmap", { ...sharedParams(ctx.filters), metric: ctx.params.get("metric") ?? "connect_rate" }, "heatmap", "Best time to call")),
};
