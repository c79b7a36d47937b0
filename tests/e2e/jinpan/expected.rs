//! The batch SQL of 金盘: each normalised table computed in PostgreSQL from
//! the order documents (jsonb), independently of the jobs' Rust. For every
//! key, the row of the newest order version that has it (`gmt_modified`,
//! then `order_id`), the first within one document; rows whose key is
//! missing or blank are not kept. `jsonb_populate_record` types each row
//! as the table's columns, so both sides print the same text.

use jinpan_model::tables::{self, Column, Table};

/// `SELECT` of the columns as text, from `from`, in key order.
fn as_text(t: &Table, columns: &[Column], from: &str) -> String {
    let cells: Vec<String> = columns.iter().map(|c| format!("{}::text", c.name)).collect();
    format!("SELECT {} FROM {from} ORDER BY {}", cells.join(", "), t.key.join(", "))
}

/// The table's rows as the job wrote them.
pub fn actual(schema: &str, t: &Table, columns: &[Column]) -> String {
    as_text(t, columns, &format!("{schema}.{}", t.name))
}

/// The table's rows computed from the documents of table `orders`
/// (`order_id`, `user_id`, `gmt`, `doc`, `report`).
pub fn expected(schema: &str, t: &Table, columns: &[Column], orders: &str) -> String {
    as_text(t, columns, &format!("({}) e", latest(schema, t, orders)))
}

/// `jp_repayment` after post-loan: the plan from the documents, the status
/// from 盘宝's status table, `PENDING` where it has none.
pub fn expected_repayment(schema: &str, orders: &str) -> String {
    let t = tables::table(tables::REPAYMENT).expect("the repayment table");
    let joined = format!(
        "(SELECT coalesce(p.order_id, s.order_id) AS order_id, coalesce(p.period, s.period) AS period, p.user_id, \
         p.due_date, p.principal, p.interest, p.gmt_modified, coalesce(s.status, 'PENDING') AS repay_status, \
         s.repaid_amount, s.repaid_time, s.updated_at AS status_updated_at \
         FROM ({}) p FULL JOIN {schema}.pb_repayment_status s ON s.order_id = p.order_id AND s.period = p.period) e",
        latest(schema, t, orders)
    );
    as_text(t, t.columns, &joined)
}

/// The typed rows of `t`: per key, the newest version's.
fn latest(schema: &str, t: &Table, orders: &str) -> String {
    let key = t.key.join(", ");
    format!(
        "SELECT DISTINCT ON ({key}) r.* FROM (\
            SELECT rec.*, x.gmt AS v_gmt, x.order_id AS v_order, x.n AS v_n \
            FROM ({elements}) x, LATERAL jsonb_populate_record(NULL::{schema}.{table}, x.j) AS rec\
         ) r ORDER BY {key}, v_gmt DESC, v_order DESC, v_n",
        table = t.name,
        elements = elements(t.name, orders),
    )
}

