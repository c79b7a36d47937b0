//! The normalised tables of 金盘, one per kind of fact in a credit report,
//! plus orders and repayments. Every table carries `user_id` or
//! `order_id` (金盘's two common keys) and the version of the order its row
//! came from (`order_id`, `gmt_modified`).
//!
//! A table with several rows per user has a composite key: a user's bank
//! cards by `(user_id, card_no)`, phones by `(user_id, mobile)`, and so on.
//! The sink of each table is named after it (`[sinks.jp_order]`), and so
//! is the compensation job's dimension over it.
//!
//! `jp_repayment` has two writers that own different columns: the plan
//! (from orders) and the status (from post-loan). Their SQL sinks list only
//! their own columns, so neither overwrites the other's.

/// One column: its name and SQL type (also the sink spec's `columns` type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub sql_type: &'static str,
}

/// A table: its name, key columns and columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub key: &'static [&'static str],
    pub columns: &'static [Column],
}

impl Table {
    /// The columns the order splitting writes (for `jp_repayment`, the
    /// plan columns; the status columns are post-loan's).
    pub fn sync_columns(&self) -> Vec<Column> {
        if self.name == REPAYMENT {
            return self.columns.iter().filter(|c| !REPAYMENT_STATUS_COLUMNS.contains(&c.name)).copied().collect();
        }
        self.columns.to_vec()
    }
}

pub const ORDER: &str = "jp_order";
pub const IDENTITY: &str = "jp_user_identity";
pub const ADDRESS: &str = "jp_user_address";
pub const BANK_CARD: &str = "jp_bank_card";
pub const COMPANY: &str = "jp_user_company";
pub const CONTACT: &str = "jp_user_contact";
pub const PHONE: &str = "jp_user_phone";
pub const DEVICE: &str = "jp_user_device";
pub const PLATFORM_ACCOUNT: &str = "jp_platform_account";
pub const REPAYMENT: &str = "jp_repayment";

/// The columns of `jp_repayment` that the post-loan job writes (besides
/// the key `order_id`, `period`).
pub const REPAYMENT_STATUS_COLUMNS: &[&str] = &["repay_status", "repaid_amount", "repaid_time", "status_updated_at"];

const fn col(name: &'static str, sql_type: &'static str) -> Column {
    Column { name, sql_type }
}

const ORDER_ID: Column = col("order_id", "varchar(20)");
const USER_ID: Column = col("user_id", "bigint");
const GMT_MODIFIED: Column = col("gmt_modified", "bigint");

