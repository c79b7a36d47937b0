// Operate (production steps 5 and 6): start (from no state, the latest
// snapshot or a chosen one; at a source position; now or at a time), stop
// with or without a snapshot, snapshot now, restore, upgrade to another
// version with state, and change parameters.

import { get, post, jobPath } from '../api.js';
import { h, clear, errorBox, act, field, section, badge, fmtTime } from '../dom.js';
import { paramsEditor } from '../params.js';
import { versionSelect } from './job_deployment.js';

// "2024-03-15T08:00" (local, from datetime-local) → RFC 3339 in UTC.
function localToRfc3339(v) {
  const d = new Date(v);
  if (isNaN(d)) throw new Error(`"${v}" is not a date and time`);
  return d.toISOString();
}

export async function renderOperate(root, args) {
  const { ctx, p, j } = args;
  const path = jobPath(p, j);
  const status = h('p', { id: 'operate-status', class: 'status' });
  const snapshotsError = errorBox('operate-snapshots-error');
  let snapshots = [];
  try {
    snapshots = await get(`${path}/snapshots`);
  } catch (e) {
    snapshotsError.textContent = `Snapshots cannot be listed: ${e.message}`;
  }
  if (!ctx.alive()) return;

  function showRun(run, what) {
    if (!run) return;
    clear(status, `${what}: run `, h('code', { id: 'operate-run-id' }, run.id ?? ''), ' is ', badge(run.state),
      run.scheduled_ms ? ` (scheduled for ${fmtTime(run.scheduled_ms)})` : '');
    args.setState(run.state);
  }
  async function refreshSnapshots() {
    try {
      snapshots = await get(`${path}/snapshots`);
      snapshotsError.textContent = '';
    } catch (e) {
      snapshotsError.textContent = `Snapshots cannot be listed: ${e.message}`;
    }
    fillSnapshotChoices();
  }

  // Start.
  const restore = h('select', { id: 'start-restore' },
    h('option', { value: 'latest' }, 'the latest snapshot (none: a fresh start)'),
    h('option', { value: 'none' }, 'no state (a fresh start)'),
    h('option', { value: 'snapshot' }, 'a snapshot…'));
  const snapshotList = h('datalist', { id: 'snapshot-ids' });
  const snapshotId = h('input', { id: 'start-snapshot-id', list: 'snapshot-ids', placeholder: 'snapshot id', class: 'code' });
  const snapshotIdField = field('Snapshot', snapshotId);
  const position = h('select', { id: 'start-position' },
    h('option', { value: '' }, 'as the spec says (or the snapshot\'s positions)'),
    h('option', { value: 'earliest' }, 'earliest'),
    h('option', { value: 'latest' }, 'latest'),
    h('option', { value: 'timestamp' }, 'from a time…'));
  const positionTime = h('input', { id: 'start-position-time', type: 'datetime-local', step: 1 });
  const positionTimeField = field('Records from', positionTime);
  const at = h('input', { id: 'start-at', type: 'datetime-local', step: 1 });
  const start = h('button', { id: 'start-button', type: 'submit', class: 'primary' }, 'Start');
  const startError = errorBox('start-error');
  const sync = () => {
    snapshotIdField.hidden = restore.value !== 'snapshot';
    positionTimeField.hidden = position.value !== 'timestamp';
  };
  restore.addEventListener('change', sync);
  position.addEventListener('change', sync);
  sync();
  const startForm = h('form', { id: 'start-form', class: 'grid' },
    field('Restore', restore), snapshotIdField, snapshotList,
    field('Start position', position, 'Where sources without a restored position begin.'), positionTimeField,
    field('Start at (optional)', at, 'Empty: now. Otherwise the run is scheduled.'),
    h('div', { class: 'form-actions' }, start, startError));
  startForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    await act(start, startError, async () => {
      let restoreValue = restore.value;
      if (restoreValue === 'snapshot') {
        restoreValue = snapshotId.value.trim();
        if (!restoreValue) throw new Error('choose the snapshot to restore');
      }
      const body = { restore: restoreValue };
      if (position.value === 'timestamp') {
        if (!positionTime.value) throw new Error('choose the time to read records from');
        body.start_position = localToRfc3339(positionTime.value);
      } else if (position.value) {
        body.start_position = position.value;
      }
      if (at.value) body.at = localToRfc3339(at.value);
      showRun(await post(`${path}/start`, body), 'Started');
    });
  });

  // Stop.
  const stopSnapshot = h('input', { id: 'stop-snapshot', type: 'checkbox', checked: true });
  const stop = h('button', { id: 'stop-button', type: 'button', class: 'danger' }, 'Stop');
  const stopError = errorBox('stop-error');
  stop.addEventListener('click', () => act(stop, stopError, async () => {
    showRun(await post(`${path}/stop`, { snapshot: stopSnapshot.checked }), 'Stopped');
    await refreshSnapshots();
  }));

  // Snapshot now.
  const snap = h('button', { id: 'snapshot-button', type: 'button' }, 'Take a snapshot now');
  const snapError = errorBox('snapshot-error');
  const snapResult = h('p', { id: 'snapshot-taken', class: 'ok' });
  snap.addEventListener('click', () => act(snap, snapError, async () => {
    snapResult.textContent = '';
    // One snapshot per partition group (an array), or one object.
    const answer = await post(`${path}/snapshots`);
    const taken = Array.isArray(answer) ? answer : [answer];
    const ids = taken.map((s) => s.id).join(', ');
    snapResult.textContent = `Snapshot ${ids} taken.`;
    snapResult.dataset.snapshot = ids;
    await refreshSnapshots();
  }));

  // Restore.
  const restoreSelect = h('select', { id: 'restore-snapshot' });
  const restoreButton = h('button', { id: 'restore-button', type: 'button' }, 'Restore');
  const restoreError = errorBox('restore-error');
  restoreButton.addEventListener('click', () => act(restoreButton, restoreError, async () => {
    if (!restoreSelect.value) throw new Error('there is no snapshot to restore');
    if (!confirm(`Restore snapshot ${restoreSelect.value}? A running job is stopped first.`)) return;
    showRun(await post(`${path}/restore`, { snapshot: restoreSelect.value }), 'Restored');
  }));

  function fillSnapshotChoices() {
    clear(snapshotList, snapshots.map((s) => h('option', { value: s.id }, `${fmtTime(s.created_ms)} (${s.trigger})`)));
    clear(restoreSelect, snapshots.length
      ? snapshots.map((s) => h('option', { value: s.id }, `${s.id} — ${fmtTime(s.created_ms)} (${s.trigger}${s.incremental ? ', incremental' : ''}${s.shard ? `, shard ${s.shard}` : ''})`))
      : h('option', { value: '' }, 'no snapshots'));
  }
  fillSnapshotChoices();

  // Upgrade.
  const upgradeVersion = versionSelect('upgrade-version', args.info.versions, args.info.deployment && args.info.deployment.version_id);
  const upgrade = h('button', { id: 'upgrade-button', type: 'button' }, 'Upgrade');
  const upgradeError = errorBox('upgrade-error');
  upgrade.addEventListener('click', () => act(upgrade, upgradeError, async () => {
    // {deployment, run}: `run` is the restarted run when the job was running.
    const answer = await post(`${path}/upgrade`, { version: Number(upgradeVersion.value) });
    if (answer && answer.run) showRun(answer.run, 'Upgraded');
    else clear(status, 'Upgraded: the next start runs the new version.');
    await args.reloadInfo();
    await refreshSnapshots();
  }));

  // Rescale: the shards move between tasks with their snapshots.
  const current = args.info.deployment ? args.info.deployment.parallelism : 1;
  const rescaleTo = h('input', { id: 'rescale-parallelism', type: 'number', min: '1', max: '64', value: String(current) });
  const rescale = h('button', { id: 'rescale-button', type: 'button' }, 'Rescale');
  const rescaleError = errorBox('rescale-error');
  rescale.addEventListener('click', () => act(rescale, rescaleError, async () => {
    const answer = await post(`${path}/rescale`, { parallelism: Number(rescaleTo.value) });
    if (answer && answer.run) showRun(answer.run, 'Rescaled');
    else clear(status, `Rescaled: the next start runs ${rescaleTo.value} task(s).`);
    await args.reloadInfo();
    await refreshSnapshots();
  }));

  // Parameters.
  const params = paramsEditor('op-params', args.info.deployment ? args.info.deployment.parameters : {});
  const paramsSave = h('button', { id: 'params-save', type: 'button', class: 'primary' }, 'Apply parameters');
  const paramsError = errorBox('params-error');
  const paramsSaved = h('p', { id: 'params-saved', class: 'ok' });
  paramsSave.addEventListener('click', () => act(paramsSave, paramsError, async () => {
    paramsSaved.textContent = '';
    const answer = await post(`${path}/parameters`, { parameters: params.value() });
    paramsSaved.textContent = answer && answer.run
      ? 'Parameters saved; the job restarted from a snapshot with them.'
      : 'Parameters saved; they apply from the next start.';
    if (answer && answer.run) showRun(answer.run, 'Restarted');
    await args.reloadInfo();
  }));

  const run = args.info.run;
  if (run) showRun(run, 'Current');
  clear(root,
    status,
    snapshotsError,
    section('Start', startForm),
    section('Stop', h('div', { class: 'inline' }, h('label', { class: 'check' }, stopSnapshot, ' take a snapshot first'), stop), stopError),
    section('Snapshot', h('div', { class: 'inline' }, snap), snapError, snapResult),
    section('Restore a snapshot', h('div', { class: 'inline' }, field('Snapshot', restoreSelect), restoreButton), restoreError),
    section('Upgrade', h('p', { class: 'muted' }, 'Stops with a snapshot and starts the chosen version from it.'),
      h('div', { class: 'inline' }, field('Version', upgradeVersion), upgrade), upgradeError),
    section('Rescale', h('p', { class: 'muted' },
      'Stops with a snapshot of every shard and starts again with the shards packed into this many tasks; '
      + 'the Overview shows which task runs each shard.'),
      h('div', { class: 'inline' }, field('Parallelism', rescaleTo), rescale), rescaleError),
    section('Parameters', params.el, h('div', { class: 'form-actions' }, paramsSave, paramsError, paramsSaved)));
}
