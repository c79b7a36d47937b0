// A job: the header (state, version) and one tab per step of the job's
// life — develop (versions, deployment, debug, preview), operate (start,
// stop, snapshots, parameters) and watch (overview, runs, exceptions, logs).

import { get, jobPath, projectPath } from '../api.js';
import { h, clear, tabs, badge, versionLabel, nameOf } from '../dom.js';
import { effectiveRole } from '../roles.js';
import { renderOverview } from './job_overview.js';
import { renderVersions } from './job_versions.js';
import { renderDeployment } from './job_deployment.js';
import { renderDebug, renderPreview } from './job_debug.js';
import { renderOperate } from './job_operate.js';
import { renderSnapshots, renderRuns, renderExceptions, renderLogs } from './job_history.js';

const TABS = [
  ['overview', 'Overview'],
  ['versions', 'Versions'],
  ['deployment', 'Deployment'],
  ['debug', 'Debug'],
  ['preview', 'Preview'],
  ['operate', 'Operate'],
  ['snapshots', 'Snapshots'],
  ['runs', 'Runs'],
  ['exceptions', 'Exceptions'],
  ['logs', 'Logs'],
];

const RENDER = {
  overview: renderOverview,
  versions: renderVersions,
  deployment: renderDeployment,
  debug: renderDebug,
  preview: renderPreview,
  operate: renderOperate,
  snapshots: renderSnapshots,
  runs: renderRuns,
  exceptions: renderExceptions,
  logs: renderLogs,
};

export async function renderJob(root, ctx, p, j, tab) {
  const [info, project] = await Promise.all([get(jobPath(p, j)), get(projectPath(p))]);
  if (!ctx.alive()) return;
  const role = effectiveRole(project.role, ctx.session.me);
  const base = `#/projects/${encodeURIComponent(p)}/jobs/${encodeURIComponent(j)}`;
  const stateBadge = h('span', { id: 'job-state' }, badge(info.run && info.run.state));
  const version = h('span', { id: 'job-version', class: 'tag' }, versionLabel(info.version));
  const body = h('div', { id: `job-${tab}`, class: 'tab-body' });
  clear(root,
    h('p', { class: 'crumbs' },
      h('a', { href: '#/projects' }, 'Projects'), ' / ',
      h('a', { href: `#/projects/${encodeURIComponent(p)}/jobs` }, p), ' / '),
    h('h2', { id: 'job-title' }, nameOf(info.job) || j, ' ', stateBadge, ' ', version),
    info.job && info.job.description ? h('p', { class: 'muted' }, info.job.description) : null,
    tabs(base, TABS, RENDER[tab] ? tab : 'overview'),
    body);

  const args = {
    ctx, p, j, role, info, base,
    // Fresh job details (after an action), also updating the header.
    async reloadInfo() {
      const fresh = await get(jobPath(p, j));
      args.info = fresh;
      clear(stateBadge, badge(fresh.run && fresh.run.state));
      version.textContent = versionLabel(fresh.version);
      return fresh;
    },
    setState(state) { clear(stateBadge, badge(state)); },
  };
  return (RENDER[tab] || renderOverview)(body, args);
}
