// A project: its jobs, connections (upstream/downstream data stores),
// members and event log, one tab each.

import { get, post, put, del, projectPath, seg } from '../api.js';
import { h, clear, errorBox, act, field, table, tabs, badge, fmtTime, section, nameOf, versionLabel, fmtJson } from '../dom.js';
import { effectiveRole, can, ROLES } from '../roles.js';

const TABS = [['jobs', 'Jobs'], ['connections', 'Connections'], ['members', 'Members'], ['events', 'Events']];

export async function renderProject(root, ctx, p, tab) {
  const info = await get(projectPath(p));
  if (!ctx.alive()) return;
  const role = effectiveRole(info.role, ctx.session.me);
  const base = `#/projects/${encodeURIComponent(p)}`;
  const body = h('div', { id: `project-${tab}` });
  clear(root,
    h('p', { class: 'crumbs' }, h('a', { href: '#/projects' }, 'Projects'), ' / '),
    h('h2', { id: 'project-title' }, p, ' ', h('span', { class: 'tag', id: 'project-role' }, role)),
    info.project && info.project.description ? h('p', { class: 'muted' }, info.project.description) : null,
    tabs(base, TABS, tab),
    body);
  const args = { ctx, p, role, info, base };
  switch (tab) {
    case 'connections': return renderConnections(body, args);
    case 'members': return renderMembers(body, args);
    case 'events': return renderEvents(body, args);
    default: return renderJobs(body, args);
  }
}

function roleNote(role, needed) {
  return can(role, needed) ? null : h('p', { class: 'note' }, `This needs the ${needed} role; you are ${role}.`);
}

async function renderJobs(root, { ctx, p, role }) {
  const list = h('div');
  async function reload() {
    const jobs = await get(`${projectPath(p)}/jobs`);
    if (!ctx.alive()) return;
    clear(list, table('jobs-table', [
      ['Job', (j) => {
        const name = nameOf(j.job ?? j.name);
        return h('a', { href: `#/projects/${encodeURIComponent(p)}/jobs/${encodeURIComponent(name)}/overview`, 'data-test': 'job-link' }, name);
      }],
      ['State', (j) => badge(j.state)],
      ['Version', (j) => versionLabel(j.version)],
      ['Description', (j) => (j.job && j.job.description) || ''],
    ], jobs, { empty: 'no jobs yet' }));
  }
  const name = h('input', { id: 'job-name', placeholder: 'lowercase letters, digits and -' });
  const description = h('input', { id: 'job-description' });
  const button = h('button', { id: 'job-create', type: 'submit', class: 'primary' }, 'Create job');
  const error = errorBox('job-create-error');
  const form = h('form', { id: 'job-form', class: 'inline' }, field('Name', name), field('Description', description), button);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const job = await act(button, error, () => post(`${projectPath(p)}/jobs`, { name: name.value.trim(), description: description.value.trim() }));
    if (job) ctx.navigate(`#/projects/${encodeURIComponent(p)}/jobs/${encodeURIComponent(job.name ?? name.value.trim())}/versions`);
  });
  clear(root, section('Jobs', list), section('New job', roleNote(role, 'developer'), form, error));
  await reload();
}

// Properties are edited as `key=value` lines (Kafka client settings).
function propertiesText(props) {
  if (!props) return '';
  const obj = typeof props === 'string' ? safeParse(props) : props;
  return Object.entries(obj || {}).map(([k, v]) => `${k}=${v}`).join('\n');
}

function safeParse(s) { try { return JSON.parse(s); } catch { return {}; } }

function parseProperties(text) {
  const out = {};
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`properties line ${i + 1}: expected key=value, got "${line}"`);
    out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return out;
}

async function renderConnections(root, { ctx, p, role }) {
  const list = h('div');
  const listError = errorBox('connections-error');
  const name = h('input', { id: 'conn-name', placeholder: 'e.g. events' });
  const kind = h('select', { id: 'conn-kind' }, ['kafka', 'database', 'redis'].map((k) => h('option', { value: k }, k)));
  const url = h('input', { id: 'conn-url', placeholder: 'kafka: host:9092,host2:9092 · database: postgres://user@host/db · redis: redis://host:6379' });
  const secret = h('input', { id: 'conn-secret', type: 'password', autocomplete: 'new-password', placeholder: 'password (write-only)' });
  const secretHint = h('small', { id: 'conn-secret-hint' }, 'Write-only: it is never shown again. Leave empty to keep the one set.');
  const properties = h('textarea', { id: 'conn-properties', rows: 3, placeholder: 'security.protocol=SASL_SSL' });
  const save = h('button', { id: 'conn-save', type: 'submit', class: 'primary' }, 'Save connection');
  const error = errorBox('conn-error');

  async function reload() {
    const conns = await get(`${projectPath(p)}/connections`);
    if (!ctx.alive()) return;
    clear(list, table('connections-table', [
      ['Name', (c) => c.name],
      ['Kind', (c) => c.kind],
      ['URL', (c) => h('code', null, c.url)],
      ['Secret', (c) => c.secret_set ? h('span', { class: 'tag ok', 'data-test': 'secret-set' }, 'secret set') : h('span', { class: 'muted' }, 'no secret')],
      ['Properties', (c) => propertiesText(c.properties) || '—'],
      ['', (c) => {
        const edit = h('button', { type: 'button', class: 'small', 'data-test': 'conn-edit' }, 'Edit');
        edit.addEventListener('click', () => {
          name.value = c.name; kind.value = c.kind; url.value = c.url; secret.value = '';
          properties.value = propertiesText(c.properties);
          secret.placeholder = c.secret_set ? 'secret set — type to replace' : 'password (write-only)';
          name.focus();
        });
        const remove = h('button', { type: 'button', class: 'small danger', 'data-test': 'conn-delete' }, 'Delete');
        remove.addEventListener('click', () => act(remove, listError, async () => {
          if (!confirm(`Delete the connection "${c.name}"? Jobs whose spec names it will fail to start.`)) return;
          await del(`${projectPath(p)}/connections/${seg(c.name)}`);
          await reload();
        }));
        return h('span', { class: 'actions' }, edit, remove);
      }],
    ], conns, { empty: 'no connections; add the Kafka cluster, database or Redis your jobs use' }));
  }

  const form = h('form', { id: 'conn-form', class: 'grid' },
    field('Name', name), field('Kind', kind), field('URL', url, 'Without the password; put it in the secret.'),
    field('Secret', secret, secretHint), field('Properties', properties, 'key=value per line (client settings)'),
    h('div', null, save));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    await act(save, error, async () => {
      const body = { kind: kind.value, url: url.value.trim(), properties: parseProperties(properties.value) };
      if (secret.value) body.secret = secret.value;
      await put(`${projectPath(p)}/connections/${seg(name.value.trim())}`, body);
      secret.value = '';
      await reload();
    });
  });
  clear(root,
    section('Connections', h('p', { class: 'muted' }, 'Specs name these in ', h('code', null, 'connection = "NAME"'), '.'), listError, list),
    section('Add or edit a connection', roleNote(role, 'admin'), form, error));
  await reload();
}

