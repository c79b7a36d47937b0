// Debug (develop step 3.4) and Preview (the data check of step 4.2): run
// the job on pasted JSON lines, or on the first records of its live
// sources, with sinks disabled, and show what it would emit per sink, the
// records it rejects (dead letters, with reasons) and its log lines.

import { post, jobPath } from '../api.js';
import { h, clear, errorBox, act, field, table, section, fmtJson } from '../dom.js';
import { SPEC_TEMPLATE, versionSelect } from './job_deployment.js';

export async function renderDebug(root, args) {
  const { p, j, info } = args;
  const d = info.deployment;
  if (!(info.versions || []).length) {
    clear(root, section('Debug', h('p', { class: 'muted' }, 'Upload a version first: ', h('a', { href: `${args.base}/versions` }, 'Versions'), '.')));
    return;
  }
  const version = versionSelect('debug-version', info.versions, d ? d.version_id : null);
  const spec = h('textarea', { id: 'debug-spec', rows: 12, spellcheck: 'false', class: 'code' });
  spec.value = d ? d.spec : SPEC_TEMPLATE;
  const modePaste = h('input', { type: 'radio', name: 'debug-mode', id: 'debug-mode-paste', value: 'paste', checked: true });
  const modeTopic = h('input', { type: 'radio', name: 'debug-mode', id: 'debug-mode-topic', value: 'topic' });
  const records = h('textarea', { id: 'debug-records', rows: 8, spellcheck: 'false', class: 'code', placeholder: '{"id": 1, "amount": 12.5}\n{"id": 2, "amount": 7}' });
  const fromTopic = h('input', { id: 'debug-from-topic', type: 'number', min: 1, value: '10' });
  const source = h('input', { id: 'debug-source', placeholder: 'the first source' });
  const run = h('button', { id: 'debug-run', type: 'submit', class: 'primary' }, 'Run debug');
  const error = errorBox('debug-error');
  const result = h('div', { id: 'debug-result' });

  const pasteBox = field('Records (JSON lines)', records);
  const topicBox = field('First N records of the live topic', fromTopic);
  const syncMode = () => { pasteBox.hidden = !modePaste.checked; topicBox.hidden = !modeTopic.checked; };
  modePaste.addEventListener('change', syncMode);
  modeTopic.addEventListener('change', syncMode);
  syncMode();

  const form = h('form', { id: 'debug-form', class: 'grid' },
    field('Version', version),
    field('Spec (TOML)', spec, d ? 'The deployment\'s spec; edits here apply to this run only.' : 'No deployment yet: the spec for this run.'),
    h('fieldset', { class: 'choice' }, h('legend', null, 'Input'),
      h('label', { class: 'check' }, modePaste, ' paste JSON lines'),
      h('label', { class: 'check' }, modeTopic, ' first records of the live topic')),
    pasteBox, topicBox,
    field('Source', source, 'Which source the records feed (optional).'),
    h('div', { class: 'form-actions' }, run, error));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(result);
    await act(run, error, async () => {
      const body = { version: Number(version.value), spec: spec.value };
      if (modePaste.checked) {
        if (!records.value.trim()) throw new Error('paste at least one JSON line');
        body.records = records.value;
      } else {
        body.from_topic = Number(fromTopic.value) || 10;
      }
      if (source.value.trim()) body.source = source.value.trim();
      const answer = await post(`${jobPath(p, j)}/debug`, body);
      renderOutcome(result, answer, 'debug');
    });
  });
  clear(root, section('Debug run', h('p', { class: 'muted' }, 'Sinks are disabled: nothing is written anywhere.'), form), result);
}

export async function renderPreview(root, args) {
  const { p, j, info } = args;
  const limit = h('input', { id: 'preview-limit', type: 'number', min: 1, value: '20' });
  const run = h('button', { id: 'preview-run', type: 'submit', class: 'primary' }, 'Check data');
  const error = errorBox('preview-error');
  const result = h('div', { id: 'preview-result' });
  const form = h('form', { id: 'preview-form', class: 'inline' }, field('Records', limit), run);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(result);
    await act(run, error, async () => {
      const answer = await post(`${jobPath(p, j)}/preview`, { limit: Number(limit.value) || 20 });
      renderOutcome(result, answer, 'preview');
    });
  });
  clear(root,
    section('Data check',
      h('p', { class: 'muted' }, info.deployment
        ? 'Runs the deployed version on the first records of the deployment\'s live sources, with sinks disabled.'
        : 'Save a deployment first: the check reads its live sources.'),
      form, error),
    result);
}

// The answer of a debug or preview run: rows per sink, dead letters, logs.
export function renderOutcome(root, answer, prefix) {
  const rows = answer.rows || [];
  const bySink = new Map();
  for (const r of rows) {
    if (!bySink.has(r.sink)) bySink.set(r.sink, []);
    bySink.get(r.sink).push(r);
  }
  const deadLetters = answer.dead_letters || [];
  const logs = answer.logs || [];
  clear(root,
    h('p', { class: 'summary', id: `${prefix}-summary` },
      h('span', { id: `${prefix}-records-in`, 'data-value': answer.records_in ?? 0 }, `${answer.records_in ?? 0} records in`), ' → ',
      h('span', { id: `${prefix}-rows-count`, 'data-value': rows.length }, `${rows.length} rows`), ', ',
      h('span', { id: `${prefix}-dead-count`, 'data-value': deadLetters.length }, `${deadLetters.length} dead letters`), ', ',
      `${logs.length} log lines`),
    bySink.size === 0 ? section('Rows', h('p', { class: 'muted' }, 'The job emitted no rows.')) : null,
    [...bySink.entries()].map(([sink, list]) => section(`Sink ${sink}`,
      table(`${prefix}-rows-${sink}`, [
        ['#', (_, i) => i + 1],
        ['Op', (r) => h('span', { class: `tag op-${r.op}` }, r.op)],
        ['Key', (r) => r.key === null || r.key === undefined ? '—' : h('code', null, fmtJson(r.key))],
        ['Value', (r) => h('code', { class: 'value' }, fmtJson(r.value))],
      ], list, { rowAttrs: () => ({ 'data-sink': sink, class: 'emitted-row' }) }))),
    section('Dead letters', table(`${prefix}-dead-letters`, [
      ['Reason', (d) => h('span', { class: 'reason' }, d.reason)],
      ['Position', (d) => fmtJson(d.position ?? [d.source, d.partition, d.offset].filter((x) => x !== undefined).join('/'))],
      ['Value', (d) => h('code', { class: 'value' }, fmtJson(d.value))],
    ], deadLetters, { empty: 'no dead letters' })),
    section('Logs', logsTable(`${prefix}-logs`, logs)));
}

export function logsTable(id, logs) {
  return table(id, [
    ['Level', (l) => h('span', { class: `tag level-${l.level}` }, l.level)],
    ['Message', (l) => h('span', { class: 'log-message' }, l.message)],
  ], logs, { empty: 'no log lines' });
}
