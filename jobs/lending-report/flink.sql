-- Lending risk reports in Flink SQL, for the side-by-side benchmark with
-- Apache Flink (tests/benches/seed_jobs/, docs/BENCHMARKS.md). Seed 004's text
-- is cut off before any SQL (it computes the reports in batch): this is the
-- equivalent of the Sluice job (jobs/lending-report, docs/jobs/lending.md),
-- written for this bench from the job's definitions and the batch SQL of
-- tests/e2e/lending.rs:
--
-- * state tables (`u_user`, `loan_list`): each row's latest version, newest
--   updatetime first (loans: then the higher status), ties to the first
--   arrival: Flink's Top-1 query, which retracts the old version when a newer
--   one arrives;
-- * the log table (`repay_log`): the first days each loan was 1+ and 30+ days
--   past due (a group aggregate);
-- * the four report tables as group aggregates over those, first loans by a
--   second Top-1 per borrower, and the vintage's months on book up to the
--   month of the latest event time seen on any feed (the data clock) and at
--   most 12, from a cross join with the mobs 0..12;
-- * rates rounded half up to four decimals from the integer counts, as the
--   job computes them; amounts in integer cents; dates in UTC+8.
--
-- Deviations: the change feeds are the generated JSON-lines files (the job
-- reads Kafka topics or files); the four report tables are print sinks, one
-- JSON object per changelog row, collapsed by the bench to the final tables.
-- Rows the job rejects are filtered out (a status outside 1..7, a disbursed
-- status without lend_time); malformed lines are skipped
-- (`json.ignore-parse-errors`).

SET 'table.local-time-zone' = 'GMT+08:00';

CREATE TABLE u_user (
  id BIGINT,
  channel STRING,
  inserttime BIGINT,
  updatetime BIGINT,
  isactive BIGINT
) WITH (
  'connector' = 'filesystem',
  'path' = '${data}/u_user.jsonl',
  'format' = 'json',
  'json.ignore-parse-errors' = 'true'
);

CREATE TABLE loan_list (
  id BIGINT,
  borrower_id BIGINT,
  apply_amount STRING,
  loan_amount STRING,
  prod_type BIGINT,
  status BIGINT,
  inserttime BIGINT,
  updatetime BIGINT,
  lend_time BIGINT
) WITH (
  'connector' = 'filesystem',
  'path' = '${data}/loan_list.jsonl',
  'format' = 'json',
  'json.ignore-parse-errors' = 'true'
);

CREATE TABLE repay_log (
  loan_id BIGINT,
  due_date STRING,
  dpd BIGINT,
  create_time BIGINT
) WITH (
  'connector' = 'filesystem',
  'path' = '${data}/repay_log.jsonl',
  'format' = 'json',
  'json.ignore-parse-errors' = 'true'
);

CREATE TABLE loan_funnel (row_json STRING) WITH ('connector' = 'print', 'print-identifier' = 'loan_funnel');
CREATE TABLE loan_approval (row_json STRING) WITH ('connector' = 'print', 'print-identifier' = 'loan_approval');
CREATE TABLE loan_disbursement (row_json STRING) WITH ('connector' = 'print', 'print-identifier' = 'loan_disbursement');
CREATE TABLE loan_vintage (row_json STRING) WITH ('connector' = 'print', 'print-identifier' = 'loan_vintage');

-- The latest version of each user and loan (state tables). The loans' order
-- (newest updatetime, then highest status) is one key, updatetime * 8 +
-- status: with two keys (`order by updatetime desc, status desc`) Flink 2.3
-- plans this Top-1 over an insert-only input as insert-only (changelogMode=[I]
-- in EXPLAIN CHANGELOG_MODE), so a replaced version is never retracted and
-- every version of a loan is counted; with one key it retracts as it must.
create view u as
select id, coalesce(channel, 'unknown') as channel, inserttime, coalesce(isactive, 1) as isactive
from (select *, row_number() over (partition by id order by updatetime desc) as rn from u_user)
where rn = 1;

create view l as
select id, borrower_id, prod_type, status, inserttime,
       case when status >= 5 then lend_time end as lend_time,
       cast(cast(trim(coalesce(loan_amount, apply_amount)) as decimal(18, 2)) * 100 as bigint) as amount_cents
from (
  select *, row_number() over (partition by id order by updatetime * 8 + status desc) as rn
  from loan_list where status between 1 and 7 and (status < 5 or lend_time is not null)
)
where rn = 1;

-- The log table folded: the first local days 1+ and 30+ days past due.
create view r as
select loan_id,
       min(case when dpd >= 1 then timestampadd(day, 1, to_date(due_date)) end) as d1,
       min(case when dpd >= 30 then timestampadd(day, 30, to_date(due_date)) end) as d30
from repay_log where dpd >= 0
group by loan_id;

