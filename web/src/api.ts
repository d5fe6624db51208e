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

function url(path: string, params?: Params): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined && v !== "") q.set(k, v);
  const s = q.toString();
  return `/api/v1${path}${s ? `?${s}` : ""}`;
}

async function send<T>(method: string, path: string, params?: Params, body?: unknown): Promise<T> {
  const res = await fetch(url(path, params), {
    method,
    credentials: "same-origin",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
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

export interface Me {
  kind: "user" | "key";
  tenant: string;
  timezone: string;
  scopes: string[];
  reach: { all?: boolean; teams?: string[]; agent_id?: string };
  user: { email?: string; role?: string; agent_id?: string | null; teams?: string[] };
}

export interface Named {
  id: string;
  name: string;
  team_id?: string;
}

export interface Settings {
  timezone: string;
  coaching: Record<string, number>;
  targets: Record<string, number>;
  stages: string[];
  taxonomy: { categories: [string, string[]][]; meeting: string[] };
}
