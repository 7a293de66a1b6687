// Dashboards: charts over views, each polling GET /v1/views/{view}/rows
// every second with If-None-Match, so an unchanged answer (304) costs the
// server almost nothing and the chart is not redrawn; saved dashboards
// live in the catalog (/v1/dashboards).
import { getJSON, request, sendJSON, identity, h, errorBox, fmtTime } from './api.js';
import { draw, seriesOf, table } from './chart.js';

const ranges = ['15m', '1h', '6h', '24h', '7d', '30d', ''];
const kinds = ['line', 'bar', 'table'];

export function mount(el, name, _query, navigate) {
  return name ? mountDashboard(el, name, navigate) : mountIndex(el, navigate);
}

function mountIndex(el, navigate) {
  const list = h('div', { id: 'dashboards-list' });
  el.append(h('h1', {}, 'Dashboards'), list, h('h2', {}, 'New dashboard'));
  const board = h('div');
  el.append(board);
  getJSON('/v1/dashboards').then(({ dashboards }) => {
    list.replaceChildren(dashboards.length
      ? h('table', { class: 'grid', id: 'dashboards-table' },
        h('thead', {}, h('tr', {}, ['dashboard', 'charts', 'owner', 'updated'].map(t => h('th', {}, t)))),
        h('tbody', {}, dashboards.map(d => h('tr', { 'data-dashboard': d.name },
          h('td', {}, h('a', { href: '/ui/dashboards/' + encodeURIComponent(d.name), 'data-nav': true }, d.title || d.name)),
          h('td', {}, d.charts.length), h('td', {}, d.owner || ''), h('td', {}, fmtTime(d.updated_at) + (d.updated_by ? ' by ' + d.updated_by : ''))))))
      : h('p', { class: 'muted' }, 'No saved dashboards yet: build one below and save it.'));
  }).catch(err => list.replaceChildren(errorBox(err)));
  return editDashboard(board, { name: '', charts: [], refresh: '1s' }, navigate, true);
}

function mountDashboard(el, name, navigate) {
  let stop = null, stopped = false;
  el.append(h('p', {}, h('a', { href: '/ui/dashboards', 'data-nav': true }, '← all dashboards')));
  const board = h('div');
  el.append(board);
  getJSON('/v1/dashboards/' + encodeURIComponent(name))
    .then(d => { if (!stopped) stop = editDashboard(board, d, navigate, false); })
    .catch(err => board.replaceChildren(errorBox(err)));
  return () => { stopped = true; if (stop) stop(); };
}

// parseSpan reads 15m, 1h, 7d, 1s as milliseconds.
function parseSpan(s) {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(s || '');
  if (!m) return 0;
  return Number(m[1]) * { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2]];
}

