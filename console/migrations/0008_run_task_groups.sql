-- The partition groups a run's tasks were launched with: a run keeps them
-- for life (a takeover or restart relaunches the same groups, whatever the
-- deployment says now), and a new run restoring `latest` is refused when
-- the job's state is in snapshots of another parallelism, instead of
-- silently starting from empty state. Unknown (null) for older runs.
alter table runs add column task_groups bigint;
-- Runs active across the upgrade keep the groups they run with now.
update runs set task_groups = (select d.parallelism from deployments d where d.job_id = runs.job_id)
 where state in ('starting', 'running', 'stopping');
