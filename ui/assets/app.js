// The console's shell: who is signed in, and a router over the pages
// (/ui/views, /ui/query, /ui/jobs, /ui/dashboards) without page reloads.
import { whoami, identity, setToken, token, claimedUser, setClaimedUser, h, APIError } from './api.js';
import * as views from './views.js';
import * as query from './query.js';
import * as jobs from './jobs.js';
import * as dashboards from './dashboards.js';

const pages = { views, query, jobs, dashboards };
let stopPage = null;

// route reads the page and its argument from the location.
function route() {
  const rest = location.pathname.replace(/^\/ui\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const name = pages[rest[0]] ? rest[0] : 'views';
  return { name, arg: rest.slice(1).join('/'), query: new URLSearchParams(location.search) };
}

export function navigate(path) {
  history.pushState(null, '', path);
  render();
}

function render() {
  if (stopPage) { stopPage(); stopPage = null; }
  const r = route();
  for (const a of document.querySelectorAll('header nav a')) a.classList.toggle('active', a.dataset.page === r.name);
  document.title = `duet · ${r.name}`;
  const el = document.getElementById('page');
  el.replaceChildren();
  el.dataset.page = r.name;
  stopPage = pages[r.name].mount(el, r.arg, r.query, navigate) || null;
}

function showWho() {
  const who = document.getElementById('who');
  who.replaceChildren();
  if (identity.authenticated) {
    who.append('Signed in as ', h('b', { id: 'who-user' }, identity.user), identity.admin ? ' (admin)' : '');
    if (token()) who.append(h('button', { class: 'secondary', onclick: () => { setToken(''); location.reload(); } }, 'Sign out'));
    return;
  }
  // Without authentication the server takes the user's word for a name.
  const input = h('input', { id: 'who-claim', size: 12, value: claimedUser(), title: 'the name your queries and jobs are recorded under; this server authenticates no one' });
  input.addEventListener('change', () => { setClaimedUser(input.value.trim()); start(); });
  who.append('User ', input, identity.admin ? ' (admin)' : '');
}

function showSignin(message) {
  const box = document.getElementById('signin');
  box.hidden = false;
  document.getElementById('signin-error').textContent = message || '';
  document.getElementById('page').replaceChildren(h('p', { class: 'muted' }, 'Sign in to use the console.'));
}

async function start() {
  try {
    await whoami();
  } catch (err) {
    if (err instanceof APIError && err.status === 401) {
      showSignin(token() ? 'The server refused the token: ' + err.message : '');
      return;
    }
    document.getElementById('page').replaceChildren(h('div', { class: 'error-box' }, 'Cannot reach the server: ' + err.message));
    return;
  }
  document.getElementById('signin').hidden = true;
  showWho();
  render();
}

document.addEventListener('click', e => {
  const a = e.target.closest('a[data-nav]');
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', render);
window.addEventListener('duet-unauthorized', () => {
  // A token that expired mid-session: ask again (Basic is the browser's).
  if (token()) { setToken(''); showSignin('The token expired or was revoked: sign in again.'); }
});
document.getElementById('signin-form').addEventListener('submit', e => {
  e.preventDefault();
  setToken(document.getElementById('signin-token').value.trim());
  start();
});
start();
