// One WebSocket per tab (authenticated by the session cookie at the upgrade). Pages subscribe to
// scopes and hear metric updates and feed items; the connection comes back after a drop and
// re-subscribes.

import type { Schemas } from "./api";
import type { Filters } from "./filters";

export type Scope = { scope: "tenant" | "team" | "agent" | "campaign"; scope_id?: string };

/** A message of the live stream, by `type` (the server's `LiveMessage`). */
export type LiveMessage = Schemas["LiveMessage"];
type Message<T extends LiveMessage["type"]> = Extract<LiveMessage, { type: T }>;
export type MetricUpdate = Message<"metric_update">;
export type ActivityItem = Schemas["ActivityItem"];
/** A badge awarded to or revoked from a rep (each recorded once; SPEC §14). */
export type BadgeMessage = Message<"badge">;

type Listener = {
  scope: Scope;
  onUpdate?: (m: MetricUpdate) => void;
  onActivity?: (items: ActivityItem[]) => void;
  onBadge?: (m: BadgeMessage) => void;
};

/** The narrowest live scope covering the filters. */
export function scopeOf(f: Filters): Scope {
  if (f.agent) return { scope: "agent", scope_id: f.agent };
  if (f.team) return { scope: "team", scope_id: f.team };
  if (f.campaign) return { scope: "campaign", scope_id: f.campaign };
  return { scope: "tenant" };
}

const listeners = new Set<Listener>();
let socket: WebSocket | null = null;
let retry = 500;
let status: "connecting" | "live" | "offline" = "offline";
const statusListeners = new Set<(s: typeof status) => void>();

function setStatus(s: typeof status) {
  status = s;
  for (const l of statusListeners) l(s);
}

/** Calls `l` with the connection's state now and at every change, until the returned function is called. */
export function onStatus(l: (s: typeof status) => void): () => void {
  statusListeners.add(l);
  l(status);
  return () => statusListeners.delete(l);
}

const key = (s: Scope) => `${s.scope}:${s.scope_id ?? ""}`;
const sameScope = (a: Scope, m: { scope: string; scope_id?: string | null }) => a.scope === m.scope && (a.scope === "tenant" || a.scope_id === m.scope_id);

function send(type: "subscribe" | "unsubscribe", s: Scope) {
  if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type, ...s }));
}

function connect() {
  if (socket) return;
  setStatus("connecting");
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/api/v1/live`);
  socket = ws;
  ws.onopen = () => {
    retry = 500;
    setStatus("live");
    const seen = new Set<string>();
    for (const l of listeners) if (!seen.has(key(l.scope))) (seen.add(key(l.scope)), send("subscribe", l.scope));
  };
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data as string) as LiveMessage;
    for (const l of listeners) {
      if (m.type === "metric_update" && sameScope(l.scope, m)) l.onUpdate?.(m);
      if (m.type === "activity" && sameScope(l.scope, m)) l.onActivity?.(m.items);
      if (m.type === "badge" && sameScope(l.scope, m)) l.onBadge?.(m);
    }
  };
  ws.onclose = () => {
    socket = null;
    setStatus("offline");
    if (listeners.size > 0) setTimeout(connect, (retry = Math.min(retry * 2, 10_000)));
  };
}

/** Listens to one scope until the returned function is called. */
export function subscribe(l: Listener): () => void {
  const first = ![...listeners].some((o) => key(o.scope) === key(l.scope));
  listeners.add(l);
  if (!socket) connect();
  else if (first) send("subscribe", l.scope);
  return () => {
    listeners.delete(l);
    if (![...listeners].some((o) => key(o.scope) === key(l.scope))) send("unsubscribe", l.scope);
  };
}

/** Closes the connection (on logout). */
export function disconnect(): void {
  listeners.clear();
  socket?.close();
}
