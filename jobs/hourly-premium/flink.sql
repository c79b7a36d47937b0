-- Hourly premium in Flink SQL: the seed's own SQL (seed 001, scenario 1
-- "運營數據分析"), for the side-by-side benchmark with Apache Flink
-- (tests/benches/seed_jobs/, docs/BENCHMARKS.md). The `last_order` view and
-- the `hs_order` insert are the seed's text; only the tables differ:
--
-- * `user_order` reads the generated JSON-lines file (the seed reads DataHub);
--   malformed lines are skipped (`json.ignore-parse-errors`), as the Sluice job
--   sends them to its dead letters.
-- * `hs_order` is the print connector (the seed writes an RDS table keyed by
--   biz_date): each changelog row (+I/-U/+U/-D) is one JSON object, and the
--   bench collapses the changelog to the final table, as it does with the
--   Sluice file sink's upserts and deletes.
-- * The seed's filter `gmt_modified >= <start of today>` becomes
--   `gmt_modified >= ${since_ms}`, as the Sluice job's `since_ms` parameter
--   does: the generated orders are from 2024 (the bench passes 0).
-- * `from_unixtime` formats in the session time zone: UTC+8, as the job's
--   `utc_offset_minutes = 480`.
--
-- ${name} is filled in by tests/benches/seed_jobs/flink_job.py.

SET 'table.local-time-zone' = 'GMT+08:00';

CREATE TABLE user_order (
  id BIGINT,
  order_no STRING,
  customer_tel STRING,
  gmt_modified BIGINT,
  account_payble DOUBLE
) WITH (
  'connector' = 'filesystem',
  'path' = '${data}/user_order.jsonl',
  'format' = 'json',
  'json.ignore-parse-errors' = 'true'
);

CREATE TABLE hs_order (
  row_json STRING
) WITH ('connector' = 'print', 'print-identifier' = 'hs_order');

create view last_order
as
select
id as id
,last_value(order_no) as order_no
,last_value(customer_tel) as customer_tel
,last_value(gmt_modified) as gmt_modified
,last_value(account_payble) as account_payble
from user_order
where gmt_modified >= ${since_ms}
group by id
;

insert into hs_order
select json_object(
  'biz_date' value biz_date
  ,'total_premium' value cast (total_premium as double)
  ,'policy_cnt' value cast (policy_cnt as bigint)
  ,'policy_holder_cnt' value cast (policy_holder_cnt as bigint)
) from (
select
from_unixtime(cast(gmt_modified/1000 as bigint),'yyyyMMddHH') as biz_date
,sum(coalesce(account_payble,0)) as total_premium
,count(distinct order_no) as policy_cnt
,count(distinct customer_tel) as policy_holder_cnt
from last_order a
group by
from_unixtime(cast(gmt_modified/1000 as bigint),'yyyyMMddHH')
)a
;
