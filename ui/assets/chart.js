// Hand-written SVG charts and tables: a few hundred lines instead of a
// vendored library, and nothing to fetch when the browser is offline.
import { h } from './api.js';

const svgNS = 'http://www.w3.org/2000/svg';
const palette = ['#2f6fad', '#d9822b', '#3a9d5d', '#b9473f', '#7b5ea7', '#8c6d46', '#d16ba5', '#5f6b7a'];

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text != null) el.textContent = text;
  return el;
}

// asTime reads a value as a time when it looks like one (the rows API and
// the Trino protocol write timestamps as text).
function asTime(v) {
  if (typeof v !== 'string' || !/^\d{4}-\d\d-\d\d/.test(v)) return null;
  const t = Date.parse(v.includes('T') || v.length === 10 ? v : v.replace(' ', 'T') + 'Z');
  return isNaN(t) ? null : t;
}

function asNumber(v) {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '' && !isNaN(Number(v))) return Number(v);
  return null;
}

// xKind is how the x values sort and space: time, number or category.
function xKind(values) {
  if (values.length && values.every(v => v == null || asTime(v) != null)) return 'time';
  if (values.length && values.every(v => v == null || asNumber(v) != null)) return 'number';
  return 'category';
}

function niceTicks(min, max, n = 5) {
  if (min === max) { min -= 1; max += 1; }
  const span = max - min;
  const step0 = Math.pow(10, Math.floor(Math.log10(span / n)));
  const err = span / n / step0;
  const step = step0 * (err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1);
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push(+v.toFixed(10));
  return ticks;
}

function fmtTick(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(0) + 'k';
  return String(+v.toFixed(3));
}

function fmtTime(t, span) {
  const d = new Date(t).toISOString();
  if (span > 2 * 86400e3) return d.slice(5, 10) + ' ' + d.slice(11, 16);
  return d.slice(11, 16) + (span < 600e3 ? d.slice(16, 19) : '');
}

// seriesOf splits rows into the lines or bar groups to draw: one per y
// column, or per value of the series column when there is one y.
export function seriesOf(columns, rows, { x, y, series }) {
  const idx = name => columns.findIndex(c => c.name === name);
  const xi = idx(x);
  if (xi < 0) throw new Error(`x column "${x}" is not in the answer (columns: ${columns.map(c => c.name).join(', ')})`);
  const yis = y.map(name => {
    const i = idx(name);
    if (i < 0) throw new Error(`y column "${name}" is not in the answer (columns: ${columns.map(c => c.name).join(', ')})`);
    return i;
  });
  const si = series ? idx(series) : -1;
  if (series && si < 0) throw new Error(`series column "${series}" is not in the answer`);
  const out = new Map();
  for (const r of rows) {
    for (let k = 0; k < yis.length; k++) {
      const name = si >= 0 ? (yis.length > 1 ? `${r[si]} ${y[k]}` : String(r[si])) : y[k];
      if (!out.has(name)) out.set(name, []);
      out.get(name).push([r[xi], asNumber(r[yis[k]])]);
    }
  }
  return [...out.entries()].map(([name, points]) => ({ name, points }));
}

