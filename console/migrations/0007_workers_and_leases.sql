-- Scale-out (docs/OPERATIONS.md). Workers register and heartbeat here; a
-- run is held by the worker named in `runs.worker` under a lease that
-- worker renews (`lease_expires_ms`, on the database's clock), and every
-- takeover raises the run's fencing epoch, which the owner's state changes
-- and snapshot writes carry. Requests to a run on another process (stop,
-- snapshot now) are rows its owner picks up at its next heartbeat.
create table workers (
    id text primary key,
    host text not null,
    slots integer not null,
    state text not null,
    started_ms bigint not null,
    heartbeat_ms bigint not null,
    -- What the worker runs, as JSON (per run: tasks and counters).
    status text not null default '[]'
);

alter table runs add column lease_epoch bigint not null default 0;
alter table runs add column lease_expires_ms bigint;
alter table runs add column stop_request text;
alter table runs add column snapshot_request_ms bigint;
alter table runs add column snapshot_done_ms bigint;

create index runs_by_worker on runs (worker, state);

-- Singletons of the control plane (assignment, takeovers, cron and `at`
-- starts): held by one console at a time.
create table leader_leases (
    name text primary key,
    holder text not null,
    epoch bigint not null,
    expires_ms bigint not null
);
