// A small element builder and the number formats every page shares.

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el: Element, children: Child[]) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const one = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
const two = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
const money0 = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });

export const fmt = {
  int: (v: unknown) => (isNum(v) ? int.format(v) : "—"),
  /** One decimal, or two for small values (a talk ratio of 0.68 is not 0.7). */
  num: (v: unknown) => (isNum(v) ? (Math.abs(v) < 10 ? two : one).format(v) : "—"),
  pct: (v: unknown) => (isNum(v) ? `${one.format(v)}%` : "—"),
  ratio: (v: unknown) => (isNum(v) ? `${one.format(v * 100)}%` : "—"),
  money: (v: unknown) => (isNum(v) ? money0.format(v) : "—"),
  /** Seconds as "1h 02m", "3m 12s" or "45s". */
  duration(v: unknown): string {
    if (!isNum(v)) return "—";
    const s = Math.round(v);
    if (s >= 3600) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
    if (s >= 60) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
    return `${s}s`;
  },
  label: (id: string) => id.replace(/[_-]+/g, " ").replace(/^\w/, (c) => c.toUpperCase()),
};

/** "1 call", "3 calls": a count with its noun, singular only for one. */
export function plural(n: number, noun: string): string {
  return `${int.format(n)} ${noun}${n === 1 ? "" : "s"}`;
}

/** "+12.5%" in green or red (or the reverse when lower is better); nothing when unknown. */
export function change(percent: unknown, lowerIsBetter = false): HTMLElement | null {
  if (!isNum(percent)) return null;
  const good = percent === 0 ? null : (percent > 0) !== lowerIsBetter;
  const cls = good === null ? "flat" : good ? "up" : "down";
  const arrow = percent > 0 ? "▲" : percent < 0 ? "▼" : "■";
  return h("span", { class: `change ${cls}`, title: "change against the previous period" }, `${arrow} ${one.format(Math.abs(percent))}%`);
}

export function loading(): HTMLElement {
  return h("div", { class: "state loading", role: "status" }, h("span", { class: "spinner" }), "Loading…");
}

export function empty(message = "No data for these filters."): HTMLElement {
  return h("div", { class: "state empty" }, message);
}

export function failure(e: unknown): HTMLElement {
  const message = e instanceof Error ? e.message : String(e);
  return h("div", { class: "state error", role: "alert" }, h("strong", {}, "Could not load: "), message);
}

/** A titled panel; `body` may be filled later. */
export function panel(title: string, body: Child, extra: Child = null, cls = ""): HTMLElement {
  return h("section", { class: `panel ${cls}` }, h("header", {}, h("h2", {}, title), extra), h("div", { class: "body" }, body));
}

/** Fills `target` with what `load` renders, showing loading and error states meanwhile. */
export async function fill(target: HTMLElement, load: () => Promise<Child>): Promise<void> {
  if (!target.hasChildNodes()) target.replaceChildren(loading());
  try {
    const content = await load();
    target.replaceChildren();
    append(target, [content]);
  } catch (e) {
    target.replaceChildren(failure(e));
  }
}

export interface Column<T> {
  label: string;
  value: (row: T) => Child;
  numeric?: boolean;
  cls?: (row: T) => string;
}

export function table<T>(rows: T[], columns: Column<T>[], onRow?: (row: T) => void, testid?: string): HTMLElement {
  if (rows.length === 0) return empty();
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { "data-testid": testid },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.numeric ? "num" : "" }, c.label)))),
      h(
        "tbody",
        {},
        rows.map((r) =>
          h(
            "tr",
            { class: onRow ? "clickable" : "", onclick: onRow ? () => onRow(r) : undefined },
            columns.map((c) => h("td", { class: `${c.numeric ? "num" : ""} ${c.cls?.(r) ?? ""}` }, c.value(r))),
          ),
        ),
      ),
    ),
  );
}
