// The signed-in user's account: change the password (the other browser
// sessions are signed out), and sign out everywhere.

import { post, del } from '../api.js';
import { h, clear, errorBox, act, field, section } from '../dom.js';

export async function renderAccount(root, ctx) {
  const old = h('input', { id: 'account-old-password', type: 'password', autocomplete: 'current-password' });
  const fresh = h('input', { id: 'account-new-password', type: 'password', autocomplete: 'new-password' });
  const again = h('input', { id: 'account-new-password-again', type: 'password', autocomplete: 'new-password' });
  const change = h('button', { id: 'account-change-password', type: 'submit', class: 'primary' }, 'Change password');
  const changeError = errorBox('account-password-error');
  const changed = h('p', { id: 'account-password-changed', class: 'ok' });
  const form = h('form', { id: 'account-password-form', class: 'grid' },
    field('Current password', old), field('New password', fresh, 'At least 8 characters.'), field('New password again', again),
    h('div', { class: 'form-actions' }, change, changeError, changed));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    changed.textContent = '';
    await act(change, changeError, async () => {
      if (fresh.value !== again.value) throw new Error('the two new passwords differ');
      await post('/me/password', { old_password: old.value, new_password: fresh.value });
      old.value = ''; fresh.value = ''; again.value = '';
      changed.textContent = 'Password changed; your other browser sessions are signed out.';
    });
  });

  const everywhere = h('button', { id: 'account-sign-out-everywhere', type: 'button', class: 'danger' }, 'Sign out everywhere');
  const everywhereError = errorBox('account-sessions-error');
  everywhere.addEventListener('click', () => act(everywhere, everywhereError, async () => {
    if (!confirm('Sign out of every browser, this one too? API tokens keep working.')) return;
    await del('/me/sessions');
    ctx.session.me = null;
    ctx.navigate('#/login');
  }));

  clear(root,
    h('h2', null, 'Account: ', h('span', { id: 'account-name' }, ctx.session.me.user.name)),
    section('Password', form),
    section('Sessions', h('p', { class: 'muted' }, 'Ends every browser session of yours; API tokens are managed under API tokens.'),
      everywhere, everywhereError));
}
