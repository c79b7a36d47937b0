-- Leases per task (docs/OPERATIONS.md): each partition group of a run is
-- leased on its own, so one run's groups spread over several workers and a
-- lost worker's groups move without stopping the others. The run keeps
-- what is the run's (state, stop and snapshot requests); `runs.lease_epoch`
-- becomes the run's fencing floor: above every epoch of the job's earlier
-- runs and below every epoch of its own tasks. `runs.worker` names the
-- holder of group 0.
create table run_tasks (
    run_id text not null,
    task_group bigint not null,
    worker text,
    lease_epoch bigint not null default 0,
    lease_expires_ms bigint,
    -- active, finished, stopped or failed
    state text not null default 'active',
    -- The newest snapshot request it answered (ms).
    snapshot_done_ms bigint,
    primary key (run_id, task_group)
);

create index run_tasks_by_worker on run_tasks (worker, state);

-- Runs launched before the upgrade (an epoch above 0) and still active:
-- their groups are held as the runs were. Runs never launched get their
-- tasks planned as new ones are, at the deployment's parallelism.
update runs set task_groups = 1
 where task_groups is null and lease_epoch > 0 and state in ('starting', 'running', 'stopping');
insert into run_tasks (run_id, task_group, worker, lease_epoch, lease_expires_ms, state)
with recursive g(n) as (select 0 union all select n + 1 from g where n + 1 < 64)
select r.id, g.n, r.worker, r.lease_epoch, r.lease_expires_ms, 'active'
  from runs r join g on g.n < r.task_groups
 where r.lease_epoch > 0 and r.state in ('starting', 'running', 'stopping');
