//! What differs between PostgreSQL, MySQL/MariaDB and SQLite below the
//! statements: identifier quoting, the SQL types of the spec's logical
//! types, and which family a column's SQL type belongs to.

/// The database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Postgres,
    /// MySQL and MariaDB.
    MySql,
    Sqlite,
}

/// What a column holds, which decides how a JSON field is turned into text
/// for it and how its text is turned back into JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Text,
    Integer,
    Float,
    Decimal,
    Boolean,
    Timestamp,
    Json,
    /// Any other SQL type (uuid, date, bytea, enums...): values pass as text
    /// and the database converts them.
    Other,
}

impl Dialect {
    /// The dialect of a connection URL, from its scheme.
    pub(super) fn of_url(url: &str) -> Option<Dialect> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "mysql" | "mariadb" => Some(Dialect::MySql),
            "sqlite" => Some(Dialect::Sqlite),
            _ => None,
        }
    }

    /// `name` as a quoted identifier.
    pub(super) fn quote(self, name: &str) -> String {
        match self {
            Dialect::MySql => format!("`{}`", name.replace('`', "``")),
            Dialect::Postgres | Dialect::Sqlite => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// A table name, optionally `schema.table`, quoted part by part.
    pub(super) fn quote_table(self, table: &str) -> String {
        match table.split_once('.') {
            Some((schema, name)) => format!("{}.{}", self.quote(schema), self.quote(name)),
            None => self.quote(table),
        }
    }

    /// The database's name, for messages.
    pub(super) fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::MySql => "MySQL",
            Dialect::Sqlite => "SQLite",
        }
    }

    /// The SQL type `create_table` uses for one of the portable types
    /// ([`super::types::LOGICAL`]); `key` says whether the column is part
    /// of a key, since MySQL cannot index TEXT.
    pub(super) fn sql_type(self, logical: &str, key: bool) -> &'static str {
        match (self, logical) {
            (Dialect::Postgres, "text") => "text",
            (Dialect::Postgres, "bigint") => "bigint",
            (Dialect::Postgres, "double") => "double precision",
            (Dialect::Postgres, "decimal") => "numeric",
            (Dialect::Postgres, "boolean") => "boolean",
            (Dialect::Postgres, "timestamp") => "timestamptz",
            (Dialect::Postgres, "json") => "jsonb",
            // utf8mb4 VARCHAR(255) is 1020 bytes: three fit InnoDB's 3072-byte key.
            (Dialect::MySql, "text") if key => "VARCHAR(255)",
            (Dialect::MySql, "text") => "TEXT",
            (Dialect::MySql, "bigint") => "BIGINT",
            (Dialect::MySql, "double") => "DOUBLE",
            // MySQL's bare DECIMAL is DECIMAL(10,0); give room on both sides.
            (Dialect::MySql, "decimal") => "DECIMAL(38,10)",
            (Dialect::MySql, "boolean") => "BOOLEAN",
            (Dialect::MySql, "timestamp") => "DATETIME(3)",
            (Dialect::MySql, "json") => "JSON",
            (Dialect::Sqlite, "text") => "TEXT",
            (Dialect::Sqlite, "bigint") => "INTEGER",
            (Dialect::Sqlite, "double") => "REAL",
            // SQLite has no decimal type, and NUMERIC affinity turns
            // 12345678901234.56 into a REAL (it keeps 15 digits): a name
            // with TEXT in it gives TEXT affinity, which keeps every digit.
            (Dialect::Sqlite, "decimal") => "DECIMAL TEXT",
            (Dialect::Sqlite, "boolean") => "BOOLEAN",
            (Dialect::Sqlite, "timestamp") => "TIMESTAMP",
            (Dialect::Sqlite, "json") => "JSON",
            (_, other) => unreachable!("`{other}` is not a portable type"),
        }
    }

    /// A column expression read as text, whatever its type, so rows come
    /// back the same way from every database.
    pub(super) fn as_text(self, expr: &str) -> String {
        match self {
            Dialect::Postgres => format!("{expr}::text"),
            Dialect::MySql => format!("CAST({expr} AS CHAR)"),
            Dialect::Sqlite => format!("CAST({expr} AS TEXT)"),
        }
    }

    /// The SQL type of an append sink's id column when `create_table` adds it.
    pub(super) fn id_type(self) -> &'static str {
        match self {
            // The longest VARCHAR InnoDB can index in utf8mb4 (3072 bytes).
            Dialect::MySql => "VARCHAR(768)",
            Dialect::Postgres | Dialect::Sqlite => "TEXT",
        }
    }

    /// The family of a SQL type as the database reports it (or as a spec
    /// gives it).
    pub(super) fn family(self, sql_type: &str) -> Family {
        // MySQL has no boolean type: BOOLEAN is tinyint(1).
        if self == Dialect::MySql && sql_type.trim().to_ascii_lowercase().starts_with("tinyint(1)") {
            return Family::Boolean;
        }
        let base = base_type(sql_type);
        match base.as_str() {
            "text" | "varchar" | "character varying" | "character" | "char" | "bpchar" | "nchar" | "nvarchar"
            | "name" | "citext" | "clob" | "tinytext" | "mediumtext" | "longtext" | "enum" | "set" | "string" => {
                Family::Text
            }
            "bigint" | "integer" | "int" | "smallint" | "tinyint" | "mediumint" | "int2" | "int4" | "int8"
            | "bigserial" | "serial" => Family::Integer,
            "double precision" | "double" | "real" | "float" | "float4" | "float8" => Family::Float,
            "numeric" | "decimal" | "dec" | "fixed" | "decimal text" => Family::Decimal,
            "boolean" | "bool" => Family::Boolean,
            "timestamp" | "timestamptz" | "timestamp with time zone" | "timestamp without time zone" | "datetime" => {
                Family::Timestamp
            }
            "json" | "jsonb" => Family::Json,
            // SQLite accepts any type name; its affinity rules decide.
            _ if self == Dialect::Sqlite && base.contains("int") => Family::Integer,
            _ if self == Dialect::Sqlite && ["char", "clob", "text"].iter().any(|t| base.contains(t)) => Family::Text,
            _ => Family::Other,
        }
    }
}

