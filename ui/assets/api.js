// Talking to duet: the REST API with the signed-in user's credentials.
// Basic authentication is the browser's own (it answers the server's
// challenge and resends the credentials with every same-origin request); a
// bearer token lives in sessionStorage, so it is gone when the tab closes.

const tokenKey = 'duet.token';
const userKey = 'duet.user';

export function token() { return sessionStorage.getItem(tokenKey) || ''; }
export function setToken(t) { t ? sessionStorage.setItem(tokenKey, t) : sessionStorage.removeItem(tokenKey); }

// Without authentication the server believes whatever name a client gives
// (X-Duet-User for jobs, X-Trino-User for queries); the console gives one.
export function claimedUser() { return localStorage.getItem(userKey) || 'console'; }
export function setClaimedUser(u) { u ? localStorage.setItem(userKey, u) : localStorage.removeItem(userKey); }

// identity is what GET /v1/whoami said: {user, admin, authenticated}.
export const identity = { user: '', admin: false, authenticated: false };

export class APIError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// headers builds the headers of a request to the server.
export function headers(extra = {}) {
  const h = { ...extra };
  if (token()) h['Authorization'] = 'Bearer ' + token();
  if (!identity.authenticated) h['X-Duet-User'] = claimedUser();
  return h;
}

// request sends a request and returns the Response, throwing APIError for
// 4xx and 5xx with the server's message ({"error": ...}).
export async function request(path, opts = {}) {
  const h = headers({ Accept: 'application/json', ...(opts.headers || {}) });
  let body = opts.body;
  if (body !== undefined && typeof body !== 'string') {
    body = JSON.stringify(body);
    h['Content-Type'] = 'application/json';
  }
  const resp = await fetch(path, { method: opts.method || 'GET', headers: h, body, signal: opts.signal, cache: 'no-store' });
  if (resp.status >= 400) {
    let msg = resp.status + ' ' + resp.statusText;
    let parsed;
    try {
      const text = await resp.text();
      try {
        parsed = JSON.parse(text);
        if (parsed && parsed.error) msg = parsed.error;
      } catch { if (text.trim()) msg = text.trim(); }
    } catch { /* the body is gone; keep the status */ }
    if (resp.status === 401) window.dispatchEvent(new CustomEvent('duet-unauthorized'));
    throw new APIError(resp.status, msg, parsed);
  }
  return resp;
}

// getJSON and sendJSON decode a JSON answer.
export async function getJSON(path, opts) { return (await request(path, opts)).json(); }
export async function sendJSON(method, path, body) {
  const resp = await request(path, { method, body });
  return resp.status === 204 ? null : resp.json();
}

export async function whoami() {
  const me = await getJSON('/v1/whoami');
  Object.assign(identity, me);
  return me;
}

// esc makes text safe to put into HTML.
export function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

export function fmtTime(t) {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function fmtMs(ms) {
  if (ms == null) return '';
  if (ms < 1000) return ms + ' ms';
  if (ms < 60_000) return (ms / 1000).toFixed(1) + ' s';
  if (ms < 3_600_000) return (ms / 60_000).toFixed(1) + ' min';
  return (ms / 3_600_000).toFixed(1) + ' h';
}

export function fmtNum(n) { return n == null ? '' : Number(n).toLocaleString('en-US'); }

// h builds an element: h('td', {class: 'num'}, 'text', child...).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// errorBox shows an error as the console shows every error: its name, if
// it has one, then its message.
export function errorBox(err, name) {
  const box = h('div', { class: 'error-box', role: 'alert' });
  if (name) box.append(h('span', { class: 'name' }, name));
  box.append(err && err.message ? err.message : String(err));
  return box;
}
