// The /v1 API client and the bearer token the user types (kept in sessionStorage: this tab only).
// Polls send If-None-Match with the ETag of the last answer, so an unchanged answer costs a 304.

const TOKEN_KEY = "vote-ledger.token";
export const REFUSED = "The API refused the token (missing, unknown, revoked or expired).";

let token = sessionStorage.getItem(TOKEN_KEY);
const cache = new Map(); // path -> {etag, body}

export class Unauthorized extends Error {}
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function hasToken() {
  return Boolean(token);
}

export function setToken(value) {
  token = value;
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function dropToken() {
  token = null;
  cache.clear();
  sessionStorage.removeItem(TOKEN_KEY);
}

export function authHeaders(accept) {
  return { Authorization: "Bearer " + token, Accept: accept };
}

export function meetingPath(meetingId, suffix) {
  return "/v1/meetings/" + encodeURIComponent(meetingId) + suffix;
}

// GET a JSON route; a 401 throws Unauthorized, any other error ApiError with the API's one-line reason.
export async function api(path, options) {
  const useCache = !(options && options.noCache);
  const headers = authHeaders("application/json");
  const cached = cache.get(path);
  if (useCache && cached && cached.etag) headers["If-None-Match"] = cached.etag;
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 304 && cached) return cached.body;
  if (response.status === 401) throw new Unauthorized(REFUSED);
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (!response.ok) {
    const message = body && typeof body.error === "string" ? body.error : "HTTP " + response.status;
    throw new ApiError(response.status, body && body.code, message);
  }
  const etag = response.headers.get("ETag");
  if (useCache && etag) cache.set(path, { etag, body });
  return body;
}
