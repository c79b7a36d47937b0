-- Premium drop in Flink SQL: seed 001, scenario 2 ("用戶行為監控"), for the
-- side-by-side benchmark with Apache Flink (tests/benches/seed_jobs/,
-- docs/BENCHMARKS.md).
--
-- The seed's SQL looks each saved update up in the `raw_info` dimension
-- (`FOR SYSTEM_TIME AS OF PROCTIME()`, an OTS table), alerts when the premium
-- fell by more than 15%, and writes the new premium back into `raw_info`
-- (a second INSERT of the same job), so the next update of that user is
-- compared with this one. The PyFlink wheel ships no connector that can be
-- looked up and written by one job (the filesystem connector has no lookup
-- join), so the dimension is emulated, with the semantics the seed means and
-- the Sluice job implements (each update is compared with the user's previous
-- saved premium):
--
-- * the premium before an update is the user's previous saved update (an
--   OVER window of the current and the preceding row per user, in arrival
--   order), or for the user's first saved update the row of the `raw_info`
--   file (the dimension's initial content, a regular join with a bounded
--   table; users without a row there are not watched, as the inner lookup
--   join drops them);
-- * updates whose premium is not a number are dropped before the window, as
--   the Sluice job rejects them before the lookup (they do not become the
--   next reference premium);
-- * `wechat_activity_user` is the print connector (the seed writes an RDS
--   table keyed by id): one JSON object per alert. The bench compares all
--   alerts (a multiset), not only the last per id: the join may emit in
--   another order than arrival when an update is read before its raw_info row.
--
-- Malformed lines are skipped (`json.ignore-parse-errors`), as the Sluice job
-- sends them to its dead letters. ${name} is filled in by
-- tests/benches/seed_jobs/flink_job.py.

CREATE TABLE update_info (
  id BIGINT,
  event STRING,
  now_premium STRING,
  now_info STRING,
  pt AS PROCTIME()
) WITH (
  'connector' = 'filesystem',
  'path' = '${data}/update_info.jsonl',
  'format' = 'json',
  'json.ignore-parse-errors' = 'true'
);

CREATE TABLE raw_info (
  id BIGINT,
  raw_premium STRING,
  raw_info STRING
) WITH (
  'connector' = 'filesystem',
  'path' = '${data}/raw_info.jsonl',
  'format' = 'json',
  'json.ignore-parse-errors' = 'true'
);

CREATE TABLE wechat_activity_user (
  row_json STRING
) WITH ('connector' = 'print', 'print-identifier' = 'wechat_activity_user');

-- Saved updates with the previous saved one of the same user (n = 2).
create view saved as
select id, now_premium, now_info,
  count(*) over w as n,
  first_value(now_premium) over w as prev_premium,
  first_value(now_info) over w as prev_info
from update_info
where event = 'saved' and try_cast(trim(now_premium) as double) is not null
window w as (partition by id order by pt rows between 1 preceding and current row);

create view info_join as
select
t1.id as id
,case when t1.n = 2 then t1.prev_info else t2.raw_info end as raw_info
,t1.now_info as now_info
,case when t1.n = 2 then t1.prev_premium else t2.raw_premium end as raw_premium
,t1.now_premium as now_premium
from saved t1
inner join raw_info t2
on t1.id = t2.id ;

insert into wechat_activity_user
select json_object(
  'id' value id
  ,'raw_info' value raw_info
  ,'now_info' value now_info
  ,'raw_premium' value raw_premium
  ,'now_premium' value now_premium
  null on null
)
from info_join where cast(trim(now_premium) as double) < cast(trim(raw_premium) as double) * 0.85
;
