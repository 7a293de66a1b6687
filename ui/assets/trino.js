// The Trino client protocol from the browser: POST the statement, then GET
// each nextUri until a document has none, collecting columns and data;
// DELETE the current nextUri to cancel.
import { headers, identity, claimedUser } from './api.js';

// maxRows bounds what the console keeps of one result; beyond it the query
// is cancelled and the rows so far are shown.
export const maxRows = 10000;

export class QueryError extends Error {
  constructor(err) {
    super(err.message || 'query failed');
    this.errorName = err.errorName || '';
    this.errorType = err.errorType || '';
    this.errorCode = err.errorCode;
    this.location = err.errorLocation || null;
  }
}

// sameOrigin keeps the path of a nextUri: behind a proxy the server may
// name another host, and the console only ever talks to its own.
function sameOrigin(uri) {
  const u = new URL(uri, location.href);
  return u.pathname + u.search;
}

function trinoHeaders() {
  return headers({
    'X-Trino-User': identity.authenticated ? identity.user : claimedUser(),
    'X-Trino-Source': 'duet-console',
    'X-Trino-Catalog': 'duet',
    'X-Trino-Schema': 'views',
  });
}

// Query runs one statement; onUpdate(q) is called after every document.
export class Query {
  constructor(sql, onUpdate) {
    this.sql = sql;
    this.onUpdate = onUpdate || (() => {});
    this.columns = null;
    this.rows = [];
    this.state = 'QUEUED';
    this.id = '';
    this.nextUri = '';
    this.cancelled = false;
    this.truncated = false;
    this.started = performance.now();
    this.elapsedMs = 0;
  }

  async run() {
    let resp = await fetch('/v1/statement', { method: 'POST', headers: trinoHeaders(), body: this.sql, cache: 'no-store' });
    for (;;) {
      // Once cancelled, the answer to a request already sent is moot (the
      // query it asked about is gone: 404).
      if (this.cancelled) break;
      const doc = await this.read(resp);
      this.id = doc.id || this.id;
      if (doc.columns && !this.columns) this.columns = doc.columns;
      if (doc.data) this.rows.push(...doc.data);
      if (doc.stats && doc.stats.state) this.state = doc.stats.state;
      this.nextUri = doc.nextUri || '';
      this.elapsedMs = Math.round(performance.now() - this.started);
      if (doc.error) {
        this.state = 'FAILED';
        this.onUpdate(this);
        throw new QueryError(doc.error);
      }
      if (this.rows.length >= maxRows && this.nextUri) {
        this.truncated = true;
        this.rows.length = maxRows;
        await this.cancel();
        this.state = 'FINISHED';
      }
      this.onUpdate(this);
      if (!this.nextUri || this.cancelled) break;
      // A queued or running query answers at once with no rows: wait a bit
      // rather than spin.
      if (!doc.data && !doc.columns) await new Promise(r => setTimeout(r, 100));
      resp = await fetch(sameOrigin(this.nextUri), { headers: trinoHeaders(), cache: 'no-store' });
    }
    if (this.cancelled && !this.truncated) this.state = 'CANCELED';
    this.elapsedMs = Math.round(performance.now() - this.started);
    this.onUpdate(this);
    return this;
  }

  async read(resp) {
    const text = await resp.text();
    let doc;
    try { doc = JSON.parse(text); } catch { doc = null; }
    if (!resp.ok && !(doc && doc.error)) {
      throw new QueryError({ message: text.trim() || resp.status + ' ' + resp.statusText, errorName: 'HTTP ' + resp.status });
    }
    if (!doc) throw new QueryError({ message: 'the server answered no JSON: ' + text.slice(0, 200) });
    return doc;
  }

  // cancel DELETEs the query's next URI, which ends it on the server.
  async cancel() {
    this.cancelled = true;
    const uri = this.nextUri;
    if (!uri) return;
    try {
      await fetch(sameOrigin(uri), { method: 'DELETE', headers: trinoHeaders(), cache: 'no-store' });
    } catch { /* the query ends on its own when nobody follows it */ }
  }
}
