// Jobs: the list with filters, and one run: state, progress, its log
// followed while it runs (byte ranges of stderr), kill.
import { getJSON, request, sendJSON, identity, h, errorBox, fmtTime, fmtMs, fmtNum } from './api.js';

const states = ['', 'queued', 'running', 'succeeded', 'failed', 'killed'];
const kinds = ['', 'view-build', 'backfill', 'compaction', 'sql', 'notebook'];
const finished = s => s === 'succeeded' || s === 'failed' || s === 'killed';

export function mount(el, id, query, navigate) {
  return id ? mountJob(el, id) : mountList(el, query, navigate);
}

function mountList(el, query, navigate) {
  let stopped = false;
  const f = {
    view: h('input', { id: 'filter-view', placeholder: 'view', value: query.get('view') || '', size: 14 }),
    state: h('select', { id: 'filter-state' }, states.map(s => h('option', { value: s, selected: s === (query.get('state') || '') }, s || 'any state'))),
    kind: h('select', { id: 'filter-kind' }, kinds.map(k => h('option', { value: k, selected: k === (query.get('kind') || '') }, k || 'any kind'))),
    user: h('input', { id: 'filter-user', placeholder: 'user', value: query.get('user') || '', size: 12 }),
  };
  const list = h('div', { id: 'jobs-list' });
  const status = h('span', { class: 'muted', id: 'jobs-status' });
  el.append(h('h1', {}, 'Jobs'), h('div', { class: 'row panel' }, 'Filter:', f.view, f.state, f.kind, f.user, status), list);

  function params() {
    const p = new URLSearchParams();
    for (const [k, input] of Object.entries(f)) if (input.value.trim()) p.set(k, input.value.trim());
    return p;
  }
  async function refresh() {
    const p = params();
    try {
      const { jobs, next } = await getJSON('/v1/jobs?' + p);
      if (stopped) return;
      list.replaceChildren(jobs.length ? jobsTable(jobs) : h('p', { class: 'muted' }, 'No jobs match.'));
      status.textContent = `${jobs.length}${next ? '+' : ''} job(s) · updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (!stopped) list.replaceChildren(errorBox(err));
    }
  }
  for (const input of Object.values(f)) {
    input.addEventListener('change', () => {
      history.replaceState(null, '', '/ui/jobs' + (params().toString() ? '?' + params() : ''));
      refresh();
    });
  }

  function jobsTable(jobs) {
    return h('table', { class: 'grid', id: 'jobs-table' },
      h('thead', {}, h('tr', {}, ['job', 'kind', 'view', 'state', 'attempt', 'user', 'created', 'duration', 'progress', 'error'].map(t => h('th', {}, t)))),
      h('tbody', {}, jobs.map(j => h('tr', { class: 'clickable', 'data-job': j.id, onclick: e => { if (!e.target.closest('a')) navigate('/ui/jobs/' + j.id); } },
        h('td', {}, h('a', { href: '/ui/jobs/' + j.id, 'data-nav': true }, j.id.slice(0, 8))),
        h('td', {}, j.kind), h('td', {}, j.view || ''),
        h('td', {}, h('span', { class: 'state ' + j.state }, j.state)),
        h('td', {}, `${j.attempt}/${j.max_attempts}`), h('td', {}, j.user || ''),
        h('td', {}, fmtTime(j.created_at)), h('td', {}, fmtMs(j.duration_ms)),
        h('td', {}, j.progress ? `${j.progress.stage} · ${fmtNum(j.progress.rows)} rows` : ''),
        h('td', { title: j.error || '' }, (j.error || '').slice(0, 60))))));
  }

  refresh();
  const timer = setInterval(refresh, 2000);
  return () => { stopped = true; clearInterval(timer); };
}

function mountJob(el, id) {
  let stopped = false;
  let timer = null;
  let offset = 0; // bytes of stderr shown so far
  let decoder = new TextDecoder();
  const info = h('div', { id: 'job-info', class: 'panel' });
  const actions = h('div', { class: 'row', id: 'job-actions' });
  const msg = h('div', { id: 'job-action-result' });
  const log = h('pre', { class: 'log', id: 'job-log' });
  const logStatus = h('span', { class: 'muted', id: 'job-log-status' });
  const files = h('div', { id: 'job-files' });
  el.append(h('h1', {}, 'Job ', h('code', {}, id)), h('p', {}, h('a', { href: '/ui/jobs', 'data-nav': true }, '← all jobs')),
    info, actions, msg, h('h2', {}, 'Log (stderr) ', logStatus), log, h('h2', {}, 'Output'), files);

  let killBtn = null;
  function showActions(j) {
    if (!identity.admin || finished(j.state)) {
      actions.replaceChildren();
      killBtn = null;
      return;
    }
    if (killBtn) return;
    killBtn = h('button', { class: 'danger', id: 'kill' }, 'Kill');
    killBtn.addEventListener('click', async () => {
      killBtn.disabled = true;
      try {
        const k = await sendJSON('DELETE', '/v1/jobs/' + encodeURIComponent(id));
        msg.replaceChildren(h('div', { class: 'notice' }, `Kill requested: job is ${k.state}.`));
      } catch (err) {
        msg.replaceChildren(errorBox(err));
        killBtn.disabled = false;
      }
    });
    actions.replaceChildren(killBtn);
  }

  function showInfo(j) {
    const kv = [
      ['state', h('span', { class: 'state ' + j.state, id: 'job-state' }, j.state)],
      ['kind', j.kind], ['view', j.view || ''], ['user', j.user || ''],
      ['attempt', `${j.attempt} of at most ${j.max_attempts}`],
      ['created', fmtTime(j.created_at)], ['started', fmtTime(j.started_at)], ['finished', fmtTime(j.finished_at)],
      ['duration', fmtMs(j.duration_ms)], ['timeout', j.timeout || ''],
      ['progress', j.progress ? h('span', { id: 'job-progress' }, `${j.progress.stage} · ${fmtNum(j.progress.rows)} rows · ${fmtMs(j.progress.elapsed_ms)}`) : ''],
      ['executor', j.executor ? `${j.executor.cluster}${j.executor.pid ? ' pid ' + j.executor.pid : ''}` : ''],
      ['next attempt', fmtTime(j.next_attempt_at)],
      ['published', j.version ? `version ${j.version.version}` : ''],
      ['sql', j.sql ? h('code', {}, j.sql) : ''],
      ['error', j.error ? h('span', { class: 'error-text', id: 'job-error' }, j.error) : ''],
    ].filter(([, v]) => v !== '' && v != null);
    info.replaceChildren(h('dl', { class: 'kv' }, kv.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
  }

  // followLog asks for the bytes of stderr not shown yet: 206 brings them,
  // 416 says there are none, 404 that the executor has not written any.
  async function followLog() {
    let resp;
    try {
      resp = await request('/v1/jobs/' + encodeURIComponent(id) + '/output/stderr', { headers: { Range: `bytes=${offset}-`, Accept: 'text/plain' } });
    } catch (err) {
      if (err.status === 416 || err.status === 404) return;
      throw err;
    }
    const buf = await resp.arrayBuffer();
    if (resp.status === 200) { // the whole file: the server ignored the range
      decoder = new TextDecoder();
      log.textContent = decoder.decode(buf, { stream: true });
      offset = buf.byteLength;
    } else if (resp.status === 206) {
      // Streaming decode: a range may end inside a character.
      log.append(decoder.decode(buf, { stream: true }));
      offset += buf.byteLength;
    }
    log.scrollTop = log.scrollHeight;
  }

  async function showFiles() {
    try {
      const out = await getJSON('/v1/jobs/' + encodeURIComponent(id) + '/output');
      files.replaceChildren(out.files.length ? h('ul', {}, out.files.map(f => h('li', {},
        h('a', { href: '/v1/jobs/' + encodeURIComponent(id) + '/output/' + f.name, target: '_blank' }, f.name), ` (${fmtNum(f.bytes)} bytes)`)))
        : h('p', { class: 'muted' }, 'No output yet.'));
    } catch (err) {
      files.replaceChildren(errorBox(err));
    }
  }

  async function tick() {
    if (stopped) return;
    try {
      const j = await getJSON('/v1/jobs/' + encodeURIComponent(id));
      if (stopped) return;
      showInfo(j);
      showActions(j);
      await followLog();
      const done = finished(j.state);
      logStatus.textContent = done ? `(${j.state})` : '(following…)';
      if (done) {
        await showFiles();
        return; // nothing more will change
      }
    } catch (err) {
      if (stopped) return;
      info.replaceChildren(errorBox(err));
      if (err.status === 404 || err.status === 403) return;
    }
    timer = setTimeout(tick, 1000);
  }
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}