async function renderMembers(root, { ctx, p, role, info }) {
  const listError = errorBox('members-error');
  const list = h('div');
  function draw(members) {
    clear(list, table('members-table', [
      ['User', (m) => m.user],
      ['Role', (m) => m.role],
      ['', (m) => {
        const b = h('button', { type: 'button', class: 'small danger', 'data-test': 'member-remove' }, 'Remove');
        b.addEventListener('click', () => act(b, listError, async () => {
          await del(`${projectPath(p)}/members/${seg(m.user)}`);
          await reload();
        }));
        return b;
      }],
    ], members, { empty: 'no members' }));
  }
  async function reload() {
    const fresh = await get(projectPath(p));
    if (ctx.alive()) draw(fresh.members || []);
  }
  const user = h('input', { id: 'member-user', placeholder: 'user name' });
  const roleSelect = h('select', { id: 'member-role' }, ROLES.map((r) => h('option', { value: r }, r)));
  const save = h('button', { id: 'member-save', type: 'submit', class: 'primary' }, 'Set role');
  const error = errorBox('member-error');
  const form = h('form', { id: 'member-form', class: 'inline' }, field('User', user), field('Role', roleSelect), save);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    await act(save, error, async () => {
      await put(`${projectPath(p)}/members/${seg(user.value.trim())}`, { role: roleSelect.value });
      user.value = '';
      await reload();
    });
  });
  clear(root,
    section('Members', h('p', { class: 'muted' }, 'viewer reads; developer adds jobs, versions, debug runs and deployments; operator starts, stops, snapshots, restores and sets parameters; admin manages members and connections.'), listError, list),
    section('Add a member or change a role', roleNote(role, 'admin'), form, error));
  draw(info.members || []);
}

async function renderEvents(root, { ctx, p }) {
  const kind = h('select', { id: 'events-kind' }, [['', 'all'], ['audit', 'audit'], ['run', 'run'], ['error', 'error']].map(([v, l]) => h('option', { value: v }, l)));
  const job = h('input', { id: 'events-job', placeholder: 'job name (optional)' });
  const limit = h('input', { id: 'events-limit', type: 'number', min: 1, value: '100' });
  const refresh = h('button', { id: 'events-refresh', type: 'submit' }, 'Show');
  const error = errorBox('events-error');
  const list = h('div');
  // Events carry job ids; the table shows names.
  let jobNames = new Map();
  async function reload() {
    const [events, jobs] = await Promise.all([
      get(`${projectPath(p)}/events`, { kind: kind.value, job: job.value.trim(), limit: limit.value }),
      get(`${projectPath(p)}/jobs`).catch(() => []),
    ]);
    if (!ctx.alive()) return;
    jobNames = new Map(jobs.map((j) => [j.job && j.job.id, j.job && j.job.name]));
    clear(list, eventsTable('events-table', events, jobNames));
  }
  const form = h('form', { class: 'inline' }, field('Kind', kind), field('Job', job), field('Limit', limit), refresh);
  form.addEventListener('submit', (ev) => { ev.preventDefault(); act(refresh, error, reload); });
  clear(root, section('Events', form, error, list));
  await reload();
}

// `jobNames`: job id → name, for the Job column (optional).
export function eventsTable(id, events, jobNames) {
  return table(id, [
    ['Time', (e) => fmtTime(e.created_ms)],
    ['Kind', (e) => h('span', { class: `tag kind-${e.kind}` }, e.kind)],
    ['Job', (e) => e.job ?? (e.job_id && jobNames ? jobNames.get(e.job_id) ?? '' : '')],
    ['Who', (e) => e.actor ?? 'system'],
    ['Action', (e) => e.action],
    ['Detail', (e) => h('span', { class: 'detail' }, fmtJson(e.detail))],
  ], events, { empty: 'no events' });
}
