// API tokens of the signed-in user: for scripts and the `sluice` CLI
// (`Authorization: Bearer <token>`). A new token is shown once; every
// token expires (90 days unless given fewer or more, up to the console's most).

import { get, post, del, seg } from '../api.js';
import { h, clear, errorBox, act, field, table, fmtTime, section } from '../dom.js';

export async function renderTokens(root, ctx) {
  const list = h('div', { id: 'tokens-list' });
  const listError = errorBox('tokens-error');
  const name = h('input', { id: 'token-name', placeholder: 'e.g. ci-deploy' });
  const days = h('input', { id: 'token-days', type: 'number', min: 1, placeholder: '90' });
  const create = h('button', { id: 'token-create', type: 'submit', class: 'primary' }, 'Create token');
  const createError = errorBox('token-create-error');
  const created = h('div', { id: 'token-created' });

  async function reload() {
    const tokens = await get('/tokens');
    if (!ctx.alive()) return;
    clear(list, table('tokens-table', [
      ['Name', (t) => t.name],
      ['Created', (t) => fmtTime(t.created_ms)],
      ['Expires', (t) => fmtTime(t.expires_ms)],
      ['', (t) => {
        const b = h('button', { type: 'button', class: 'danger small', 'data-test': 'token-delete', 'data-token': t.name }, 'Delete');
        b.addEventListener('click', () => act(b, listError, async () => {
          if (!confirm(`Delete the token "${t.name}"? Scripts using it stop working.`)) return;
          await del(`/tokens/${seg(t.id)}`);
          await reload();
        }));
        return b;
      }],
    ], tokens, { empty: 'no API tokens' }));
  }

  const form = h('form', { id: 'token-form', class: 'inline' },
    field('Name', name), field('Expires in (days)', days, 'Default 90; the console sets the most.'), create);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    await act(create, createError, async () => {
      const body = { name: name.value.trim() };
      if (days.value.trim()) body.expires_in_days = Number(days.value);
      const answer = await post('/tokens', body);
      const token = answer.token ?? answer.secret ?? '';
      clear(created,
        h('div', { class: 'notice' },
          h('p', null, 'Your new token — copy it now, it is not shown again:'),
          h('code', { id: 'token-secret', class: 'secret' }, token),
          h('p', null, h('small', null, 'Use it as ', h('code', null, 'Authorization: Bearer <token>'), '.'))));
      name.value = ''; days.value = '';
      await reload();
    });
  });

  clear(root,
    h('h2', null, 'API tokens'),
    section('Create a token', form, createError, created),
    section('Your tokens', listError, list));
  await reload();
}
