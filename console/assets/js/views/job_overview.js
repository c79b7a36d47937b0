// Overview: state, the current run, counters, the data curves (records
// in/out per second, consumer lag, processing latency, snapshot duration
// and size) and the task table, from GET .../metrics every 2 seconds.

import { get, jobPath } from '../api.js';
import { h, clear, errorBox, showError, clearError, table, badge, fmtTime, fmtNum, section, versionLabel } from '../dom.js';
import { lineChart } from '../charts.js';

const POLL_MS = 2000;

const COUNTERS = [
  ['records-in', 'Records in', (t) => t.records_in],
  ['records-out', 'Records out', (t) => t.records_out],
  ['dead-letters', 'Dead letters', (t) => t.dead_letters],
  ['snapshots', 'Snapshots', (t) => t.snapshots],
  ['lag', 'Consumer lag', (t) => t.lag],
];

export async function renderOverview(root, args) {
  const { ctx, p, j } = args;
  const runBox = h('div', { id: 'current-run' });
  const counters = h('div', { class: 'counters', id: 'counters' });
  const counterEls = {};
  for (const [id, label] of COUNTERS) {
    const value = h('span', { class: 'value', id: `counter-${id}`, 'data-test': `counter-${id}`, 'data-value': '' }, '—');
    counterEls[id] = value;
    counters.append(h('div', { class: 'counter' }, value, h('span', { class: 'label' }, label)));
  }
  const watermark = h('span', { class: 'value small', id: 'counter-watermark' }, '—');
  counters.append(h('div', { class: 'counter' }, watermark, h('span', { class: 'label' }, 'Watermark')));

  const chartBox = (id, title) => {
    const el = h('div', { id, class: 'chart', 'data-test': id });
    return [el, h('figure', { class: 'chart-card' }, h('figcaption', null, title), el)];
  };
  const [ratesEl, ratesFig] = chartBox('chart-rates', 'Records per second');
  const [lagEl, lagFig] = chartBox('chart-lag', 'Consumer lag (records)');
  const [latencyEl, latencyFig] = chartBox('chart-latency', 'Processing latency (ms per batch)');
  const [snapEl, snapFig] = chartBox('chart-snapshots', 'Snapshots: duration and size');
  const tasksBox = h('div', { id: 'tasks' });
  const error = errorBox('metrics-error');
  const updated = h('small', { class: 'muted', id: 'metrics-updated' });

  clear(root,
    section('Current run', runBox),
    section('Counters', counters, updated, error),
    h('div', { class: 'charts' }, ratesFig, lagFig, latencyFig, snapFig),
    section('Tasks', tasksBox));

  drawRun(runBox, args.info, args);

  const charts = {
    rates: lineChart(ratesEl, [{ label: 'in', unit: '/s' }, { label: 'out', unit: '/s' }]),
    lag: lineChart(lagEl, [{ label: 'lag' }]),
    latency: lineChart(latencyEl, [{ label: 'latency', unit: 'ms' }]),
    snapshots: lineChart(snapEl, [{ label: 'duration', unit: 'ms' }, { label: 'size', unit: 'B', scale: 'bytes' }]),
  };

  let timer = null;
  let stopped = false;
  let lastRunId;
  async function poll() {
    if (stopped || !ctx.alive()) return;
    try {
      const m = await get(`${jobPath(p, j)}/metrics`, { seconds: 600 });
      if (stopped || !ctx.alive()) return;
      clearError(error);
      const totals = m.totals || {};
      for (const [id, , pick] of COUNTERS) {
        const v = pick(totals);
        counterEls[id].textContent = fmtNum(v);
        counterEls[id].dataset.value = v === null || v === undefined ? '' : String(v);
      }
      watermark.textContent = totals.watermark_ms ? fmtTime(totals.watermark_ms) : '—';
      const s = m.series || {};
      charts.rates.update(s.t_ms, [s.in_rate, s.out_rate]);
      charts.lag.update(s.t_ms, [s.lag]);
      charts.latency.update(s.t_ms, [s.latency_ms]);
      charts.snapshots.update(s.t_ms, [s.snapshot_ms, s.snapshot_bytes]);
      clear(tasksBox, table('tasks-table', [
        ['Task', (t) => t.task],
        // A staged job's stage: stage k > 0 reads its repartition topic.
        ['Stage', (t) => t.stage ?? 0],
        ['Shard', (t) => t.shard ?? t.task],
        ['Key', (t) => t.key ? h('code', null, t.key) : '—'],
        ['Worker', (t) => t.worker ?? '—'],
        ['Lease epoch', (t) => (t.epoch ? String(t.epoch) : '—')],
        ['Records in', (t) => fmtNum(t.records_in)],
        ['Records out', (t) => fmtNum(t.records_out)],
        // Rows of an upstream job applied before (`dedup_by_row_id`).
        ['Replays dropped', (t) => fmtNum(t.replays_dropped ?? 0)],
        // Records behind the end of its Kafka sources (of a later stage: its repartition topic).
        ['Lag', (t) => (t.lag === null || t.lag === undefined ? '—' : fmtNum(t.lag))],
        ['State', (t) => t.state ? badge(t.state) : badge(m.state)],
      ], m.tasks || [], { empty: 'no tasks running' }));
      args.setState(m.state);
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
      if (m.run_id !== lastRunId) {
        // A new run (or the end of one): refresh the run details.
        lastRunId = m.run_id;
        const info = await args.reloadInfo();
        if (!stopped && ctx.alive()) drawRun(runBox, info, args);
      }
    } catch (e) {
      showError(error, e);
    }
    if (!stopped && ctx.alive()) timer = setTimeout(poll, POLL_MS);
  }
  await poll();

  return () => {
    stopped = true;
    clearTimeout(timer);
    for (const c of Object.values(charts)) c.destroy();
  };
}

