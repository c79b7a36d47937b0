-- A run's parallelism: the task slots its shards are packed into. Since
-- 0011 a run's `task_groups` are its shards (one per input partition of a
-- job keyed by record key, one for a global job): shard `s` runs in task
-- `s % parallelism`, and a task is one worker slot. Null for runs planned
-- before, whose groups were each a task of their own.
alter table runs add column parallelism bigint;