-- The data clock as a month index (year * 12 + month - 1): changes a few times.
create view clock as
select max(year(d) * 12 + month(d) - 1) as cm from (
  select cast(to_timestamp_ltz(t, 3) as date) as d from (
    select updatetime as t from u_user
    union all select updatetime from loan_list where status between 1 and 7 and (status < 5 or lend_time is not null)
    union all select create_time from repay_log where dpd >= 0
  )
);

create view flags as
select borrower_id,
       max(case when status >= 3 then 1 else 0 end) as approved,
       max(case when status >= 5 then 1 else 0 end) as disbursed
from l group by borrower_id;

insert into loan_funnel
select json_object(
  'reg_date' value reg_date, 'channel' value channel, 'registered' value registered, 'applied' value applied,
  'approved' value approved, 'disbursed' value disbursed,
  'pass_rate' value case when applied > 0 then cast((approved * 20000 + applied) / (2 * applied) as double) / 10000 end,
  'conversion_rate' value case when registered > 0 then cast((disbursed * 20000 + registered) / (2 * registered) as double) / 10000 end
  null on null
) from (
  select reg_date, channel, count(*) as registered, count(borrower_id) as applied,
         coalesce(sum(approved), 0) as approved, coalesce(sum(disbursed), 0) as disbursed
  from (
    select cast(cast(to_timestamp_ltz(u.inserttime, 3) as date) as string) as reg_date, u.channel,
           f.borrower_id, f.approved, f.disbursed
    from u left join flags f on f.borrower_id = u.id
    where u.isactive <> 0
  )
  group by reg_date, channel
);

insert into loan_approval
select json_object(
  'apply_date' value apply_date, 'prod_type' value prod_type, 'applied' value applied, 'auditing' value auditing,
  'rejected' value rejected, 'approved' value approved,
  'pass_rate' value case when approved + rejected > 0
    then cast((approved * 20000 + approved + rejected) / (2 * (approved + rejected)) as double) / 10000 end
  null on null
) from (
  select apply_date, prod_type, count(*) as applied,
         count(*) filter (where status = 1) as auditing,
         count(*) filter (where status = 2) as rejected,
         count(*) filter (where status >= 3) as approved
  from (select cast(cast(to_timestamp_ltz(inserttime, 3) as date) as string) as apply_date, prod_type, status from l)
  group by apply_date, prod_type
);

-- Disbursed loans, and each borrower's first (earliest lend_time, then id).
create view dl as
select id, borrower_id, prod_type, lend_time, amount_cents, cast(to_timestamp_ltz(lend_time, 3) as date) as lend_day
from l where status >= 5;

create view first_loan as
select id from (select id, row_number() over (partition by borrower_id order by lend_time, id) as rn from dl)
where rn = 1;

insert into loan_disbursement
select json_object(
  'lend_date' value lend_date, 'prod_type' value prod_type, 'loans' value loans, 'first_loans' value first_loans,
  'amount' value cast(amount_cents as double) / 100
) from (
  select cast(d.lend_day as string) as lend_date, d.prod_type, count(*) as loans,
         sum(case when f.id is not null then 1 else 0 end) as first_loans, sum(d.amount_cents) as amount_cents
  from dl d left join first_loan f on f.id = d.id
  group by cast(d.lend_day as string), d.prod_type
);

-- Vintage: each disbursed loan's month, and the months on book at which it
-- first was 1+ / 30+ days past due (at least 0).
create view vl as
select m,
       case when d1 is not null then greatest(year(d1) * 12 + month(d1) - 1 - m, 0) end as o1,
       case when d30 is not null then greatest(year(d30) * 12 + month(d30) - 1 - m, 0) end as o30
from (
  select year(d.lend_day) * 12 + month(d.lend_day) - 1 as m, r.d1, r.d30
  from dl d left join r on r.loan_id = d.id
);

create view cells as
select months.m, mobs.k
from (select distinct m from vl) months
cross join (values (0), (1), (2), (3), (4), (5), (6), (7), (8), (9), (10), (11), (12)) as mobs(k)
cross join clock
where months.m + mobs.k <= clock.cm;

insert into loan_vintage
select json_object(
  'lend_month' value lpad(cast(m / 12 as string), 4, '0') || '-' || lpad(cast(mod(m, 12) + 1 as string), 2, '0'),
  'mob' value k, 'loans' value loans, 'overdue_1' value o1, 'overdue_30' value o30,
  'overdue_1_rate' value cast((o1 * 20000 + loans) / (2 * loans) as double) / 10000,
  'overdue_30_rate' value cast((o30 * 20000 + loans) / (2 * loans) as double) / 10000
) from (
  select c.m, c.k, count(*) as loans,
         count(*) filter (where vl.o1 <= c.k) as o1,
         count(*) filter (where vl.o30 <= c.k) as o30
  from cells c join vl on vl.m = c.m
  group by c.m, c.k
);
