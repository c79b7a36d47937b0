-- What each component declares about its state (the job export
-- `state-keying`): `global` (runs at parallelism 1 only) or
-- `by-record-key` (may run split by partition). Recorded at upload for the
-- Versions view; the runtime reads it again at every load. Unknown (null)
-- for components uploaded before contract 0.3.0, which no longer load.
alter table components add column state_keying text;
