/**
 * The console's only way to the cloud: same-origin fetch with the session cookie, the CSRF
 * token on every state-changing request, and the API's error answer turned into an ApiError.
 */

export interface ApiErrorBody {
  error: { code: string; message: string; field?: string; details?: unknown };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

let csrfToken: string | undefined;
let onSessionLost: (() => void) | undefined;

export function setCsrfToken(token: string | undefined): void {
  csrfToken = token;
}

/** Called when the API answers 401 to a logged-in console: the session expired or was ended. */
export function whenSessionLost(callback: () => void): void {
  onSessionLost = callback;
}

export type Query = Record<string, string | number | boolean | readonly (string | number)[] | undefined | null>;

/** `/api/v1/devices` plus the defined query values; arrays repeat their key. */
export function apiPath(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) for (const item of value) params.append(key, String(item));
    else params.append(key, String(value));
  }
  const text = params.toString();
  return `/api/v1${path}${text ? `?${text}` : ""}`;
}

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** Send this instead of JSON (for example a CSV file or a firmware image). */
  raw?: { body: Blob | string; contentType: string };
  signal?: AbortSignal;
}

export async function api<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  let body: BodyInit | undefined;
  if (options.raw) {
    headers["content-type"] = options.raw.contentType;
    body = options.raw.body;
  } else if (options.body !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  if (method !== "GET" && csrfToken) headers["x-csrf-token"] = csrfToken;
  const response = await fetch(apiPath(path, options.query), {
    method,
    headers,
    body,
    credentials: "same-origin",
    signal: options.signal,
  });
  return answerOf<T>(response, path);
}

export async function answerOf<T>(response: Response, path: string): Promise<T> {
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (response.ok) return (parsed ?? text) as T;
  const error = (parsed as ApiErrorBody | undefined)?.error;
  if (response.status === 401 && !path.startsWith("/auth/login")) onSessionLost?.();
  throw new ApiError(
    response.status,
    error?.code ?? `HTTP_${response.status}`,
    error?.message ?? (response.statusText || "the cloud did not answer"),
    error?.field,
  );
}

/** The CSRF header for uploads made with XMLHttpRequest (which reports upload progress). */
export function csrfHeader(): Record<string, string> {
  return csrfToken ? { "x-csrf-token": csrfToken } : {};
}

/** A message for a person: the API's own message, with the field it names. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return error.field ? `${error.message} (${error.field})` : error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}
