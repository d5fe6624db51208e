// The server's API, as the signed-in user (the session cookie rides along).

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

export type Params = Record<string, string | undefined>;

/** The API's answers, generated from its OpenAPI document (`npm run gen-types`). */
export type Schemas = import("./api-types").components["schemas"];

function url(path: string, params?: Params): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined && v !== "") q.set(k, v);
  const s = q.toString();
  return `/api/v1${path}${s ? `?${s}` : ""}`;
}

// Stale answers are never shown. Every request rides on an AbortSignal: the view's, which
// `cancelAll` aborts when the page or its filters change, and, for a load that runs again (a
// live refresh), that run's own, which the next run aborts (`latest`). An aborted request's
// promise never settles, so the code awaiting it (which would render an older answer over a
// newer one) never runs, and no page has to tell a cancellation from a failure.
let view = new AbortController();
/** The signal of the run of a `latest` load that is starting its requests, if any. */
let running: AbortSignal | null = null;

/** Aborts every request in flight: the view changed, so their answers are stale. */
export function cancelAll(): void {
  view.abort();
  view = new AbortController();
}

/**
 * A load that may run again: each run first aborts the requests the previous run still has in
 * flight. The requests a run starts before its first `await` ride on the run's signal.
 */
export function latest<A extends unknown[], R>(load: (...args: A) => R): (...args: A) => R {
  let run: AbortController | null = null;
  return (...args: A) => {
    run?.abort();
    run = new AbortController();
    const outer = running;
    running = AbortSignal.any([view.signal, run.signal]);
    try {
      return load(...args);
    } finally {
      running = outer;
    }
  };
}

const never = <T>() => new Promise<T>(() => undefined);

async function send<T>(method: string, path: string, params?: Params, body?: unknown): Promise<T> {
  const signal = running ?? view.signal;
  let res: Response;
  let text: string;
  try {
    res = await fetch(url(path, params), {
      method,
      credentials: "same-origin",
      // A file goes as it is (an upload); anything else as JSON.
      headers: body === undefined ? {} : { "content-type": body instanceof Blob ? "application/octet-stream" : "application/json" },
      body: body === undefined ? undefined : body instanceof Blob ? body : JSON.stringify(body),
      signal,
    });
    text = await res.text();
  } catch (e) {
    if (signal.aborted) return never();
    throw e;
  }
  if (signal.aborted) return never();
  const json = text ? JSON.parse(text) : {};
  if (!res.ok) {
    const err = json?.error ?? {};
    const fields = (err.fields ?? err.errors ?? []) as { field: string; message: string }[];
    const detail = fields.map((f) => `${f.field}: ${f.message}`).join("; ");
    if (res.status === 401) window.dispatchEvent(new CustomEvent("unauthorized"));
    throw new ApiError(res.status, err.code ?? "error", detail || err.message || res.statusText);
  }
  return json as T;
}

export const get = <T>(path: string, params?: Params) => send<T>("GET", path, params);
export const post = <T>(path: string, body: unknown) => send<T>("POST", path, undefined, body);
export const put = <T>(path: string, body: unknown) => send<T>("PUT", path, undefined, body);
export const del = <T>(path: string) => send<T>("DELETE", path);
/** The API's URL of `path` with `params` (for downloads, which are not JSON). */
export const apiUrl = url;
/** A file as the body of a POST, with the options as query parameters. */
export const upload = <T>(path: string, file: Blob, params: Params) => send<T>("POST", path, params, file);

/** `GET /auth/me` when no one is signed in (no session cookie, no key). */
export type SignedOut = Schemas["SignedOut"];

/** `GET /auth/me` for a signed-in user or a key. */
export type Me = Schemas["Caller"];

/** A directory entry: an agent, a team or a campaign. */
export type Agent = Schemas["AgentEntry"];
export type Team = Schemas["TeamEntry"];
export type Campaign = Schemas["CampaignEntry"];
export type Named = Agent | Team | Campaign;

export type Settings = Schemas["SettingsAnswer"];