/// A type name without its modifiers, lower case: `numeric(20,2)` ->
/// `numeric`, `bigint(20) unsigned` -> `bigint`, `timestamp(3) with time
/// zone` -> `timestamp with time zone`.
fn base_type(sql_type: &str) -> String {
    let mut out = String::with_capacity(sql_type.len());
    let mut depth = 0usize;
    for c in sql_type.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c.to_ascii_lowercase()),
            _ => {}
        }
    }
    let words: Vec<&str> =
        out.split_whitespace().filter(|w| !matches!(*w, "unsigned" | "signed" | "zerofill")).collect();
    words.join(" ")
}

/// Whether a column of family `table` can hold values declared as `spec`
/// without loss: the same family, or a wider numeric one, or JSON kept in
/// a text column (MariaDB's JSON type is LONGTEXT).
pub(super) fn compatible(spec: Family, table: Family) -> bool {
    spec == table
        || matches!(
            (spec, table),
            (Family::Integer, Family::Decimal | Family::Float)
                | (Family::Float, Family::Decimal)
                | (Family::Json, Family::Text)
        )
}

/// Whether two SQL type names are the same type, for spec types no family
/// covers: compared by base name, case-insensitively.
pub(super) fn same_base_type(a: &str, b: &str) -> bool {
    base_type(a) == base_type(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_of_reported_types() {
        assert_eq!(Dialect::Postgres.family("numeric(20,2)"), Family::Decimal);
        assert_eq!(Dialect::Postgres.family("timestamp(3) with time zone"), Family::Timestamp);
        assert_eq!(Dialect::Postgres.family("character varying(64)"), Family::Text);
        assert_eq!(Dialect::Postgres.family("uuid"), Family::Other);
        assert_eq!(Dialect::MySql.family("tinyint(1)"), Family::Boolean);
        assert_eq!(Dialect::MySql.family("bigint(20) unsigned"), Family::Integer);
        assert_eq!(Dialect::MySql.family("decimal(38,10)"), Family::Decimal);
        assert_eq!(Dialect::Sqlite.family("UNSIGNED BIG INT"), Family::Integer);
        assert_eq!(Dialect::Sqlite.family("NUMERIC"), Family::Decimal);
        assert_eq!(Dialect::Sqlite.family("DECIMAL TEXT"), Family::Decimal);
    }

    #[test]
    fn logical_types_and_compatibility() {
        for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
            for (logical, family) in [
                ("text", Family::Text),
                ("bigint", Family::Integer),
                ("double", Family::Float),
                ("decimal", Family::Decimal),
                ("boolean", Family::Boolean),
                ("timestamp", Family::Timestamp),
                ("json", Family::Json),
            ] {
                assert_eq!(d.family(d.sql_type(logical, false)), family, "{d:?} {logical}");
            }
        }
        assert!(!compatible(Family::Decimal, Family::Text));
        assert!(compatible(Family::Integer, Family::Decimal));
        assert!(same_base_type("UUID", "uuid"));
        assert_eq!(Dialect::of_url("mariadb://h/db"), Some(Dialect::MySql));
        assert_eq!(Dialect::MySql.quote("a`b"), "`a``b`");
    }
}
