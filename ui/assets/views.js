// Views: freshness of every view, a view's version history, and for
// admins the rebuild and rollback buttons.
import { getJSON, sendJSON, identity, h, errorBox, fmtTime, fmtMs, fmtNum } from './api.js';

export function mount(el, selected, _query, navigate) {
  let stopped = false;
  const list = h('div', { id: 'views-list' });
  const detail = h('div', { id: 'view-detail' });
  const status = h('span', { class: 'muted', id: 'views-status' });
  // msg outlives the detail panel's redraws, so an action's result stays.
  const msg = h('div', { id: 'view-action-result' });
  el.append(h('h1', {}, 'Views'), h('div', { class: 'row' }, status), list, detail);

  async function refresh() {
    try {
      const { views } = await getJSON('/v1/views');
      if (stopped) return;
      list.replaceChildren(views.length ? viewsTable(views) : h('p', { class: 'muted' }, 'No views yet: create one with duet view create.'));
      status.textContent = `${views.length} view(s) · updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (!stopped) list.replaceChildren(errorBox(err));
    }
  }

  function viewsTable(views) {
    return h('table', { class: 'grid', id: 'views-table' },
      h('thead', {}, h('tr', {},
        h('th', {}, 'view'), h('th', {}, 'dataset'), h('th', { class: 'num' }, 'batch version'), h('th', {}, 'published'),
        h('th', { class: 'num' }, 'covered offset'), h('th', { class: 'num' }, 'log end offset'), h('th', { class: 'num' }, 'segments'),
        h('th', { class: 'num' }, 'speed lag (records)'), h('th', { class: 'num' }, 'speed lag'), h('th', {}, 'schedule'))),
      h('tbody', {}, views.map(v => h('tr', {
        class: 'clickable' + (v.name === selected ? ' selected' : ''), 'data-view': v.name,
        onclick: () => navigate('/ui/views/' + encodeURIComponent(v.name)),
      },
        h('td', {}, h('a', { href: '/ui/views/' + encodeURIComponent(v.name), 'data-nav': true }, v.name)),
        h('td', {}, v.dataset),
        h('td', { class: 'num' }, v.batch ? 'v' + v.batch.version : 'none yet'),
        h('td', {}, v.batch ? fmtTime(v.batch.published_at) : ''),
        h('td', { class: 'num' }, fmtNum(v.batch ? v.batch.covered_offset : 0)),
        h('td', { class: 'num' }, fmtNum(v.speed?.log_end_offset)),
        h('td', { class: 'num' }, fmtNum(v.speed?.segments?.length)),
        h('td', { class: 'num', 'data-lag-records': v.speed?.lag_records ?? '' }, fmtNum(v.speed?.lag_records)),
        h('td', { class: 'num' }, fmtMs(v.speed?.lag_ms)),
        h('td', {}, v.schedule || '')))));
  }

  async function showDetail() {
    if (!selected) {
      detail.replaceChildren(h('p', { class: 'muted' }, 'Pick a view to see its versions.'));
      return;
    }
    try {
      const [view, { versions }] = await Promise.all([
        getJSON('/v1/views/' + encodeURIComponent(selected)),
        getJSON('/v1/views/' + encodeURIComponent(selected) + '/versions'),
      ]);
      if (stopped) return;
      const out = h('div', { class: 'panel' });
      const buttons = h('div', { class: 'row' });
      if (identity.admin) {
        buttons.append(
          h('button', { id: 'rebuild', onclick: () => build(false, msg) }, 'Rebuild (incremental)'),
          h('button', { class: 'secondary', id: 'rebuild-full', onclick: () => build(true, msg) }, 'Full rebuild'));
      }
      out.append(
        h('h2', {}, `View ${view.name}`),
        h('pre', { class: 'log' }, view.sql),
        buttons, msg,
        h('h2', {}, 'Versions'),
        versions.length ? versionsTable(versions, msg) : h('p', { class: 'muted' }, 'No version built yet.'));
      detail.replaceChildren(out);
    } catch (err) {
      if (!stopped) detail.replaceChildren(errorBox(err));
    }
  }

  function versionsTable(versions, msg) {
    return h('table', { class: 'grid', id: 'versions-table' },
      h('thead', {}, h('tr', {}, ['version', 'kind', 'published', 'covered offset', 'rows', 'files', 'partitions', 'build', 'job', ''].map(t => h('th', {}, t)))),
      h('tbody', {}, versions.map(v => h('tr', { 'data-version': v.version, class: v.current ? 'selected' : null },
        h('td', {}, 'v' + v.version, v.current ? ' (current)' : ''),
        h('td', {}, v.kind + (v.base ? ` from v${v.base}` : '')),
        h('td', {}, fmtTime(v.published_at)),
        h('td', { class: 'num' }, fmtNum(v.covered_offset)),
        h('td', { class: 'num' }, fmtNum(v.rows)),
        h('td', { class: 'num' }, v.files),
        h('td', { class: 'num' }, v.partitions),
        h('td', { class: 'num' }, fmtMs(v.build_ms)),
        h('td', {}, v.job_id ? h('a', { href: '/ui/jobs/' + v.job_id, 'data-nav': true }, v.job_id.slice(0, 8)) : ''),
        h('td', {}, identity.admin && !v.current ? rollbackButton(v, msg) : '')))));
  }

  // rollbackButton asks once more before it rolls back: a second click.
  function rollbackButton(v, msg) {
    const b = h('button', { class: 'secondary', 'data-rollback': v.version }, `Roll back to v${v.version}`);
    b.addEventListener('click', async () => {
      if (!b.dataset.armed) {
        b.dataset.armed = '1';
        b.textContent = `Confirm: serve v${v.version}`;
        b.className = 'danger';
        return;
      }
      b.disabled = true;
      try {
        await sendJSON('POST', '/v1/views/' + encodeURIComponent(selected) + '/rollback', { version: v.version });
        msg.replaceChildren(h('div', { class: 'notice' }, `View ${selected} now serves version ${v.version}.`));
        await Promise.all([refresh(), showDetail()]);
      } catch (err) {
        msg.replaceChildren(errorBox(err));
        b.disabled = false;
      }
    });
    return b;
  }

  async function build(full, msg) {
    try {
      const job = await sendJSON('POST', '/v1/views/' + encodeURIComponent(selected) + '/builds', full ? { full: true } : undefined);
      msg.replaceChildren(h('div', { class: 'notice', id: 'build-queued' }, 'Build queued as job ',
        h('a', { href: '/ui/jobs/' + job.id, 'data-nav': true }, job.id), ` (${job.state}).`));
    } catch (err) {
      msg.replaceChildren(errorBox(err));
    }
  }

  refresh();
  showDetail();
  const timer = setInterval(refresh, 2000);
  return () => { stopped = true; clearInterval(timer); };
}
