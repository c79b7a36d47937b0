// Versions: upload a compiled component (`sluice build` → .wasm). The
// server validates it (contract version, exports, ABI) and refuses it
// with the reason, shown under the form.

import { get, post, jobPath } from '../api.js';
import { h, clear, errorBox, act, field, table, fmtTime, fmtBytes, section } from '../dom.js';

// What a version declares about its state (`Job::STATE_KEYING`), which
// decides whether it may run at parallelism above 1.
function stateKeying(keying) {
  if (keying === 'by-record-key') return h('span', { class: 'tag ok', title: 'every state entry belongs to one record key: may run split by partition' }, 'by record key');
  if (keying === 'global') return h('span', { class: 'tag', title: 'state combines record keys: runs at parallelism 1 only' }, 'global · parallelism 1');
  return '';
}

export async function renderVersions(root, args) {
  const { ctx, p, j } = args;
  const file = h('input', { id: 'version-file', type: 'file', accept: '.wasm,application/wasm' });
  const note = h('input', { id: 'version-note', placeholder: 'what changed (optional)' });
  const upload = h('button', { id: 'version-upload', type: 'submit', class: 'primary' }, 'Upload version');
  const validate = h('button', { id: 'version-validate', type: 'button' }, 'Validate only');
  const error = errorBox('version-error');
  const result = h('div', { id: 'version-result' });
  const list = h('div');

  function draw(versions, deployment) {
    clear(list, table('versions-table', [
      ['Version', (v) => h('strong', null, `v${v.number}`)],
      ['Hash', (v) => h('code', { title: v.hash }, (v.hash || '').slice(0, 12))],
      ['Size', (v) => fmtBytes(v.size)],
      ['State', (v) => stateKeying(v.state_keying)],
      ['Note', (v) => v.note || ''],
      ['Uploaded', (v) => fmtTime(v.created_ms)],
      ['By', (v) => v.created_by || ''],
      ['', (v) => deployment && deployment.version_id === v.id ? h('span', { class: 'tag ok' }, 'deployed') : ''],
    ], [...versions].sort((a, b) => b.number - a.number), { empty: 'no versions yet — upload a .wasm built with `sluice build`', rowAttrs: (v) => ({ 'data-version': v.number }) }));
  }

  async function reload() {
    const [versions, info] = await Promise.all([get(`${jobPath(p, j)}/versions`), args.reloadInfo()]);
    if (ctx.alive()) draw(versions, info.deployment);
  }

  async function bytes() {
    const f = file.files && file.files[0];
    if (!f) throw new Error('choose a .wasm file first');
    return [f, await f.arrayBuffer()];
  }

  const form = h('form', { id: 'version-form', class: 'inline' },
    field('Component (.wasm)', file), field('Note', note), upload, validate);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    await act(upload, error, async () => {
      const [f, buf] = await bytes();
      const version = await post(`${jobPath(p, j)}/versions`, buf, { contentType: 'application/wasm', query: { note: note.value.trim() } });
      clear(result, h('p', { class: 'ok', id: 'version-uploaded' }, `Uploaded ${f.name} as v${version.number} (${fmtBytes(version.size)}).`));
      file.value = ''; note.value = '';
      await reload();
    });
  });
  validate.addEventListener('click', () => act(validate, error, async () => {
    const [f, buf] = await bytes();
    const answer = await post('/validate', buf, { contentType: 'application/wasm' });
    const keying = answer.state_keying === 'by-record-key' ? 'state keyed by the record key: may run in parallel' : 'state global: runs at parallelism 1';
    clear(result, h('p', { class: 'ok', id: 'version-valid' }, `${f.name} is a valid job component (${fmtBytes(answer.size)}, ${String(answer.hash).slice(0, 12)}; ${keying}).`));
  }));

  clear(root,
    section('Upload a version', h('p', { class: 'muted' }, 'Build the job with ', h('code', null, 'sluice build'), ' and upload the component it prints.'), form, error, result),
    section('Versions', list));
  draw(args.info.versions || [], args.info.deployment);
}