/// Every table, orders first.
pub const TABLES: &[Table] = &[
    Table {
        name: ORDER,
        key: &["order_id"],
        columns: &[
            ORDER_ID,
            USER_ID,
            col("merchant_id", "varchar(8)"),
            col("loan_id", "varchar(20)"),
            col("product", "varchar(32)"),
            col("amount", "numeric(18,2)"),
            col("periods", "integer"),
            col("annual_rate", "numeric(8,4)"),
            col("status", "varchar(16)"),
            col("apply_time", "bigint"),
            col("report_id", "varchar(24)"),
            col("report_source", "integer"),
            GMT_MODIFIED,
        ],
    },
    Table {
        name: IDENTITY,
        key: &["user_id"],
        columns: &[
            USER_ID,
            col("name", "varchar(32)"),
            col("id_card", "varchar(18)"),
            col("gender", "varchar(4)"),
            col("birthday", "date"),
            col("nation", "varchar(16)"),
            col("id_address", "varchar(128)"),
            ORDER_ID,
            GMT_MODIFIED,
        ],
    },
    Table {
        name: ADDRESS,
        key: &["user_id", "address_type"],
        columns: &[
            USER_ID,
            col("address_type", "varchar(16)"),
            col("province", "varchar(16)"),
            col("city", "varchar(16)"),
            col("district", "varchar(16)"),
            col("detail", "varchar(128)"),
            ORDER_ID,
            GMT_MODIFIED,
        ],
    },
    Table {
        name: BANK_CARD,
        key: &["user_id", "card_no"],
        columns: &[
            USER_ID,
            col("card_no", "varchar(19)"),
            col("bank_name", "varchar(32)"),
            col("card_type", "varchar(8)"),
            col("reserved_mobile", "varchar(11)"),
            ORDER_ID,
            GMT_MODIFIED,
        ],
    },
    Table {
        name: COMPANY,
        key: &["user_id"],
        columns: &[
            USER_ID,
            col("company_name", "varchar(64)"),
            col("company_phone", "varchar(16)"),
            col("company_address", "varchar(128)"),
            col("industry", "varchar(16)"),
            ORDER_ID,
            GMT_MODIFIED,
        ],
    },
    Table {
        name: CONTACT,
        key: &["user_id", "contact_mobile"],
        columns: &[
            USER_ID,
            col("contact_mobile", "varchar(11)"),
            col("contact_name", "varchar(32)"),
            col("relation", "varchar(8)"),
            ORDER_ID,
            GMT_MODIFIED,
        ],
    },
    Table {
        name: PHONE,
        key: &["user_id", "mobile"],
        columns: &[
            USER_ID,
            col("mobile", "varchar(11)"),
            col("carrier", "varchar(8)"),
            col("location", "varchar(32)"),
            col("is_primary", "boolean"),
            ORDER_ID,
            GMT_MODIFIED,
        ],
    },
    Table {
        name: DEVICE,
        key: &["user_id", "device_id"],
        columns: &[
            USER_ID,
            col("device_id", "varchar(64)"),
            col("os", "varchar(16)"),
            col("model", "varchar(32)"),
            col("app_version", "varchar(16)"),
            ORDER_ID,
            GMT_MODIFIED,
        ],
    },
    Table {
        name: PLATFORM_ACCOUNT,
        key: &["user_id", "platform"],
        columns: &[USER_ID, col("platform", "varchar(16)"), col("account", "varchar(64)"), ORDER_ID, GMT_MODIFIED],
    },
    Table {
        name: REPAYMENT,
        key: &["order_id", "period"],
        columns: &[
            ORDER_ID,
            col("period", "integer"),
            USER_ID,
            col("due_date", "date"),
            col("principal", "numeric(18,2)"),
            col("interest", "numeric(18,2)"),
            GMT_MODIFIED,
            col("repay_status", "varchar(16)"),
            col("repaid_amount", "numeric(18,2)"),
            col("repaid_time", "bigint"),
            col("status_updated_at", "bigint"),
        ],
    },
];

/// The table called `name`.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// PostgreSQL DDL of every table, as `schema/postgres.sql` holds it.
/// Key columns are NOT NULL; a repayment's status starts as `PENDING`.
pub fn postgres_ddl() -> String {
    let mut out = String::from(
        "-- The normalised tables of 金盘 (generated by jinpan_model::tables::postgres_ddl;\n\
         -- a test keeps this file equal to it).\n",
    );
    for t in TABLES {
        out.push_str(&format!("\nCREATE TABLE IF NOT EXISTS {} (\n", t.name));
        for c in t.columns {
            let constraint = if t.key.contains(&c.name) {
                " NOT NULL"
            } else if c.name == "repay_status" {
                " NOT NULL DEFAULT 'PENDING'"
            } else {
                ""
            };
            out.push_str(&format!("    {} {}{constraint},\n", c.name, c.sql_type));
        }
        out.push_str(&format!("    PRIMARY KEY ({})\n);\n", t.key.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_file_is_the_generated_ddl() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/postgres.sql");
        if std::env::var_os("JINPAN_BLESS").is_some() {
            std::fs::write(path, postgres_ddl()).unwrap();
        }
        let file = std::fs::read_to_string(path).unwrap();
        assert_eq!(file, postgres_ddl(), "schema/postgres.sql is stale: rerun this test with JINPAN_BLESS=1");
    }

    #[test]
    fn every_table_has_its_keys_and_version_columns() {
        assert_eq!(TABLES.len(), 10);
        for t in TABLES {
            let names: Vec<&str> = t.columns.iter().map(|c| c.name).collect();
            for k in t.key {
                assert!(names.contains(k), "{}: key column {k}", t.name);
            }
            for needed in ["order_id", "user_id", "gmt_modified"] {
                assert!(names.contains(&needed), "{}: {needed}", t.name);
            }
        }
        let repayment = table(REPAYMENT).unwrap().sync_columns();
        assert!(repayment.iter().all(|c| !REPAYMENT_STATUS_COLUMNS.contains(&c.name)));
        assert_eq!(repayment.len(), 7);
    }
}
