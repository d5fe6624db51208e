// Charts are Apache ECharts, only the parts we use (tree-shaken). Each chart is disposed with
// the page that made it.

import * as echarts from "echarts/core";
import { BarChart, FunnelChart, HeatmapChart, LineChart, PieChart } from "echarts/charts";
import {
  GridComponent,
  LegendComponent,
  MarkLineComponent,
  TooltipComponent,
  VisualMapComponent,
} from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";
import type { EChartsCoreOption } from "echarts/core";

echarts.use([
  BarChart,
  FunnelChart,
  HeatmapChart,
  LineChart,
  PieChart,
  GridComponent,
  LegendComponent,
  MarkLineComponent,
  TooltipComponent,
  VisualMapComponent,
  CanvasRenderer,
]);

export const COLORS = ["#2563eb", "#16a34a", "#f59e0b", "#db2777", "#7c3aed", "#0891b2", "#dc2626", "#65a30d"];

const live = new Set<echarts.ECharts>();
const observer = new ResizeObserver((entries) => {
  for (const e of entries) echarts.getInstanceByDom(e.target as HTMLElement)?.resize();
});

export interface ChartClick {
  name: string;
  seriesName?: string;
  value: unknown;
  data: unknown;
  dataIndex: number;
}

/** A chart in `el`, or the one already there updated with `option` (a live refresh). */
export function chart(el: HTMLElement, option: EChartsCoreOption, onClick?: (p: ChartClick) => void): echarts.ECharts {
  let c = echarts.getInstanceByDom(el);
  if (!c) {
    // A live refresh replaces elements: their charts go with them.
    for (const old of live) if (!old.getDom().isConnected) dispose(old);
    c = echarts.init(el, undefined, { renderer: "canvas" });
    live.add(c);
    observer.observe(el);
  }
  c.setOption({ color: COLORS, animationDuration: 300, ...option }, { notMerge: true });
  c.off("click");
  if (onClick) c.on("click", (p) => onClick(p as unknown as ChartClick));
  return c;
}

function dispose(c: echarts.ECharts) {
  observer.unobserve(c.getDom());
  c.dispose();
  live.delete(c);
}

export function disposeCharts(): void {
  for (const c of live) dispose(c);
}

const axisTime = (times: string[], hourly: boolean) =>
  times.map((t) => (hourly ? t.slice(11, 16) : t.slice(5, 10)));

export interface Series {
  name: string;
  values: (number | null)[];
  area?: boolean;
  dotted?: boolean;
  yAxis?: number;
}

/** Lines or areas over time; dotted series are the comparison overlay. */
export function timeOption(times: string[], hourly: boolean, series: Series[], opts: { target?: number; percentAxis?: boolean } = {}): EChartsCoreOption {
  return {
    tooltip: { trigger: "axis" },
    legend: { bottom: 0, type: "scroll" },
    grid: { left: 48, right: 16, top: 16, bottom: 48 },
    xAxis: { type: "category", data: axisTime(times, hourly), boundaryGap: false },
    yAxis: { type: "value", axisLabel: opts.percentAxis ? { formatter: "{value}%" } : {} },
    series: series.map((s, i) => ({
      name: s.name,
      type: "line",
      data: s.values,
      smooth: true,
      showSymbol: false,
      areaStyle: s.area ? { opacity: 0.15 } : undefined,
      lineStyle: s.dotted ? { type: "dotted", width: 2 } : { width: 2 },
      markLine:
        opts.target !== undefined && i === 0
          ? { symbol: "none", label: { formatter: `target ${opts.target}%`, position: "insideEndTop" }, lineStyle: { color: "#dc2626", type: "dashed" }, data: [{ yAxis: opts.target }] }
          : undefined,
    })),
  };
}

export function donutOption(items: { name: string; value: number }[], center: string): EChartsCoreOption {
  return {
    tooltip: { trigger: "item", formatter: "{b}: {c} ({d}%)" },
    legend: { bottom: 0, type: "scroll" },
    series: [
      {
        type: "pie",
        radius: ["45%", "72%"],
        center: ["50%", "45%"],
        avoidLabelOverlap: true,
        label: { show: true, position: "center", formatter: () => center, fontSize: 14, fontWeight: 600 },
        labelLine: { show: false },
        data: items,
      },
    ],
  };
}

export function funnelOption(stages: { name: string; value: number }[]): EChartsCoreOption {
  return {
    tooltip: { trigger: "item", formatter: "{b}: {c}" },
    series: [
      {
        type: "funnel",
        sort: "none",
        left: "5%",
        width: "65%",
        minSize: "4%",
        label: { show: true, position: "right", formatter: "{b}: {c}", color: "#111827" },
        data: stages,
      },
    ],
  };
}

export function barOption(names: string[], series: { name: string; values: (number | null)[] }[], horizontal = false): EChartsCoreOption {
  const category = { type: "category", data: names, axisLabel: { interval: 0, width: 110, overflow: "truncate" } };
  const value = { type: "value" };
  return {
    tooltip: { trigger: "axis" },
    legend: series.length > 1 ? { bottom: 0 } : undefined,
    grid: { left: horizontal ? 120 : 48, right: 16, top: 16, bottom: series.length > 1 ? 48 : 32 },
    xAxis: horizontal ? value : category,
    yAxis: horizontal ? category : value,
    series: series.map((s) => ({ name: s.name, type: "bar", data: s.values })),
  };
}

export function sparklineOption(values: number[]): EChartsCoreOption {
  return {
    animation: false,
    grid: { left: 0, right: 0, top: 2, bottom: 2 },
    xAxis: { type: "category", show: false, data: values.map((_, i) => i) },
    yAxis: { type: "value", show: false, min: 0 },
    series: [{ type: "line", data: values, showSymbol: false, smooth: true, lineStyle: { width: 1.5 }, areaStyle: { opacity: 0.2 } }],
  };
}

export const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

export function heatmapOption(cells: { day_of_week: number; hour_of_day: number; value: number | null }[], percent: boolean): EChartsCoreOption {
  const data = cells.filter((c) => c.value !== null).map((c) => [c.hour_of_day, c.day_of_week - 1, c.value]);
  const values = data.map((d) => d[2] as number);
  return {
    tooltip: {
      formatter: (p: { value: number[] }) =>
        `${WEEKDAYS[p.value[1]]} ${String(p.value[0]).padStart(2, "0")}:00 — ${percent ? `${p.value[2].toFixed(1)}%` : p.value[2]}`,
    },
    grid: { left: 48, right: 16, top: 8, bottom: 64 },
    xAxis: { type: "category", data: Array.from({ length: 24 }, (_, i) => String(i).padStart(2, "0")), splitArea: { show: true } },
    yAxis: { type: "category", data: WEEKDAYS, inverse: true, splitArea: { show: true } },
    visualMap: {
      min: values.length ? Math.min(...values) : 0,
      max: values.length ? Math.max(...values) : 1,
      calculable: true,
      orient: "horizontal",
      left: "center",
      bottom: 0,
      inRange: { color: ["#eff6ff", "#93c5fd", "#2563eb", "#1e3a8a"] },
    },
    series: [{ type: "heatmap", data, label: { show: false }, emphasis: { itemStyle: { borderColor: "#111", borderWidth: 1 } } }],
  };
}
