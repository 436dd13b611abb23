// The daemon's HTTP API, from the page: same origin, the browser's own Basic credentials
// (it sends them to every path under the one it logged in at, "/").

/** An answer that is not 2xx: ``status`` and the API's ``detail`` sentence. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.name = 'ApiError';
    this.status = status;
    this.detail = detail;
  }
}

async function request(method, path, body, signal) {
  const init = {method, headers: {Accept: 'application/json'}, credentials: 'same-origin', signal};
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  return fetch(path, init);
}

async function detailOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body.detail === 'string') return body.detail;
  } catch {
    // not JSON: fall through
  }
  return `${response.status} ${response.statusText}`.trim();
}

/** The JSON answer of ``method path``; throws ApiError for any status but 2xx. */
export async function call(method, path, body, {signal} = {}) {
  const response = await request(method, path, body, signal);
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  return response.status === 204 ? null : response.json();
}

export const get = (path, options) => call('GET', path, undefined, options);
export const post = (path, body, options) => call('POST', path, body, options);

/** A text answer (a log); throws ApiError like ``call``. */
export async function getText(path, {signal} = {}) {
  const response = await fetch(path, {credentials: 'same-origin', signal});
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  return response.text();
}

/** ``?a=1&b=x`` from an object, leaving out empty values. */
export function query(parameters) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(parameters)) {
    if (value === undefined || value === null || value === '') continue;
    search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** A path segment: ids are URL-safe already, but never trust that. */
export const segment = (value) => encodeURIComponent(value);

let whoPromise = null;

/** Who we are logged in as: {user, role}; role "viewer" may only read. */
export function whoami() {
  whoPromise ??= get('/daemon/whoami').catch((error) => {
    whoPromise = null;
    throw error;
  });
  return whoPromise;
}

let documentPromise = null;

/** The OpenAPI document (the add form derives its fields from it), fetched once. */
export function openapi() {
  documentPromise ??= get('/openapi.json').catch((error) => {
    documentPromise = null;
    throw error;
  });
  return documentPromise;
}
