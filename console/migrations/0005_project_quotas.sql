-- A project's quota: the most its running jobs and debug runs may hold at
-- once. NULL: the platform's default (sluice serve --project-max-*).
alter table projects add column max_tasks bigint;
alter table projects add column max_memory_mb bigint;
alter table projects add column max_debug_runs bigint;
