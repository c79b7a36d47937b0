// Workers (global admins only): every `sluice worker` (and each console's
// own worker) registered in the metadata store, its slots, the runs it
// holds and its last heartbeat; refreshed every two seconds.

import { get } from '../api.js';
import { h, clear, errorBox, showError, clearError, table, fmtTime, fmtNum, badge, section } from '../dom.js';

export async function renderWorkers(root, ctx) {
  const list = h('div', { id: 'workers-list' });
  const listError = errorBox('workers-error');

  async function reload() {
    let workers;
    try {
      workers = await get('/workers');
    } catch (e) {
      showError(listError, e);
      return;
    }
    if (!ctx.alive()) return;
    clearError(listError);
    const now = Date.now();
    clear(list, table('workers-table', [
      ['Name', (w) => w.id],
      ['Host', (w) => w.host],
      ['State', (w) => badge(w.state)],
      ['Slots', (w) => String(w.slots)],
      ['Tasks', (w) => `${w.tasks} of ${w.slots} slots`],
      ['Runs', (w) => String(w.runs)],
      ['Records in', (w) => fmtNum((w.status || []).reduce((n, r) => n + (r.totals ? r.totals.records_in : 0), 0))],
      ['Last heartbeat', (w) => `${Math.max(0, Math.round((now - w.heartbeat_ms) / 1000))} s ago`],
      ['Started', (w) => fmtTime(w.started_ms)],
    ], workers, { empty: 'no worker has registered', rowAttrs: (w) => ({ 'data-worker': w.id }) }));
  }

  clear(root, h('h2', null, 'Workers'),
    h('p', { class: 'hint' }, 'Processes that run jobs. A worker silent for longer than its lease is shown lost, and its tasks move to the others. Each task (a partition group of a run) takes a slot.'),
    section('Registered workers', listError, list));
  await reload();
  const timer = setInterval(reload, 2000);
  return () => clearInterval(timer);
}