// draw renders a line or bar chart of the series into an element.
export function draw(el, kind, series) {
  el.replaceChildren();
  // Drawn at the element's own width, so text is never stretched.
  const W = Math.max(320, Math.round(el.clientWidth || 560)), H = 240, L = 52, R = 12, T = 10, B = 28;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img' });
  const allX = series.flatMap(sr => sr.points.map(p => p[0]));
  const allY = series.flatMap(sr => sr.points.map(p => p[1])).filter(v => v != null);
  if (!allX.length) {
    el.append(h('p', { class: 'muted' }, 'No rows in this range yet.'));
    return;
  }
  const kindX = kind === 'bar' ? 'category' : xKind(allX);
  let xs, xpos;
  const pw = W - L - R, ph = H - T - B;
  if (kindX === 'category') {
    xs = [...new Set(allX.map(String))];
    if (xKind(xs) !== 'category') xs.sort((a, b) => (asTime(a) ?? asNumber(a)) - (asTime(b) ?? asNumber(b)));
    const band = pw / xs.length;
    xpos = v => L + band * (xs.indexOf(String(v)) + 0.5);
    xpos.band = band;
  } else {
    const num = v => kindX === 'time' ? asTime(v) : asNumber(v);
    const vals = allX.map(num);
    const lo = Math.min(...vals), hi = Math.max(...vals);
    xpos = v => L + (hi === lo ? pw / 2 : (num(v) - lo) / (hi - lo) * pw);
    xs = { lo, hi, num };
  }
  const ticks = niceTicks(Math.min(0, ...allY), Math.max(0, ...allY));
  const y0 = ticks[0], y1 = ticks[ticks.length - 1];
  const ypos = v => T + ph - (v - y0) / (y1 - y0) * ph;
  for (const t of ticks) {
    svg.append(s('line', { class: 'gridline', x1: L, x2: W - R, y1: ypos(t), y2: ypos(t) }));
    svg.append(s('text', { x: L - 6, y: ypos(t) + 3, 'text-anchor': 'end' }, fmtTick(t)));
  }
  svg.append(s('line', { class: 'axis', x1: L, x2: W - R, y1: T + ph, y2: T + ph }));
  svg.append(s('line', { class: 'axis', x1: L, x2: L, y1: T, y2: T + ph }));
  // x labels: at most 6.
  if (kindX === 'category') {
    const every = Math.ceil(xs.length / 6);
    xs.forEach((v, i) => {
      if (i % every) return;
      const t = asTime(v);
      svg.append(s('text', { x: xpos(v), y: H - 10, 'text-anchor': 'middle' }, t != null ? fmtTime(t, 0) : String(v).slice(0, 14)));
    });
  } else {
    for (let i = 0; i <= 4; i++) {
      if (xs.hi === xs.lo && i !== 2) continue; // one value: one label, in the middle
      const v = xs.lo + (xs.hi - xs.lo) * i / 4;
      const x = L + pw * i / 4;
      svg.append(s('text', { x, y: H - 10, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle' },
        kindX === 'time' ? fmtTime(v, xs.hi - xs.lo) : fmtTick(v)));
    }
  }
  series.forEach((sr, k) => {
    const color = palette[k % palette.length];
    if (kind === 'bar') {
      const bw = Math.max(1, xpos.band * 0.8 / series.length);
      for (const [xv, yv] of sr.points) {
        if (yv == null) continue;
        const x = xpos(xv) - xpos.band * 0.4 + k * bw;
        const top = ypos(Math.max(0, yv)), bottom = ypos(Math.min(0, yv));
        svg.append(s('rect', { x, y: top, width: bw, height: Math.max(0.5, bottom - top), fill: color, 'data-series': sr.name }));
      }
      return;
    }
    const pts = sr.points.filter(p => p[1] != null)
      .map(p => [xpos(p[0]), ypos(p[1])])
      .sort((a, b) => a[0] - b[0]);
    svg.append(s('polyline', { points: pts.map(p => p.join(',')).join(' '), fill: 'none', stroke: color, 'stroke-width': 1.8, 'data-series': sr.name }));
    if (pts.length < 60) for (const p of pts) svg.append(s('circle', { cx: p[0], cy: p[1], r: 2.2, fill: color }));
  });
  el.append(svg);
  if (series.length > 1 || kind !== 'bar') {
    el.append(h('div', { class: 'legend' }, series.slice(0, 24).map((sr, k) => h('span', {}, h('i', { class: 'sw-' + (k % palette.length) }), sr.name))));
  }
}

// table renders rows as an HTML table (text only: values never become markup).
export function table(columns, rows) {
  const numeric = columns.map(c => /int|double|real|decimal|float|bigint/i.test(c.type || ''));
  return h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, columns.map((c, i) => h('th', { class: numeric[i] ? 'num' : null, title: c.type || '' }, c.name)))),
    h('tbody', {}, rows.map(r => h('tr', {}, r.map((v, i) => h('td', { class: numeric[i] ? 'num' : null }, v === null ? 'NULL' : typeof v === 'object' ? JSON.stringify(v) : v))))));
}

// guessChart picks x and y for a result: the first time or text column
// along x, the numeric columns as y; null when nothing can be drawn.
export function guessChart(columns, rows) {
  const numeric = columns.map((c, i) => /int|double|real|decimal|float/i.test(c.type || '') || (rows.length > 0 && rows.every(r => r[i] == null || typeof r[i] === 'number')));
  const xi = columns.findIndex((c, i) => /timestamp|date/i.test(c.type || '') || !numeric[i]);
  const x = xi >= 0 ? xi : 0;
  const y = columns.map((c, i) => i).filter(i => i !== x && numeric[i]);
  if (!y.length) return null;
  return { x: columns[x].name, y: y.map(i => columns[i].name) };
}
