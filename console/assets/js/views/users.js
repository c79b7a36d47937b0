// Users (global admins only): list and create accounts, which project
// admins then add to their projects as members.

import { get, post } from '../api.js';
import { h, clear, errorBox, act, field, table, fmtTime, section } from '../dom.js';

export async function renderUsers(root, ctx) {
  const list = h('div', { id: 'users-list' });
  const name = h('input', { id: 'user-new-name', autocomplete: 'off' });
  const password = h('input', { id: 'user-new-password', type: 'password', autocomplete: 'new-password' });
  const isAdmin = h('input', { id: 'user-new-admin', type: 'checkbox' });
  const create = h('button', { id: 'user-create', type: 'submit', class: 'primary' }, 'Create user');
  const error = errorBox('user-create-error');

  async function reload() {
    const users = await get('/users');
    if (!ctx.alive()) return;
    clear(list, table('users-table', [
      ['Name', (u) => u.name],
      ['Global admin', (u) => u.is_admin ? 'yes' : ''],
      ['Created', (u) => fmtTime(u.created_ms)],
    ], users));
  }

  const form = h('form', { id: 'user-form', class: 'inline' },
    field('Name', name), field('Password', password),
    h('label', { class: 'check' }, isAdmin, ' global admin'), create);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    await act(create, error, async () => {
      await post('/users', { name: name.value.trim(), password: password.value, is_admin: isAdmin.checked });
      name.value = ''; password.value = ''; isAdmin.checked = false;
      await reload();
    });
  });

  clear(root, h('h2', null, 'Users'), section('Create a user', form, error), section('All users', list));
  await reload();
}
