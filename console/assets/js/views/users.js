// Users (global admins only): list and create accounts, which project
// admins then add to their projects as members; set a user's password,
// disable or enable it, and end all its sessions and tokens.

import { get, post, put, patch, del, seg } from '../api.js';
import { h, clear, errorBox, act, field, table, fmtTime, section } from '../dom.js';

export async function renderUsers(root, ctx) {
  const list = h('div', { id: 'users-list' });
  const listError = errorBox('users-error');
  const name = h('input', { id: 'user-new-name', autocomplete: 'off' });
  const password = h('input', { id: 'user-new-password', type: 'password', autocomplete: 'new-password' });
  const isAdmin = h('input', { id: 'user-new-admin', type: 'checkbox' });
  const create = h('button', { id: 'user-create', type: 'submit', class: 'primary' }, 'Create user');
  const error = errorBox('user-create-error');

  const rowButton = (label, test, user, cls, fn) => {
    const b = h('button', { type: 'button', class: `${cls} small`, 'data-test': test, 'data-user': user.name }, label);
    b.addEventListener('click', () => act(b, listError, fn));
    return b;
  };

  async function reload() {
    const users = await get('/users');
    if (!ctx.alive()) return;
    clear(list, table('users-table', [
      ['Name', (u) => u.name],
      ['Global admin', (u) => u.is_admin ? 'yes' : ''],
      ['State', (u) => u.disabled ? 'disabled' : 'active'],
      ['Created', (u) => fmtTime(u.created_ms)],
      ['', (u) => h('span', { class: 'actions' },
        rowButton(u.disabled ? 'Enable' : 'Disable', 'user-toggle', u, u.disabled ? 'secondary' : 'danger', async () => {
          if (!u.disabled && !confirm(`Disable "${u.name}"? Its sessions and API tokens stop working.`)) return;
          await patch(`/users/${seg(u.name)}`, { disabled: !u.disabled });
          await reload();
        }),
        rowButton('Revoke sessions', 'user-revoke', u, 'secondary', async () => {
          if (!confirm(`End every session and API token of "${u.name}"?`)) return;
          await del(`/users/${seg(u.name)}/credentials`);
          await reload();
        }))],
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

  const resetName = h('input', { id: 'user-reset-name', autocomplete: 'off' });
  const resetPassword = h('input', { id: 'user-reset-password', type: 'password', autocomplete: 'new-password' });
  const reset = h('button', { id: 'user-reset', type: 'submit', class: 'primary' }, 'Set password');
  const resetError = errorBox('user-reset-error');
  const resetDone = h('p', { id: 'user-reset-done', class: 'ok' });
  const resetForm = h('form', { id: 'user-reset-form', class: 'inline' },
    field('User', resetName), field('New password', resetPassword), reset);
  resetForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    resetDone.textContent = '';
    await act(reset, resetError, async () => {
      const who = resetName.value.trim();
      await put(`/users/${seg(who)}/password`, { password: resetPassword.value });
      resetName.value = ''; resetPassword.value = '';
      resetDone.textContent = `Password of ${who} set; its browser sessions are signed out.`;
    });
  });

  clear(root, h('h2', null, 'Users'),
    section('Create a user', form, error),
    section('Set a password', resetForm, resetError, resetDone),
    section('All users', listError, list));
  await reload();
}
