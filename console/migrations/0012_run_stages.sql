-- A run of a job with repartition stages (docs/ARCHITECTURE.md, "Staged
-- runs"): `stages` is how many (null: one), and `stage_topics` the prefix
-- of its repartition topics (`<prefix>-s<k>` for stage k), which a run
-- restoring the state keeps and a run from empty state makes anew.
alter table runs add column stages bigint;
alter table runs add column stage_topics text;
