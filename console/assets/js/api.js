// The REST API client: every call goes through `api()`, which turns a
// non-2xx answer into an ApiError carrying the server's `error` message
// (docs/API.md: errors are `{"error": "..."}`), so views can show it.

export const BASE = '/api/v1';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Called on a 401 from any request except the login itself; app.js sets it
// to send the user to the login screen.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(f) { onUnauthorized = f; }

// `body`: a plain object is sent as JSON; a Blob/ArrayBuffer/File is sent
// as it is with `contentType`. Answers are parsed as JSON when they are
// JSON, else returned as text; 204 gives null.
export async function api(method, path, body, { contentType, query } = {}) {
  let url = BASE + path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') q.set(k, v);
    }
    const s = q.toString();
    if (s) url += (url.includes('?') ? '&' : '?') + s;
  }
  const init = { method, headers: {}, credentials: 'same-origin' };
  if (body instanceof Blob || body instanceof ArrayBuffer) {
    init.body = body;
    init.headers['Content-Type'] = contentType || 'application/octet-stream';
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new ApiError(0, `the console cannot be reached (${e.message})`);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    const isJson = (res.headers.get('Content-Type') || '').includes('json');
    if (isJson) {
      try { data = JSON.parse(text); } catch { data = text; }
    } else {
      data = text;
    }
  }
  if (!res.ok) {
    const message = (data && typeof data === 'object' && data.error) ? data.error
      : (typeof data === 'string' && data.trim()) ? data.trim()
      : `${res.status} ${res.statusText}`;
    if (res.status === 401 && path !== '/login') onUnauthorized(message);
    throw new ApiError(res.status, message);
  }
  return data;
}

export const get = (path, query) => api('GET', path, undefined, { query });
export const post = (path, body, opts) => api('POST', path, body, opts);
export const put = (path, body) => api('PUT', path, body);
export const patch = (path, body) => api('PATCH', path, body);
export const del = (path) => api('DELETE', path);

// Path segments are user-chosen names: always encode them.
export const seg = (s) => encodeURIComponent(s);
export const projectPath = (p) => `/projects/${seg(p)}`;
export const jobPath = (p, j) => `/projects/${seg(p)}/jobs/${seg(j)}`;
