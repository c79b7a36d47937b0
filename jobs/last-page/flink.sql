-- Last page in Flink SQL: the seed's own SQL (seed 001, scenario 3
-- "用戶行為分析"), for the side-by-side benchmark with Apache Flink
-- (tests/benches/seed_jobs/, docs/BENCHMARKS.md). The insert is the seed's
-- text; only the tables differ:
--
-- * `user_log` reads the generated JSON-lines file (the seed reads DataHub);
--   malformed lines are skipped (`json.ignore-parse-errors`), as the Sluice job
--   sends them to its dead letters.
-- * `user_last_log` is the print connector (the seed writes an RDS table keyed
--   by account_id; its query groups by account_id and device_id, which is the
--   key the Sluice job and the bench use): each changelog row is one JSON
--   object, collapsed by the bench to the final table.

CREATE TABLE user_log (
  log_time BIGINT,
  device_id STRING,
  account_id STRING,
  bury_point_type STRING,
  page_name STRING
) WITH (
  'connector' = 'filesystem',
  'path' = '${data}/user_log.jsonl',
  'format' = 'json',
  'json.ignore-parse-errors' = 'true'
);

CREATE TABLE user_last_log (
  row_json STRING
) WITH ('connector' = 'print', 'print-identifier' = 'user_last_log');

insert into user_last_log
select json_object(
  'account_id' value account_id
  ,'device_id' value device_id
  ,'bury_point_type' value bury_point_type
  ,'page_name' value page_name
  null on null
) from (
select
account_id
,device_id
,last_value(bury_point_type) as bury_point_type
,last_value(page_name) as page_name
from user_log
where account_id is not null
group by account_id,device_id
) a
;