/// One JSON object per row a document gives `table`, with its version
/// (`gmt`, `order_id`) and its place `n` in the document's list.
fn elements(table: &str, orders: &str) -> String {
    let version = "'user_id', o.user_id, 'order_id', o.order_id, 'gmt_modified', o.gmt";
    let list = |path: &str| {
        format!(
            "{orders} o, jsonb_array_elements(CASE WHEN jsonb_typeof({path}) = 'array' THEN {path} ELSE '[]' END) \
             WITH ORDINALITY AS a(x, n)"
        )
    };
    let keyed = |field: &str| format!("coalesce(btrim(a.x->>'{field}'), '') <> ''");
    let object = |path: &str| format!("jsonb_typeof({path}) = 'object'");
    match table {
        tables::ORDER => format!(
            "SELECT o.doc || jsonb_build_object('report_id', o.report->'report_id', 'report_source', \
             o.report->'source', {version}) AS j, o.gmt, o.order_id, 0::bigint AS n FROM {orders} o"
        ),
        tables::IDENTITY => format!(
            "SELECT o.report->'identity' || jsonb_build_object({version}) AS j, o.gmt, o.order_id, 0::bigint AS n \
             FROM {orders} o WHERE {}",
            object("o.report->'identity'")
        ),
        tables::COMPANY => format!(
            "SELECT jsonb_build_object('company_name', c->'name', 'company_phone', c->'phone', 'company_address', \
             c->'address', 'industry', c->'industry', {version}) AS j, o.gmt, o.order_id, 0::bigint AS n \
             FROM {orders} o, LATERAL (SELECT o.report->'company' AS c) company WHERE {}",
            object("c")
        ),
        tables::ADDRESS => format!(
            "SELECT a.x || jsonb_build_object('address_type', btrim(a.x->>'type'), {version}) AS j, o.gmt, o.order_id, a.n \
             FROM {} WHERE {}",
            list("o.report->'addresses'"),
            keyed("type")
        ),
        tables::BANK_CARD => format!(
            "SELECT a.x || jsonb_build_object('card_no', btrim(a.x->>'card_no'), 'reserved_mobile', a.x->'mobile', \
             {version}) AS j, o.gmt, o.order_id, a.n FROM {} WHERE {}",
            list("o.report->'bank_cards'"),
            keyed("card_no")
        ),
        tables::CONTACT => format!(
            "SELECT jsonb_build_object('contact_mobile', btrim(a.x->>'mobile'), 'contact_name', a.x->'name', \
             'relation', a.x->'relation', {version}) AS j, o.gmt, o.order_id, a.n FROM {} WHERE {}",
            list("o.report->'contacts'"),
            keyed("mobile")
        ),
        tables::PHONE => format!(
            "SELECT jsonb_build_object('mobile', btrim(a.x->>'mobile'), 'carrier', a.x->'carrier', 'location', \
             a.x->'location', 'is_primary', a.x->'primary', {version}) AS j, o.gmt, o.order_id, a.n \
             FROM {} WHERE {}",
            list("o.report->'phones'"),
            keyed("mobile")
        ),
        tables::DEVICE => format!(
            "SELECT a.x || jsonb_build_object('device_id', btrim(a.x->>'device_id'), {version}) AS j, o.gmt, \
             o.order_id, a.n FROM {} WHERE {}",
            list("o.report->'devices'"),
            keyed("device_id")
        ),
        tables::PLATFORM_ACCOUNT => format!(
            "SELECT a.x || jsonb_build_object('platform', btrim(a.x->>'platform'), {version}) AS j, o.gmt, \
             o.order_id, a.n FROM {} WHERE {}",
            list("o.report->'platform_accounts'"),
            keyed("platform")
        ),
        tables::REPAYMENT => format!(
            "SELECT a.x || jsonb_build_object({version}) AS j, o.gmt, o.order_id, a.n FROM {} \
             WHERE (a.x->>'period')::bigint >= 1",
            list("o.doc->'repayment_plan'")
        ),
        other => panic!("no batch SQL for table {other}"),
    }
}

/// A table of the order documents among `documents` (`seq`, `doc` jsonb,
/// NULL for what is not JSON) that the jobs accept: objects with an
/// `order_id`, a positive `user_id` and a `gmt_modified`. A table, not a
/// view, so the messages are parsed once for all the tables' queries.
pub fn orders_table(schema: &str, name: &str, documents: &str) -> String {
    format!(
        "CREATE TABLE {schema}.{name} AS \
         SELECT d.seq, d.doc, d.doc->>'order_id' AS order_id, (d.doc->>'user_id')::bigint AS user_id, \
                (d.doc->>'gmt_modified')::bigint AS gmt, d.doc->'credit_report' AS report \
         FROM ({documents}) d \
         WHERE jsonb_typeof(d.doc) = 'object' AND btrim(d.doc->>'order_id') <> '' \
           AND (d.doc->>'user_id')::bigint > 0 AND d.doc->>'gmt_modified' IS NOT NULL"
    )
}