function drawRun(box, info, { base }) {
  const run = info && info.run;
  if (!run) {
    clear(box, h('p', { class: 'muted' }, 'The job has not run yet. ',
      info && info.deployment ? h('a', { href: `${base}/operate` }, 'Start it') : h('a', { href: `${base}/deployment` }, 'Deploy a version first'), '.'));
    return;
  }
  clear(box, h('dl', { class: 'facts' },
    h('dt', null, 'Run'), h('dd', { id: 'run-id' }, run.id),
    h('dt', null, 'State'), h('dd', null, badge(run.state)),
    h('dt', null, 'Version'), h('dd', null, versionLabel(versionOf(info, run.version_id))),
    h('dt', null, 'Started'), h('dd', null, fmtTime(run.started_ms ?? run.created_ms)),
    run.ended_ms ? [h('dt', null, 'Ended'), h('dd', null, fmtTime(run.ended_ms))] : null,
    run.scheduled_ms ? [h('dt', null, 'Scheduled for'), h('dd', null, fmtTime(run.scheduled_ms))] : null,
    run.task_groups ? [h('dt', null, 'Parallelism'), h('dd', { id: 'run-parallelism' },
      `${run.parallelism ?? run.task_groups} task(s) over ${run.task_groups} shard(s)`)] : null,
    // A staged job: stage k > 0 reads topic `<prefix>-s<k>` (its lag is in the task table).
    run.stages > 1 ? [h('dt', null, 'Stages'), h('dd', { id: 'run-stages' },
      `${run.stages}, repartition topics `,
      ...Array.from({ length: run.stages - 1 }, (_, i) => [i ? ', ' : '', h('code', null, `${run.stage_topics}-s${i + 1}`)]).flat())] : null,
    h('dt', null, 'Restored from'), h('dd', null, run.restore_from || 'none'),
    run.start_position ? [h('dt', null, 'Start position'), h('dd', null, run.start_position)] : null,
    run.error ? [h('dt', null, 'Error'), h('dd', { class: 'error-text', id: 'run-error' }, run.error)] : null));
}

export function versionOf(info, versionId) {
  const v = (info.versions || []).find((x) => x.id === versionId);
  return v || versionId;
}
