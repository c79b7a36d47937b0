// Sluice console: a single-page app with hash routes, no build step.
// Each view renders into <main id="view"> and may return a cleanup
// function (polling timers stop when the user navigates away).

import { get, post, setUnauthorizedHandler } from './js/api.js';
import { h, clear, errorBox, showError } from './js/dom.js';
import { renderLogin } from './js/views/login.js';
import { renderTokens } from './js/views/tokens.js';
import { renderAccount } from './js/views/account.js';
import { renderUsers } from './js/views/users.js';
import { renderWorkers } from './js/views/workers.js';
import { renderProjects } from './js/views/projects.js';
import { renderProject } from './js/views/project.js';
import { renderJob } from './js/views/job.js';

// Uncaught script errors are kept (and logged) so the browser test can
// fail on them rather than on a screen that silently stopped updating.
window.sluiceErrors = [];
window.addEventListener('error', (e) => window.sluiceErrors.push(String(e.message || e.error)));
window.addEventListener('unhandledrejection', (e) => window.sluiceErrors.push(String(e.reason && e.reason.message || e.reason)));

const view = document.getElementById('view');
const header = document.getElementById('header');

// Who is signed in: `{user, projects: [{name, role}]}` from GET /me.
export const session = { me: null };

let cleanup = null;
let generation = 0;

function parseHash() {
  const path = (location.hash || '#/').replace(/^#/, '');
  const [pathname, queryString] = path.split('?');
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(queryString || '') };
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function loadMe() {
  try {
    session.me = await get('/me');
  } catch (e) {
    session.me = null;
    if (e.status !== 401) throw e;
  }
  renderHeader();
}

function renderHeader() {
  const me = session.me;
  if (!me) {
    clear(header, h('a', { class: 'brand', href: '#/' }, 'Sluice'));
    return;
  }
  const logoutError = errorBox('logout-error');
  const logout = h('button', { id: 'logout', class: 'link', type: 'button' }, 'Sign out');
  logout.addEventListener('click', async () => {
    try {
      await post('/logout');
    } catch (e) {
      showError(logoutError, e);
      return;
    }
    session.me = null;
    renderHeader();
    navigate('#/login');
  });
  clear(header,
    h('a', { class: 'brand', href: '#/projects' }, 'Sluice'),
    h('nav', { class: 'main-nav' },
      h('a', { href: '#/projects', id: 'nav-projects' }, 'Projects'),
      h('a', { href: '#/tokens', id: 'nav-tokens' }, 'API tokens'),
      h('a', { href: '#/account', id: 'nav-account' }, 'Account'),
      me.user.is_admin ? h('a', { href: '#/users', id: 'nav-users' }, 'Users') : null,
      me.user.is_admin ? h('a', { href: '#/workers', id: 'nav-workers' }, 'Workers') : null),
    h('span', { class: 'who' },
      h('span', { id: 'user-name' }, me.user.name),
      me.user.is_admin ? h('span', { class: 'tag' }, 'admin') : null,
      logout, logoutError));
}

async function route() {
  const gen = ++generation;
  if (cleanup) { try { cleanup(); } catch { /* a view's cleanup must not block navigation */ } }
  cleanup = null;
  const { parts, query } = parseHash();
  const ctx = {
    alive: () => gen === generation,
    query,
    session,
    navigate,
    refreshSession: loadMe,
  };

  if (parts[0] === 'login') {
    cleanup = await renderLogin(view, ctx) || null;
    return;
  }
  if (!session.me) {
    try {
      await loadMe();
    } catch (e) {
      clear(view, h('h2', null, 'Sluice'), errorBox('page-error'));
      showError(view.querySelector('.error'), e);
      return;
    }
    if (!session.me) {
      const next = location.hash && !location.hash.startsWith('#/login') ? location.hash : '';
      navigate('#/login' + (next ? '?next=' + encodeURIComponent(next) : ''));
      return;
    }
    if (gen !== generation) return;
  }

  clear(view, h('p', { class: 'loading' }, 'loading…'));
  let result;
  try {
    if (parts[0] === 'tokens') result = await renderTokens(view, ctx);
    else if (parts[0] === 'account') result = await renderAccount(view, ctx);
    else if (parts[0] === 'users') result = await renderUsers(view, ctx);
    else if (parts[0] === 'workers') result = await renderWorkers(view, ctx);
    else if (parts[0] === 'projects' && parts[1] && parts[2] === 'jobs' && parts[3]) {
      result = await renderJob(view, ctx, parts[1], parts[3], parts[4] || 'overview');
    } else if (parts[0] === 'projects' && parts[1]) {
      result = await renderProject(view, ctx, parts[1], parts[2] || 'jobs');
    } else if (parts[0] === 'projects' || parts.length === 0) {
      result = await renderProjects(view, ctx);
    } else {
      clear(view, h('h2', null, 'Not found'), h('p', null, 'No such page. ', h('a', { href: '#/projects' }, 'Projects')));
    }
  } catch (e) {
    if (gen !== generation) return;
    const box = errorBox('page-error');
    clear(view, h('h2', null, 'Something went wrong'), box);
    showError(box, e);
    return;
  }
  if (gen !== generation) {
    if (typeof result === 'function') result();
  } else {
    cleanup = typeof result === 'function' ? result : null;
  }
}

setUnauthorizedHandler(() => {
  if (!session.me) return;
  session.me = null;
  renderHeader();
  if (!location.hash.startsWith('#/login')) {
    navigate('#/login?next=' + encodeURIComponent(location.hash) + '&expired=1');
  }
});

window.addEventListener('hashchange', route);
route();
