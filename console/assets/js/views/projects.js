// Projects: the caller's (all of them for a global admin); global admins
// create new ones (step 1 of the job development flow).

import { get, post } from '../api.js';
import { h, clear, errorBox, act, field, table, fmtTime, section } from '../dom.js';

export async function renderProjects(root, ctx) {
  const me = ctx.session.me;
  const roles = new Map((me.projects || []).map((p) => [p.name, p.role]));
  const projects = await get('/projects');
  if (!ctx.alive()) return;

  const list = table('projects-table', [
    ['Project', (p) => h('a', { href: `#/projects/${encodeURIComponent(p.name)}/jobs`, 'data-test': 'project-link' }, p.name)],
    ['Description', (p) => p.description || ''],
    ['Your role', (p) => roles.get(p.name) || (me.user.is_admin ? 'admin (global)' : '—')],
    ['Created', (p) => fmtTime(p.created_ms)],
  ], projects, { empty: me.user.is_admin ? 'no projects yet — create one below' : 'you are not a member of any project yet; ask an admin to add you' });

  let create = null;
  if (me.user.is_admin) {
    const name = h('input', { id: 'project-name', placeholder: 'lowercase letters, digits and -' });
    const description = h('input', { id: 'project-description', placeholder: 'what the project is for' });
    const button = h('button', { id: 'project-create', type: 'submit', class: 'primary' }, 'Create project');
    const error = errorBox('project-create-error');
    const form = h('form', { id: 'project-form', class: 'inline' },
      field('Name', name), field('Description', description), button);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const project = await act(button, error, () =>
        post('/projects', { name: name.value.trim(), description: description.value.trim() }));
      if (!project) return;
      await ctx.refreshSession();
      ctx.navigate(`#/projects/${encodeURIComponent(project.name ?? name.value.trim())}/jobs`);
    });
    create = section('New project', form, error);
  }

  clear(root, h('h2', null, 'Projects'), section('Projects', list), create);
}