// fromFor is the start of a chart's range, rounded down so that the
// request, and so its ETag, stays the same from one poll to the next.
function fromFor(range, now) {
  const span = parseSpan(range);
  if (!span) return '';
  const step = span <= 3600e3 ? 60e3 : span <= 86400e3 ? 600e3 : 3600e3;
  return new Date(Math.floor((now - span) / step) * step).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const uniq = list => [...new Set(list.filter(Boolean))];

export function rowsURL(c, now) {
  const p = new URLSearchParams();
  const from = fromFor(c.range, now);
  if (from) p.set('from', from);
  for (const f of c.filters || []) p.append('filter', f);
  if (c.group_by && c.group_by.length) p.set('group_by', c.group_by.join(','));
  if (c.kind !== 'table') p.set('columns', uniq([c.x, c.series, ...(c.y || [])]).join(','));
  if (c.x) p.set('order', c.x);
  if (c.limit) p.set('limit', String(c.limit));
  return '/v1/views/' + encodeURIComponent(c.view) + '/rows?' + p;
}

// Chart polls and draws one chart.
class Chart {
  constructor(spec, pollMs, onRemove) {
    this.spec = spec;
    this.pollMs = pollMs;
    this.etag = '';
    this.draws = 0;
    this.notModified = 0;
    this.stopped = false;
    this.body = h('div', { class: 'body' });
    this.meta = h('div', { class: 'meta' });
    const title = spec.title || `${(spec.y || []).join(', ') || 'rows'} of ${spec.view}${spec.range ? ' · last ' + spec.range : ''}`;
    this.card = h('div', { class: 'chart-card', 'data-view': spec.view, 'data-kind': spec.kind },
      h('h3', {}, h('span', { class: 'grow' }, title), onRemove ? h('button', { class: 'secondary', 'data-remove': '1', onclick: onRemove }, 'Remove') : null),
      this.body, this.meta);
  }

  start() { this.poll(); }
  stop() { this.stopped = true; clearTimeout(this.timer); if (this.abort) this.abort.abort(); }

  async poll() {
    if (this.stopped) return;
    this.abort = new AbortController();
    try {
      const headers = { Accept: 'application/json' };
      if (this.etag) headers['If-None-Match'] = this.etag;
      const resp = await request(rowsURL(this.spec, Date.now()), { headers, signal: this.abort.signal });
      if (resp.status === 304) {
        this.notModified++;
      } else {
        const ans = await resp.json();
        this.etag = resp.headers.get('ETag') || '';
        this.render(ans);
        this.draws++;
      }
      this.showMeta();
    } catch (err) {
      if (this.stopped) return;
      this.etag = '';
      this.body.replaceChildren(errorBox(err));
    }
    if (!this.stopped) this.timer = setTimeout(() => this.poll(), this.pollMs);
  }

  render(ans) {
    this.answer = ans;
    const s = this.spec;
    if (s.kind === 'table') {
      this.body.replaceChildren(h('div', { class: 'scroll' }, table(ans.columns, ans.rows)));
      return;
    }
    draw(this.body, s.kind, seriesOf(ans.columns, ans.rows, { x: s.x, y: s.y, series: s.series }));
  }

  showMeta() {
    const a = this.answer || {};
    this.card.dataset.draws = this.draws;
    this.card.dataset.notModified = this.notModified;
    this.card.dataset.rows = a.rows ? a.rows.length : 0;
    this.meta.textContent = `batch v${a.batch_version ?? '?'} · covered offset ${a.covered_offset ?? '?'} · log end ${a.log_end_offset ?? '?'} · ` +
      `${a.rows ? a.rows.length : 0} rows · checked ${new Date().toLocaleTimeString()} · ${this.notModified} unchanged (304)`;
  }
}

// editDashboard shows a dashboard with its editor: add and remove charts,
// save (PUT), delete. isNew: it has no name yet.
function editDashboard(el, d, navigate, isNew) {
  const charts = [];
  const pollMs = Math.max(1000, parseSpan(d.refresh || '1s') || 1000);
  const grid = h('div', { class: 'charts', id: 'charts' });
  const msg = h('div', { id: 'dashboard-result' });
  const nameInput = h('input', { id: 'dashboard-name', placeholder: 'name', value: d.name || '', disabled: !isNew, size: 18 });
  const titleInput = h('input', { id: 'dashboard-title', placeholder: 'title', value: d.title || '', size: 24 });
  const refreshInput = h('input', { id: 'dashboard-refresh', value: d.refresh || '1s', size: 4, title: 'how often charts poll, such as 1s or 10s' });
  const canChange = isNew || identity.admin || d.owner === identity.user;
  const saveBtn = h('button', { id: 'save-dashboard' }, 'Save');
  const delBtn = !isNew && canChange ? h('button', { class: 'danger', id: 'delete-dashboard' }, 'Delete') : null;

  el.append(
    isNew ? null : h('h1', {}, d.title || d.name),
    h('div', { class: 'panel row' }, 'Name', nameInput, 'Title', titleInput, 'Refresh', refreshInput, canChange ? saveBtn : null, delBtn,
      !isNew && d.owner ? h('span', { class: 'muted' }, `owner ${d.owner}`) : null),
    msg, grid, chartEditor(spec => addChart(spec)));

  function addChart(spec) {
    const c = new Chart(spec, pollMs, () => {
      c.stop();
      c.card.remove();
      charts.splice(charts.indexOf(c), 1);
    });
    charts.push(c);
    grid.append(c.card);
    c.start();
  }
  for (const spec of d.charts || []) addChart(spec);

  saveBtn.addEventListener('click', async () => {
    const name = nameInput.value.trim();
    if (!name) { msg.replaceChildren(errorBox('Give the dashboard a name to save it.')); return; }
    try {
      const saved = await sendJSON('PUT', '/v1/dashboards/' + encodeURIComponent(name), {
        name, title: titleInput.value.trim() || undefined, refresh: refreshInput.value.trim() || undefined,
        charts: charts.map(c => c.spec),
      });
      msg.replaceChildren(h('div', { class: 'notice', id: 'dashboard-saved' }, `Saved dashboard ${saved.name} (${saved.charts.length} charts).`));
      if (isNew) navigate('/ui/dashboards/' + encodeURIComponent(saved.name));
    } catch (err) {
      msg.replaceChildren(errorBox(err));
    }
  });
  if (delBtn) delBtn.addEventListener('click', async () => {
    if (!delBtn.dataset.armed) { delBtn.dataset.armed = '1'; delBtn.textContent = 'Confirm delete'; return; }
    try {
      await sendJSON('DELETE', '/v1/dashboards/' + encodeURIComponent(d.name));
      navigate('/ui/dashboards');
    } catch (err) {
      msg.replaceChildren(errorBox(err));
    }
  });
  return () => charts.forEach(c => c.stop());
}

// chartEditor is the form that adds a chart: a view, a range, a kind and
// the columns; it offers the view's columns once one is picked.
function chartEditor(onAdd) {
  const f = {
    title: h('input', { id: 'chart-title', placeholder: 'optional' }),
    view: h('select', { id: 'chart-view' }, h('option', { value: '' }, 'pick a view…')),
    range: h('select', { id: 'chart-range' }, ranges.map(r => h('option', { value: r, selected: r === '1h' }, r ? 'last ' + r : 'all time'))),
    kind: h('select', { id: 'chart-kind' }, kinds.map(k => h('option', { value: k }, k))),
    x: h('input', { id: 'chart-x', list: 'chart-columns', placeholder: 'time key column' }),
    y: h('input', { id: 'chart-y', list: 'chart-columns', placeholder: 'measures, comma-separated' }),
    series: h('input', { id: 'chart-series', list: 'chart-columns', placeholder: 'optional: one line per value' }),
    group_by: h('input', { id: 'chart-group-by', placeholder: 'keys kept (others rolled up)' }),
    filters: h('textarea', { id: 'chart-filters', placeholder: 'one per line: origin=ATL' }),
    limit: h('input', { id: 'chart-limit', type: 'number', min: 0, placeholder: 'server default' }),
  };
  const columns = h('datalist', { id: 'chart-columns' });
  const msg = h('div', { id: 'chart-editor-result' });
  const add = h('button', { id: 'add-chart' }, 'Add chart');
  const label = (text, input) => h('label', {}, text, input);
  const form = h('div', { class: 'panel', id: 'chart-editor' },
    h('h2', {}, 'Add a chart'),
    h('div', { class: 'editor' },
      label('View', f.view), label('Range', f.range), label('Chart', f.kind), label('Title', f.title),
      label('x', f.x), label('y', f.y), label('Series', f.series), label('Group by', f.group_by),
      label('Filters', f.filters), label('Limit', f.limit)),
    columns, h('div', { class: 'row' }, add), msg);

  getJSON('/v1/views').then(({ views }) => {
    for (const v of views) f.view.append(h('option', { value: v.name }, v.name));
  }).catch(err => msg.replaceChildren(errorBox(err)));

  // Picking a view fills in the columns of its answer, and a guess: the
  // first time column along x, the numeric ones as y, the others kept.
  f.view.addEventListener('change', async () => {
    columns.replaceChildren();
    if (!f.view.value) return;
    try {
      const ans = await getJSON('/v1/views/' + encodeURIComponent(f.view.value) + '/rows?limit=1');
      for (const c of ans.columns) columns.append(h('option', { value: c.name }, c.type));
      const time = ans.columns.find(c => /timestamp|date/i.test(c.type));
      const nums = ans.columns.filter(c => /int|double|real|decimal|float/i.test(c.type));
      if (!f.x.value && time) f.x.value = time.name;
      if (!f.y.value && nums.length) f.y.value = nums[0].name;
      msg.replaceChildren();
    } catch (err) {
      msg.replaceChildren(errorBox(err));
    }
  });

  add.addEventListener('click', () => {
    const list = v => v.split(',').map(s => s.trim()).filter(Boolean);
    const spec = {
      title: f.title.value.trim() || undefined,
      view: f.view.value, range: f.range.value || undefined, kind: f.kind.value,
      x: f.x.value.trim() || undefined, y: list(f.y.value), series: f.series.value.trim() || undefined,
      group_by: list(f.group_by.value), filters: f.filters.value.split('\n').map(s => s.trim()).filter(Boolean),
      limit: Number(f.limit.value) || undefined,
    };
    if (!spec.view) { msg.replaceChildren(errorBox('Pick a view.')); return; }
    if (spec.kind !== 'table' && (!spec.x || !spec.y.length)) { msg.replaceChildren(errorBox(`A ${spec.kind} chart needs x and y columns.`)); return; }
    for (const k of ['y', 'group_by', 'filters']) if (!spec[k].length) delete spec[k];
    msg.replaceChildren();
    onAdd(spec);
  });
  return form;
}
