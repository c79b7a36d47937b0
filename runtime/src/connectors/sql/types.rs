//! The column types a spec may declare, and the names it may use for
//! tables and columns.
//!
//! Spec text never becomes SQL: a column type is parsed against an
//! allow-list of type names (per dialect) with optional numeric sizes, and
//! `CREATE TABLE` is written from the parsed type, the name taken from the
//! allow-list and the sizes printed as numbers. Names are checked here and
//! always quoted by [`Dialect::quote`].

use std::fmt;

use super::dialect::Dialect;

/// The portable types, mapped to each dialect's own by [`Dialect::sql_type`].
pub(super) const LOGICAL: &[&str] = &["text", "bigint", "double", "decimal", "boolean", "timestamp", "json"];

/// What may follow a type name in parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sizes {
    None,
    /// `(n)`, optional: a length or a fractional-seconds precision.
    One,
    /// `(p)` or `(p,s)`, optional: precision and scale.
    Two,
}

/// SQL type names beyond the portable ones, per dialect.
const POSTGRES: &[(&str, Sizes)] = &[
    ("varchar", Sizes::One),
    ("character varying", Sizes::One),
    ("char", Sizes::One),
    ("character", Sizes::One),
    ("smallint", Sizes::None),
    ("integer", Sizes::None),
    ("int", Sizes::None),
    ("int2", Sizes::None),
    ("int4", Sizes::None),
    ("int8", Sizes::None),
    ("real", Sizes::None),
    ("float4", Sizes::None),
    ("float8", Sizes::None),
    ("double precision", Sizes::None),
    ("numeric", Sizes::Two),
    ("decimal", Sizes::Two),
    ("bool", Sizes::None),
    ("date", Sizes::None),
    ("time", Sizes::One),
    ("timestamp", Sizes::One),
    ("timestamptz", Sizes::One),
    ("timestamp with time zone", Sizes::None),
    ("timestamp without time zone", Sizes::None),
    ("jsonb", Sizes::None),
    ("uuid", Sizes::None),
    ("bytea", Sizes::None),
];

const MYSQL: &[(&str, Sizes)] = &[
    ("varchar", Sizes::One),
    ("char", Sizes::One),
    ("tinytext", Sizes::None),
    ("mediumtext", Sizes::None),
    ("longtext", Sizes::None),
    ("tinyint", Sizes::One),
    ("smallint", Sizes::One),
    ("mediumint", Sizes::One),
    ("int", Sizes::One),
    ("integer", Sizes::One),
    ("float", Sizes::None),
    ("real", Sizes::None),
    ("double precision", Sizes::None),
    ("numeric", Sizes::Two),
    ("decimal", Sizes::Two),
    ("bool", Sizes::None),
    ("date", Sizes::None),
    ("time", Sizes::One),
    ("datetime", Sizes::One),
    ("timestamp", Sizes::One),
    ("blob", Sizes::None),
    ("binary", Sizes::One),
    ("varbinary", Sizes::One),
];

const SQLITE: &[(&str, Sizes)] = &[
    ("varchar", Sizes::One),
    ("char", Sizes::One),
    ("integer", Sizes::None),
    ("int", Sizes::None),
    ("smallint", Sizes::None),
    ("real", Sizes::None),
    ("float", Sizes::None),
    ("double precision", Sizes::None),
    ("numeric", Sizes::Two),
    ("decimal", Sizes::Two),
    ("bool", Sizes::None),
    ("date", Sizes::None),
    ("datetime", Sizes::None),
    ("blob", Sizes::None),
];

/// The longest a size may be (a VARCHAR length, a precision).
const MAX_SIZE: u32 = 65_535;

