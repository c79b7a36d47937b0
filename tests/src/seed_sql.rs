//! Expected results of the seed jobs from the seeds' own SQL, run by
//! PostgreSQL over the same events: what the end-to-end and console suites
//! compare sink tables with.

use serde_json::Value;
use sqlx::Row;

use crate::services::postgres_url;

/// hourly-premium's `last_order` view and `hs_order` insert, over the orders
/// in arrival order (`seq`), in UTC+8.
const HOURLY_PREMIUM: &str = "
    with last_order as (
        select distinct on (id) id, order_no, customer_tel, gmt_modified::bigint as gmt_modified,
               account_payble::numeric as account_payble
        from {events} order by id, seq::bigint desc
    )
    select to_char(to_timestamp(gmt_modified / 1000) at time zone 'UTC' + interval '8 hours', 'YYYYMMDDHH24'),
           sum(coalesce(account_payble, 0))::numeric(18, 2)::text,
           count(distinct order_no)::text,
           count(distinct customer_tel)::text
    from last_order group by 1 order by 1";

/// The `hs_order` table hourly-premium must give over `orders` (each a
/// record key and a `user_order` row, in arrival order): rows of biz_date,
/// total_premium, policy_cnt and policy_holder_cnt as text, by biz_date.
pub async fn hourly_premium(orders: &[(u64, Value)]) -> Vec<Vec<String>> {
    let pool = sqlx::PgPool::connect(&postgres_url()).await.expect("connect to PostgreSQL");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let table = format!("expected_user_order_{}_{nanos}", std::process::id());
    sqlx::query(&format!(
        "create table {table} (seq text, id text, order_no text, customer_tel text, gmt_modified text, \
         account_payble text)"
    ))
    .execute(&pool)
    .await
    .expect("create the events table");
    let text = |e: &Value, f: &str| Some(e[f].to_string().trim_matches('"').to_owned());
    for (chunk_start, chunk) in orders.chunks(1000).enumerate().map(|(i, c)| (i * 1000, c)) {
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
            "insert into {table} (seq, id, order_no, customer_tel, gmt_modified, account_payble) "
        ));
        q.push_values(chunk.iter().enumerate(), |mut b, (i, (_, e))| {
            b.push_bind((chunk_start + i).to_string())
                .push_bind(text(e, "id"))
                .push_bind(text(e, "order_no"))
                .push_bind(text(e, "customer_tel"))
                .push_bind(text(e, "gmt_modified"))
                .push_bind(text(e, "account_payble"));
        });
        q.build().execute(&pool).await.expect("load the events");
    }
    let rows = sqlx::query(&HOURLY_PREMIUM.replace("{events}", &table)).fetch_all(&pool).await.expect("the seed SQL");
    let _ = sqlx::query(&format!("drop table if exists {table}")).execute(&pool).await;
    rows.iter().map(|r| (0..r.len()).map(|i| r.get::<Option<String>, _>(i).unwrap_or_default()).collect()).collect()
}
