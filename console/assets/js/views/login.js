// Sign in: POST /login sets the session cookie.

import { post } from '../api.js';
import { h, clear, errorBox, act, field } from '../dom.js';

export async function renderLogin(root, ctx) {
  const name = h('input', { id: 'login-name', name: 'name', autocomplete: 'username', autofocus: true });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password' });
  const submit = h('button', { id: 'login-submit', type: 'submit', class: 'primary' }, 'Sign in');
  const error = errorBox('login-error');
  const form = h('form', { id: 'login-form', class: 'login card' },
    h('h2', null, 'Sign in to Sluice'),
    ctx.query.get('expired') ? h('p', { class: 'note' }, 'Your session has ended; please sign in again.') : null,
    field('User name', name),
    field('Password', password),
    submit,
    error);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const ok = await act(submit, error, async () => {
      await post('/login', { name: name.value.trim(), password: password.value });
      return true;
    });
    if (!ok) return;
    await ctx.refreshSession();
    const next = ctx.query.get('next');
    ctx.navigate(next && next.startsWith('#/') && !next.startsWith('#/login') ? next : '#/projects');
  });
  clear(root, form);
  name.focus();
}