/// A column type as the spec declares it, parsed: either a portable type
/// or an allowed SQL type name with its sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ColumnType {
    /// One of [`LOGICAL`] (as the allow-list spells it).
    Logical(&'static str),
    /// An allowed SQL type name (as the allow-list spells it) and its sizes.
    Sql { name: &'static str, sizes: [Option<u32>; 2] },
}

impl ColumnType {
    /// Parses `text` as a column type of `dialect`; the error says what is
    /// accepted.
    pub(super) fn parse(dialect: Dialect, text: &str) -> Result<ColumnType, String> {
        parse_with(allowed(dialect), text).ok_or_else(|| not_accepted(text, Some(dialect)))
    }

    /// Checks `text` before the dialect is known: it must be a type some
    /// dialect accepts (the connection decides which one, at start).
    pub(super) fn check_any(text: &str) -> Result<(), String> {
        let dialects = [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite];
        match dialects.iter().any(|&d| parse_with(allowed(d), text).is_some()) {
            true => Ok(()),
            false => Err(not_accepted(text, None)),
        }
    }

    /// The SQL `create_table` writes for this type; `key` says whether the
    /// column is part of a key (MySQL cannot index TEXT).
    pub(super) fn render(self, dialect: Dialect, key: bool) -> String {
        match self {
            ColumnType::Logical(logical) => dialect.sql_type(logical, key).to_owned(),
            ColumnType::Sql { name, sizes: [None, _] } => name.to_owned(),
            ColumnType::Sql { name, sizes: [Some(a), None] } => format!("{name}({a})"),
            ColumnType::Sql { name, sizes: [Some(a), Some(b)] } => format!("{name}({a},{b})"),
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ColumnType::Logical(name) | ColumnType::Sql { name, sizes: [None, _] } => f.write_str(name),
            ColumnType::Sql { name, sizes: [Some(a), None] } => write!(f, "{name}({a})"),
            ColumnType::Sql { name, sizes: [Some(a), Some(b)] } => write!(f, "{name}({a},{b})"),
        }
    }
}

fn allowed(dialect: Dialect) -> &'static [(&'static str, Sizes)] {
    match dialect {
        Dialect::Postgres => POSTGRES,
        Dialect::MySql => MYSQL,
        Dialect::Sqlite => SQLITE,
    }
}

/// `name` or `name(a)` or `name(a,b)`, the name one of `allowed` or of
/// [`LOGICAL`] (case and spacing free), the sizes decimal numbers.
fn parse_with(allowed: &'static [(&'static str, Sizes)], text: &str) -> Option<ColumnType> {
    let text = text.trim();
    let (name, sizes) = match text.split_once('(') {
        Some((name, rest)) => (name, Some(rest.strip_suffix(')')?)),
        None => (text, None),
    };
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase();
    if sizes.is_none()
        && let Some(logical) = LOGICAL.iter().copied().find(|l| *l == name)
    {
        return Some(ColumnType::Logical(logical));
    }
    let &(name, takes) = allowed.iter().find(|(n, _)| *n == name)?;
    let numbers = match sizes {
        None => Vec::new(),
        Some(inner) => inner.split(',').map(parse_size).collect::<Option<Vec<u32>>>()?,
    };
    let fits = match takes {
        Sizes::None => numbers.is_empty(),
        Sizes::One => numbers.len() <= 1,
        Sizes::Two => numbers.len() <= 2,
    };
    fits.then(|| ColumnType::Sql { name, sizes: [numbers.first().copied(), numbers.get(1).copied()] })
}

fn parse_size(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 5 {
        return None;
    }
    text.parse().ok().filter(|n| *n <= MAX_SIZE)
}

