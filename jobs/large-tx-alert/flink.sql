-- Large-transaction alerts in Flink SQL, for the side-by-side benchmark with
-- Apache Flink (tests/benches/seed_jobs/, docs/BENCHMARKS.md). Seed 003 has
-- no SQL: this is the equivalent of the Sluice job (jobs/large-tx-alert,
-- docs/jobs/large-tx.md) with its default parameters, written for this bench:
--
-- 1. validation as the job's (a positive amount with at most two decimals,
--    direction `in` or `out`), then de-duplication by txn_id, first arrival
--    (Flink's deduplication query);
-- 2. large_amount: amount >= the threshold of the customer's segment, or
--    50000.00 when the customer or the segment is unknown;
-- 3. sudden_outflow: an outflow of at least 10000.00 that is at least 5 times
--    the average of the customer's previous 10 outflows, once there are 3.
--    Flink's OVER windows end at the current row and cannot skip inflows, so
--    the window runs over the outflows alone, 10 preceding rows and the
--    current one, and the current row is subtracted again.
--
-- Deviations, from what the PyPI wheel ships: the `customer` (SQL table) and
-- `segment_threshold` (Redis) dimensions are the generated JSON-lines files,
-- joined with regular left joins (the filesystem connector has no lookup
-- join). The files are read once; a movement read before its customer row
-- is joined with NULL first and corrected (retracted and re-emitted) when the
-- row arrives, so the final table is the same as with a lookup, but the
-- changelog may carry corrections. The job's TTLs (72 h de-duplication, 90
-- days of history) are not set: the generated data spans less than either.
-- Amounts are integer cents, as in the job. Both sinks (`alert_topic`, a
-- Kafka topic, and `alert_table`, an upsert table keyed by alert_id) are the
-- print connector, one JSON object per row; the bench compares alert_table.
-- Malformed lines are skipped (`json.ignore-parse-errors`).

-- Mini-batch stays off even in the bench's `minibatch` configuration: with
-- it, Flink materializes the processing time before the de-duplication, which
-- then is a general Top-1 emitting updates that the OVER window cannot take
-- ("StreamPhysicalOverAggregate doesn't support consuming update and delete
-- changes").
SET 'table.exec.mini-batch.enabled' = 'false';

CREATE TABLE account_txn (
  txn_id STRING,
  account_no STRING,
  customer_id STRING,
  direction STRING,
  amount STRING,
  channel STRING,
  branch_id STRING,
  txn_time BIGINT,
  pt AS PROCTIME()
) WITH (
  'connector' = 'filesystem',
  'path' = '${data}/account_txn.jsonl',
  'format' = 'json',
  'json.ignore-parse-errors' = 'true'
);

CREATE TABLE customer (
  customer_id STRING,
  segment STRING,
  manager_id STRING
) WITH (
  'connector' = 'filesystem',
  'path' = '${data}/customer.jsonl',
  'format' = 'json',
  'json.ignore-parse-errors' = 'true'
);

CREATE TABLE segment_threshold (
  segment STRING,
  threshold STRING
) WITH (
  'connector' = 'filesystem',
  'path' = '${data}/segment_threshold.jsonl',
  'format' = 'json',
  'json.ignore-parse-errors' = 'true'
);

CREATE TABLE alert_topic (row_json STRING) WITH ('connector' = 'print', 'print-identifier' = 'alert_topic');
CREATE TABLE alert_table (row_json STRING) WITH ('connector' = 'print', 'print-identifier' = 'alert_table');

create view txn as
select txn_id, account_no, customer_id, direction, channel, branch_id, txn_time, cents, pt
from (
  select *, row_number() over (partition by txn_id order by pt) as rn
  from (
    select txn_id, account_no, customer_id, direction, channel, branch_id, txn_time, pt,
           cast(cast(trim(amount) as decimal(18, 2)) * 100 as bigint) as cents
    from account_txn
    where direction in ('in', 'out') and regexp(trim(amount), '^[0-9]+(\.[0-9]{0,2})?$')
  )
  where cents > 0
)
where rn = 1;

-- The previous (up to) 10 outflows of the customer: n of them, total cents.
create view outflow as
select txn_id, account_no, customer_id, direction, channel, branch_id, txn_time, cents,
       count(*) over w - 1 as n,
       sum(cents) over w - cents as total
from txn where direction = 'out'
window w as (partition by customer_id order by pt rows between 10 preceding and current row);

create view alerts as
select t.txn_id || ':large_amount' as alert_id, 'large_amount' as rule, t.txn_id, t.customer_id, t.account_no,
       c.segment, c.manager_id, t.branch_id, t.direction, t.channel, t.cents, t.txn_time,
       coalesce(cast(cast(s.threshold as decimal(18, 2)) * 100 as bigint), 5000000) as reference
from txn t
left join customer c on c.customer_id = t.customer_id
left join segment_threshold s on s.segment = c.segment
where t.cents >= coalesce(cast(cast(s.threshold as decimal(18, 2)) * 100 as bigint), 5000000)
union all
select o.txn_id || ':sudden_outflow', 'sudden_outflow', o.txn_id, o.customer_id, o.account_no,
       c.segment, c.manager_id, o.branch_id, o.direction, o.channel, o.cents, o.txn_time,
       (o.total + o.n / 2) / o.n
from outflow o
left join customer c on c.customer_id = o.customer_id
where o.n >= 3 and o.cents >= 1000000 and o.cents * o.n >= 5 * o.total;

create view alert_rows as
select json_object(
  'alert_id' value alert_id, 'rule' value rule, 'txn_id' value txn_id, 'customer_id' value customer_id,
  'account_no' value account_no, 'segment' value segment, 'manager_id' value manager_id,
  'branch_id' value branch_id, 'direction' value direction, 'channel' value channel,
  'amount' value cast(cents as double) / 100, 'reference_amount' value cast(reference as double) / 100,
  'txn_time' value txn_time
  null on null
) as row_json
from alerts;

insert into alert_topic select row_json from alert_rows;

insert into alert_table select row_json from alert_rows;
