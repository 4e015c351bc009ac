// The API client: the key (kept for the tab in sessionStorage, or on this device in localStorage
// when the person opts in), one fetch wrapper, and errors in words. Every call goes to the page's
// own origin, relative to the page (the deployed URL carries the stage: /dev/predict).
import { LIMITS } from "./limits.js";

const KEY_NAME = "cifar10-console.api-key";

export const caller = { role: null, keyId: null };

export function storedKey() {
  return sessionStorage.getItem(KEY_NAME) || localStorage.getItem(KEY_NAME) || "";
}

export function isRemembered() {
  return localStorage.getItem(KEY_NAME) !== null;
}

export function saveKey(key, remember) {
  sessionStorage.setItem(KEY_NAME, key);
  if (remember) localStorage.setItem(KEY_NAME, key);
  else localStorage.removeItem(KEY_NAME);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_NAME);
  localStorage.removeItem(KEY_NAME);
  caller.role = null;
  caller.keyId = null;
}

export class ApiError extends Error {
  constructor(status, code, message, route, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.route = route;
    this.retryAfter = retryAfter;
  }
}

const pageBase = new URL(".", document.baseURI);

export function apiUrl(path, query) {
  const url = new URL(path.replace(/^\//, ""), pageBase);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== "" && value !== false) url.searchParams.set(name, String(value));
  }
  return url;
}

/** "POST /models/{version}/promote" for "/models/v1/promote": the template route a path is on. */
export function routeOf(method, path) {
  const parts = path.split("?")[0].replace(/^\/|\/$/g, "").split("/");
  const routes = Object.keys(LIMITS.routes.client);
  const found = routes.find((route) => {
    const [routeMethod, template] = route.split(" ");
    const pattern = template.replace(/^\/|\/$/g, "").split("/");
    return routeMethod === method && pattern.length === parts.length
      && pattern.every((part, i) => part.startsWith("{") || part === parts[i]);
  });
  return found || `${method} ${path.split("?")[0]}`;
}

/** Call the API with the stored key; the parsed JSON answer, or an ApiError. */
export async function call(method, path, { json, form, query } = {}) {
  const headers = { "x-api-key": storedKey() };
  let body;
  if (json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form; // FormData: the browser writes the multipart boundary
  }
  const route = routeOf(method, path);
  let response;
  try {
    response = await fetch(apiUrl(path, query), { method, headers, body, cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, "network", `The API could not be reached (${error.message}).`, route);
  }
  return parse(response.status, await response.text(), route, response.headers.get("retry-after"));
}

export function parse(status, text, route, retryAfter = null) {
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (status >= 200 && status < 300) return data;
  const detail = (data && data.error) || {};
  throw new ApiError(status, detail.code || `http_${status}`, detail.message || data?.message || text || `HTTP ${status}`,
    route, retryAfter);
}

function waitInWords(secondsToWait) {
  if (secondsToWait <= 1) return "in a second";
  if (secondsToWait < 90) return `in ${Math.ceil(secondsToWait)} seconds`;
  if (secondsToWait < 5400) return `in about ${Math.ceil(secondsToWait / 60)} minutes`;
  return `in about ${Math.round(secondsToWait / 3600)} hours`;
}

const ROUTE_NAMES = {
  "POST /predict": "predictions",
  "POST /predict/batch": "batches",
  "POST /retrain": "retraining jobs",
  "POST /training-data": "training-data uploads",
};

/** What went wrong, in words a person can act on. */
export function inWords(error) {
  if (!(error instanceof ApiError)) return String(error && error.message ? error.message : error);
  const role = caller.role || "client";
  switch (error.status) {
    case 0:
      return error.message;
    case 403:
      if (error.code === "forbidden") return `This key may not do this: ${error.message}`;
      return "The API key is wrong or missing: check the key you typed (API Gateway refused it).";
    case 404:
      if (error.code === "route_not_found") return `This server has no route ${error.route}.`;
      return error.message;
    case 413:
      return `Too large: ${error.message} A request may carry at most ${(LIMITS.max_payload_bytes / 2 ** 20).toFixed(0)} MB`
        + ` (about ${(LIMITS.max_payload_bytes * 0.75 / 2 ** 20).toFixed(1)} MB of images), `
        + `${LIMITS.batch_max_images} images in a batch, and an image at most ${(LIMITS.max_image_bytes / 2 ** 20).toFixed(0)} MB.`;
    case 429: {
      if (error.code === "quota_exceeded") {
        return `This key has spent its daily quota of ${LIMITS.daily_quota[role]} requests; it refills at midnight UTC.`;
      }
      if (error.code === "too_many_requests") {
        return `The service is busy (every worker of this function is in use); try again ${waitInWords(Number(error.retryAfter) || 1)}.`;
      }
      const limit = LIMITS.routes[role][error.route];
      if (!limit) return `Too many requests; try again in a few seconds. (${error.message})`;
      const what = ROUTE_NAMES[error.route] || `requests to ${error.route}`;
      return `Limit reached: ${limit.figure.replace(/^(\d+)/, `$1 ${what}`)} per ${role} key `
        + `(${limit.burst} at once). Try again ${waitInWords(1 / limit.rate)}.`;
    }
    case 502:
    case 503:
    case 504:
      return `The service failed to answer (${error.status}${error.message ? `: ${error.message}` : ""}); try again.`;
    default:
      return error.message;
  }
}