/// Says which types are accepted (for `dialect`, or for each).
fn not_accepted(text: &str, dialect: Option<Dialect>) -> String {
    let shown: String = text.chars().take(80).collect();
    let list = |d: Dialect| {
        allowed(d)
            .iter()
            .map(|(name, sizes)| match sizes {
                Sizes::None => (*name).to_owned(),
                Sizes::One => format!("{name}(N)"),
                Sizes::Two => format!("{name}(P,S)"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let dialects: Vec<Dialect> = match dialect {
        Some(d) => vec![d],
        None => vec![Dialect::Postgres, Dialect::MySql, Dialect::Sqlite],
    };
    let per_dialect: Vec<String> = dialects.iter().map(|&d| format!("{}: {}", d.name(), list(d))).collect();
    format!(
        "column type `{shown}` is not an accepted column type; use a portable type ({}) or a SQL type name with \
         optional sizes in parentheses ({})",
        LOGICAL.join(", "),
        per_dialect.join("; ")
    )
}

/// The longest table or column name (PostgreSQL's limit; MySQL's is 64).
const MAX_NAME_BYTES: usize = 63;

/// Checks a table or column name from the spec: letters, digits, `_` and
/// `$`, not starting with a digit, at most 63 bytes. `what` says where it
/// is used ("primary_key column"). Names are quoted in SQL anyway; the
/// check keeps them to what every dialect reads the same way.
pub(super) fn check_name(what: &str, name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$');
    if valid {
        return Ok(());
    }
    let shown: String = name.chars().take(80).collect();
    Err(format!(
        "{what} `{shown}` is not a valid name: use letters, digits, `_` and `$` (not starting with a digit, at most \
         {MAX_NAME_BYTES} bytes)"
    ))
}

/// Checks a table name, optionally `schema.table`, part by part.
pub(super) fn check_table(table: &str) -> Result<(), String> {
    match table.split_once('.') {
        Some((schema, name)) => {
            check_name("schema", schema).and_then(|()| check_name("table", name)).map_err(|e| format!("table: {e}"))
        }
        None => check_name("table", table),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_types_render_from_the_allow_list() {
        let t = ColumnType::parse(Dialect::Postgres, " Numeric( 18 , 2 ) ").unwrap();
        assert_eq!(t.render(Dialect::Postgres, false), "numeric(18,2)");
        let t = ColumnType::parse(Dialect::Postgres, "Character   Varying(64)").unwrap();
        assert_eq!(t.render(Dialect::Postgres, false), "character varying(64)");
        assert_eq!(ColumnType::parse(Dialect::MySql, "text").unwrap().render(Dialect::MySql, true), "VARCHAR(255)");
        assert_eq!(
            ColumnType::parse(Dialect::Sqlite, "DECIMAL").unwrap().render(Dialect::Sqlite, false),
            "DECIMAL TEXT"
        );
        assert_eq!(ColumnType::parse(Dialect::MySql, "varchar(20)").unwrap().to_string(), "varchar(20)");
        ColumnType::check_any("uuid").unwrap();
        ColumnType::check_any("datetime(3)").unwrap();
    }

    /// The attack of issue 16, and its relatives: nothing but a name and
    /// numbers gets through.
    #[test]
    fn anything_else_is_refused_with_the_accepted_list() {
        let attack = "text); ATTACH DATABASE '/data/sluice.db' AS m; UPDATE m.users SET is_admin = 1; --";
        for bad in [
            attack,
            "text)",
            "varchar(10) primary key",
            "varchar(10); drop table x",
            "varchar(1e3)",
            "varchar(-1)",
            "varchar(100000)",
            "numeric(18,2,1)",
            "bigint(20)",
            "text(5)",
            "int /* c */",
            "decimal(18,2) collate \"C\"",
            "\"text\"",
            "",
        ] {
            let err = ColumnType::parse(Dialect::Sqlite, bad).unwrap_err();
            assert!(err.contains("is not an accepted column type") && err.contains("portable type"), "{bad}: {err}");
            assert!(ColumnType::check_any(bad).is_err(), "{bad}");
        }
        let err = ColumnType::parse(Dialect::MySql, "uuid").unwrap_err();
        assert!(err.contains("MySQL") && err.contains("varchar(N)") && !err.contains("PostgreSQL"), "{err}");
    }

    #[test]
    fn names_are_letters_digits_and_underscores() {
        check_name("column", "amount_2").unwrap();
        check_name("column", "金额").unwrap();
        check_table("analytics.hs_order").unwrap();
        for bad in ["", "a b", "a\"b", "a`b", "a;b", "1a", "a.b", &"x".repeat(64), "x\u{0}"] {
            let err = check_name("column", bad).unwrap_err();
            assert!(err.contains("is not a valid name"), "{bad}: {err}");
        }
        assert!(check_table("a.b.c").is_err());
        assert!(check_table("main.x\"; --").is_err());
    }
}
