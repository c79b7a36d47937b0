// Time-series charts of a job's metrics, drawn with uPlot (MIT, loaded as
// the global `uPlot` by index.html from /vendor/uPlot.iife.min.js).

const COLORS = ['#2563eb', '#16a34a', '#dc2626', '#9333ea', '#ea580c'];

// A chart in `container` (which gets `data-points` = number of samples,
// so tests and people can tell an empty chart from a drawn one).
// `series`: [{label, unit?, scale?}], each a line; a second `scale` gets
// its own axis on the right.
export function lineChart(container, series) {
  const scales = [...new Set(series.map((s) => s.scale || 'y'))];
  const opts = {
    width: chartWidth(container),
    height: 180,
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, ...Object.fromEntries(scales.map((s) => [s, { auto: true }])) },
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.label,
        scale: s.scale || 'y',
        stroke: COLORS[i % COLORS.length],
        width: 2,
        spanGaps: true,
        value: (_, v) => v === null || v === undefined ? '—' : `${formatValue(v)}${s.unit ? ' ' + s.unit : ''}`,
      })),
    ],
    axes: [
      {},
      ...scales.map((s, i) => ({
        scale: s,
        side: i === 0 ? 3 : 1,
        grid: { show: i === 0 },
        size: 60,
        values: (_, ticks) => ticks.map(formatValue),
      })),
    ],
  };
  const empty = [[], ...series.map(() => [])];
  container.dataset.points = '0';
  const plot = new uPlot(opts, empty, container);
  const onResize = () => plot.setSize({ width: chartWidth(container), height: 180 });
  window.addEventListener('resize', onResize);
  return {
    // `t_ms`: sample times; `columns`: one array per series, same length.
    update(tMs, columns) {
      const xs = (tMs || []).map((t) => t / 1000);
      const ys = columns.map((c) => xs.map((_, i) => (c && c[i] !== undefined) ? c[i] : null));
      plot.setData([xs, ...ys]);
      container.dataset.points = String(xs.length);
    },
    destroy() {
      window.removeEventListener('resize', onResize);
      plot.destroy();
    },
  };
}

function chartWidth(container) {
  const w = container.clientWidth || (container.parentElement && container.parentElement.clientWidth) || 0;
  return Math.max(300, Math.min(w || 560, 900));
}

function formatValue(v) {
  if (v === null || v === undefined) return '';
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(1) + 'k';
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(a < 10 ? 2 : 1);
}
