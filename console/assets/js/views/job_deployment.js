// Deployment: what runs when the job starts — the version, the spec (TOML
// as in job.toml: sources, sinks, dimensions, batch, limits), parameters,
// resources (parallelism, memory, CPU per batch) and an optional cron
// schedule. The server checks it all and names the bad field. Resources
// and the schedule are an operator's: below that role they are shown, not
// editable (the server refuses a change, and says so).

import { put, jobPath } from '../api.js';
import { h, clear, errorBox, act, field, section, fmtTime, versionLabel } from '../dom.js';
import { paramsEditor } from '../params.js';
import { can } from '../roles.js';

export const SPEC_TEMPLATE = `# The job spec (docs/SPEC.md): sources, sinks, dimensions, batch, limits.
# Connections are referred to by name (Connections tab of the project).

[sources.input]
kind = "kafka"
connection = "events"
topic = "input"

[sinks.output]
kind = "memory"
`;

export function versionSelect(id, versions, selectedId, { allowNone } = {}) {
  const sorted = [...(versions || [])].sort((a, b) => b.number - a.number);
  return h('select', { id },
    allowNone ? h('option', { value: '' }, allowNone) : null,
    sorted.map((v) => h('option', { value: String(v.number), selected: v.id === selectedId }, `v${v.number}${v.note ? ' — ' + v.note : ''}`)));
}

const optionalNumber = (input) => {
  const s = input.value.trim();
  if (!s) return null;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${input.dataset.label} must be a whole number, got "${s}"`);
  return n;
};

export async function renderDeployment(root, args) {
  const { p, j, info } = args;
  const d = info.deployment;
  if (!(info.versions || []).length) {
    clear(root, section('Deployment', h('p', { class: 'muted' }, 'Upload a version first: ', h('a', { href: `${args.base}/versions` }, 'Versions'), '.')));
    return;
  }
  const version = versionSelect('deploy-version', info.versions, d ? d.version_id : null);
  const spec = h('textarea', { id: 'deploy-spec', rows: 18, spellcheck: 'false', class: 'code' });
  spec.value = d ? d.spec : SPEC_TEMPLATE;
  const params = paramsEditor('deploy-params', d ? d.parameters : {});
  const parallelism = h('input', { id: 'deploy-parallelism', type: 'number', min: 1, value: String(d ? d.parallelism : 1), 'data-label': 'Parallelism' });
  const memory = h('input', { id: 'deploy-memory', type: 'number', min: 2, placeholder: 'from the spec (256)', value: d && d.memory_mb ? String(d.memory_mb) : '', 'data-label': 'Memory' });
  const cpu = h('input', { id: 'deploy-cpu', type: 'number', min: 1, placeholder: 'from the spec (10000)', value: d && d.cpu_ms ? String(d.cpu_ms) : '', 'data-label': 'CPU' });
  const schedule = h('input', { id: 'deploy-schedule', placeholder: 'none (e.g. 0 0 2 * * * — daily at 02:00)', value: d && d.schedule ? d.schedule : '', class: 'code' });
  const operator = can(args.role, 'operator');
  for (const input of [parallelism, memory, cpu, schedule]) input.disabled = !operator;
  const save = h('button', { id: 'deploy-save', type: 'submit', class: 'primary' }, 'Save deployment');
  const error = errorBox('deploy-error');
  const saved = h('p', { id: 'deploy-saved', class: 'ok' }, d ? `Saved ${fmtTime(d.updated_ms)} (${versionLabel(findVersion(info, d.version_id))}).` : '');

  const form = h('form', { id: 'deploy-form', class: 'grid' },
    field('Version', version),
    field('Spec (TOML)', spec, 'As job.toml; name and component are set by the console.'),
    field('Parameters', params.el, 'Over the spec\'s [parameters].'),
    h('div', { class: 'row' },
      field('Parallelism', parallelism, 'tasks (partition groups)'),
      field('Memory per task (MiB)', memory),
      field('CPU per batch (ms)', cpu)),
    field('Schedule (cron, seconds first)', schedule, 'Starts the job at these times; empty for none.'),
    operator ? null : h('p', { id: 'deploy-operator-note', class: 'muted' },
      'Resources and the schedule are set by an operator of the project.'),
    h('div', { class: 'form-actions' }, save, error, saved));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    saved.textContent = '';
    await act(save, error, async () => {
      const body = {
        version: Number(version.value),
        spec: spec.value,
        parameters: params.value(),
        parallelism: optionalNumber(parallelism) ?? 1,
        memory_mb: optionalNumber(memory),
        cpu_ms: optionalNumber(cpu),
        schedule: schedule.value.trim() || null,
      };
      const deployment = await put(`${jobPath(p, j)}/deployment`, body);
      const fresh = await args.reloadInfo();
      saved.textContent = `Saved ${fmtTime(deployment.updated_ms)} (${versionLabel(findVersion(fresh, deployment.version_id))}).`;
    });
  });
  clear(root, section('Deployment', form));
}

function findVersion(info, versionId) {
  return (info.versions || []).find((v) => v.id === versionId) || versionId;
}
