// Query: an editor running SQL through the Trino protocol, results as a
// table and a chart, this browser's history and the server's, cancel.
import { h, errorBox, fmtMs, fmtTime } from './api.js';
import { Query, QueryError, maxRows } from './trino.js';
import { table, draw, seriesOf, guessChart } from './chart.js';

const historyKey = 'duet.queryHistory';
const historySize = 50;
const draftKey = 'duet.queryDraft';

function loadHistory() {
  try { return JSON.parse(localStorage.getItem(historyKey) || '[]'); } catch { return []; }
}

function remember(entry) {
  const list = loadHistory().filter(e => e.sql !== entry.sql);
  list.unshift(entry);
  localStorage.setItem(historyKey, JSON.stringify(list.slice(0, historySize)));
}

export function mount(el) {
  let current = null; // the running query
  let last = null; // the query whose result is shown
  let stopped = false;
  const editor = h('textarea', { class: 'sql', id: 'sql', spellcheck: 'false', placeholder: 'SELECT * FROM views.<view> LIMIT 100' });
  editor.value = sessionStorage.getItem(draftKey) || 'SELECT * FROM system.views';
  editor.addEventListener('input', () => sessionStorage.setItem(draftKey, editor.value));
  const runBtn = h('button', { id: 'run' }, 'Run');
  const cancelBtn = h('button', { id: 'cancel', class: 'danger', disabled: true }, 'Cancel');
  const status = h('span', { id: 'query-status', class: 'muted' });
  const error = h('div', { id: 'query-error' });
  const tabTable = h('button', { class: 'on', id: 'tab-table' }, 'Table');
  const tabChart = h('button', { id: 'tab-chart' }, 'Chart');
  const results = h('div', { id: 'query-results', class: 'scroll' });
  const chartEl = h('div', { id: 'query-chart', class: 'chart-card', hidden: true });
  const history = h('ul', { class: 'history', id: 'query-history' });
  const serverHistory = h('div', { id: 'server-history' });
  let view = 'table';

  el.append(
    h('h1', {}, 'Query'),
    h('div', { class: 'panel' },
      editor,
      h('div', { class: 'row' }, runBtn, cancelBtn, status,
        h('span', { class: 'grow' }), h('span', { class: 'muted' }, 'Ctrl+Enter runs · catalog duet, schema views'))),
    error,
    h('div', { class: 'tabs' }, tabTable, tabChart),
    results, chartEl,
    h('div', { class: 'panel' },
      h('h2', {}, 'History (this browser)'), history,
      h('div', { class: 'row' }, h('button', { class: 'secondary', id: 'load-server-history', onclick: loadServerHistory }, 'Show the server\'s recent queries')),
      serverHistory));

  function showHistory() {
    history.replaceChildren(...loadHistory().map(e => h('li', {
      title: e.sql, onclick: () => { editor.value = e.sql; sessionStorage.setItem(draftKey, e.sql); editor.focus(); },
    }, h('span', { class: 'state ' + e.state }, e.state), ' ', fmtTime(e.at), ' · ', e.rows ?? 0, ' rows · ', fmtMs(e.ms), ' · ', e.sql.replace(/\s+/g, ' '))));
  }

  function setView(v) {
    view = v;
    tabTable.classList.toggle('on', v === 'table');
    tabChart.classList.toggle('on', v === 'chart');
    results.hidden = v !== 'table';
    chartEl.hidden = v !== 'chart';
    if (last) showResult(last);
  }
  tabTable.addEventListener('click', () => setView('table'));
  tabChart.addEventListener('click', () => setView('chart'));

  function showResult(q) {
    if (!q.columns) { results.replaceChildren(); return; }
    if (view === 'table') {
      results.replaceChildren(table(q.columns, q.rows));
      return;
    }
    const guess = guessChart(q.columns, q.rows);
    if (!guess) {
      chartEl.replaceChildren(h('p', { class: 'muted' }, 'Nothing to chart: the result has no numeric column.'));
      return;
    }
    const body = h('div', { class: 'body' });
    chartEl.replaceChildren(h('h3', {}, `${guess.y.join(', ')} by ${guess.x}`), body);
    try {
      draw(body, 'line', seriesOf(q.columns, q.rows, { x: guess.x, y: guess.y }));
    } catch (err) {
      body.replaceChildren(errorBox(err));
    }
  }

  function showStatus(q) {
    const rows = q.rows.length;
    status.replaceChildren(h('span', { class: 'state ' + q.state }, q.state), ` ${rows} row${rows === 1 ? '' : 's'} · ${fmtMs(q.elapsedMs)}`,
      q.truncated ? ` · first ${maxRows} rows shown` : '', q.id ? ` · ${q.id}` : '');
  }

  async function run() {
    const sql = editor.value.trim().replace(/;\s*$/, '');
    if (!sql || current) return;
    error.replaceChildren();
    results.replaceChildren();
    const q = new Query(sql, q => {
      if (stopped) return;
      showStatus(q);
      showResult(q);
    });
    current = q;
    last = q;
    runBtn.disabled = true;
    cancelBtn.disabled = false;
    try {
      await q.run();
    } catch (err) {
      if (err instanceof QueryError) {
        const where = err.location ? ` (line ${err.location.lineNumber}, column ${err.location.columnNumber})` : '';
        error.replaceChildren(errorBox({ message: err.message + where }, err.errorName || 'ERROR'));
      } else {
        error.replaceChildren(errorBox(err, 'ERROR'));
      }
      q.state = 'FAILED';
      showStatus(q);
    } finally {
      current = null;
      runBtn.disabled = false;
      cancelBtn.disabled = true;
      remember({ sql, state: q.state, rows: q.rows.length, ms: q.elapsedMs, at: new Date().toISOString() });
      if (!stopped) showHistory();
    }
  }

  runBtn.addEventListener('click', run);
  cancelBtn.addEventListener('click', async () => {
    if (!current) return;
    cancelBtn.disabled = true;
    await current.cancel();
  });
  editor.addEventListener('keydown', e => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); }
  });

  // The server keeps recent queries in system.queries (a non-admin sees
  // their own): the console asks for them like any other query.
  async function loadServerHistory() {
    const q = new Query(`SELECT query_id, state, created_at, elapsed_ms, "rows", error_name, sql FROM system.queries ORDER BY created_at DESC LIMIT 50`);
    try {
      await q.run();
      serverHistory.replaceChildren(h('div', { class: 'scroll' }, table(q.columns, q.rows)));
    } catch (err) {
      serverHistory.replaceChildren(errorBox(err, err.errorName));
    }
  }

  showHistory();
  editor.focus();
  return () => {
    stopped = true;
    if (current) current.cancel();
  };
}
