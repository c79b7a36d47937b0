// What happened to a job: its snapshots (with restore), runs, exceptions
// (errors and dead letters with reasons) and recent log lines.

import { get, post, jobPath } from '../api.js';
import { h, clear, errorBox, act, table, section, badge, fmtTime, fmtJson, versionLabel } from '../dom.js';
import { logsTable } from './job_debug.js';
import { eventsTable } from './project.js';
import { versionOf } from './job_overview.js';

export async function renderSnapshots(root, args) {
  const { ctx, p, j } = args;
  const error = errorBox('snapshots-error');
  const status = h('p', { id: 'snapshots-status', class: 'status' });
  const list = h('div');
  async function reload() {
    const snapshots = await get(`${jobPath(p, j)}/snapshots`);
    if (!ctx.alive()) return;
    clear(list, table('snapshots-table', [
      ['Id', (s) => h('code', { class: 'snapshot-id' }, s.id)],
      ['Taken', (s) => fmtTime(s.created_ms)],
      ['Trigger', (s) => s.trigger],
      ['Kind', (s) => s.incremental ? 'incremental' : 'full'],
      ['Positions', (s) => positionsText(s.positions)],
      ['', (s) => {
        const b = h('button', { type: 'button', class: 'small', 'data-test': 'snapshot-restore' }, 'Restore');
        b.addEventListener('click', () => act(b, error, async () => {
          if (!confirm(`Restore snapshot ${s.id}? A running job is stopped first.`)) return;
          const run = await post(`${jobPath(p, j)}/restore`, { snapshot: s.id });
          clear(status, 'Restored: run ', h('code', null, run.id ?? ''), ' is ', badge(run.state));
          args.setState(run.state);
        }));
        return b;
      }],
    ], snapshots, { empty: 'no snapshots yet', rowAttrs: (s) => ({ 'data-snapshot': s.id }) }));
  }
  const refresh = h('button', { type: 'button', id: 'snapshots-refresh', class: 'small' }, 'Refresh');
  refresh.addEventListener('click', () => act(refresh, error, reload));
  clear(root, section('Snapshots', h('div', { class: 'inline' }, refresh), status, error, list));
  try {
    await reload();
  } catch (e) {
    error.textContent = e.message;
  }
}

function positionsText(positions) {
  if (!Array.isArray(positions) || !positions.length) return '—';
  return positions.map((x) => typeof x === 'object'
    ? `${x.source ?? ''}[${x.partition ?? 0}]@${x.next_offset ?? x.offset ?? ''}` : String(x)).join(', ');
}

export async function renderRuns(root, args) {
  const { ctx, p, j } = args;
  const runs = await get(`${jobPath(p, j)}/runs`);
  if (!ctx.alive()) return;
  clear(root, section('Runs', table('runs-table', [
    ['Run', (r) => h('code', null, r.id)],
    ['State', (r) => badge(r.state)],
    ['Version', (r) => versionLabel(versionOf(args.info, r.version_id))],
    ['Started', (r) => fmtTime(r.started_ms ?? r.scheduled_ms ?? r.created_ms)],
    ['Ended', (r) => fmtTime(r.ended_ms)],
    ['Restored from', (r) => r.restore_from || 'none'],
    ['By', (r) => r.created_by || ''],
    ['Error', (r) => r.error ? h('span', { class: 'error-text' }, r.error) : ''],
  ], runs, { empty: 'no runs yet', rowAttrs: (r) => ({ 'data-run': r.id }) })));
}

export async function renderExceptions(root, args) {
  const { ctx, p, j } = args;
  const ex = await get(`${jobPath(p, j)}/exceptions`);
  if (!ctx.alive()) return;
  clear(root,
    section('Errors', eventsTable('exceptions-errors', ex.errors || [], new Map([[args.info.job.id, args.info.job.name]]))),
    section('Dead letters', h('p', { id: 'exceptions-dead-letter-counts', class: 'muted' },
      `${ex.dead_letters_kept ?? 0} kept` +
        (ex.dead_letters_dropped ? `, ${ex.dead_letters_dropped} older ones dropped (over the platform's bound)` : '')),
    table('exceptions-dead-letters', [
      ['Reason', (d) => h('span', { class: 'reason' }, d.reason)],
      ['Sink', (d) => d.sink ?? ''],
      ['Source', (d) => d.source ?? ''],
      ['Partition', (d) => d.partition ?? ''],
      ['Offset', (d) => d.offset ?? ''],
      ['Value', (d) => h('code', { class: 'value' }, fmtJson(d.value))],
    ], ex.dead_letters || [], { empty: 'no dead letters' })));
}

export async function renderLogs(root, args) {
  const { ctx, p, j } = args;
  const box = h('div');
  const error = errorBox('logs-error');
  const auto = h('input', { type: 'checkbox', id: 'logs-auto', checked: true });
  let timer = null;
  let stopped = false;
  async function reload() {
    try {
      const logs = await get(`${jobPath(p, j)}/logs`);
      if (stopped || !ctx.alive()) return;
      error.textContent = '';
      clear(box, logsTable('logs-table', logs));
    } catch (e) {
      error.textContent = e.message;
    }
    if (!stopped && auto.checked && ctx.alive()) timer = setTimeout(reload, 2000);
  }
  auto.addEventListener('change', () => { clearTimeout(timer); if (auto.checked) reload(); });
  clear(root, section('Logs', h('label', { class: 'check' }, auto, ' follow'), error, box));
  await reload();
  return () => { stopped = true; clearTimeout(timer); };
}
