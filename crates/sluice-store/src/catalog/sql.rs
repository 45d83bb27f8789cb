//! Portable SQL: the catalog's queries are written once, in what SQLite and PostgreSQL both
//! accept (`?N` parameters, `ON CONFLICT`, `RETURNING`, `CAST(… AS BIGINT)`, `octet_length`),
//! and run through [`Sql`] on either engine (`sqlite.rs`, `postgres.rs`). Values cross the
//! boundary as [`Value`]s, so no engine's types leak into the catalog's code; the few places
//! where the engines differ ask [`Sql::dialect`].

use crate::error::{Result, StoreError};

/// A value bound to a parameter or read from a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// The engine a statement runs on, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A connection, or a transaction on one: what the catalog's queries run on.
pub trait Sql {
    fn dialect(&self) -> Dialect;

    /// Runs a statement; returns how many rows it changed.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64>;

    /// Runs a query and calls `each` on its rows in order, as they are read (a large result is
    /// never held whole). An error from `each` stops the query and is returned.
    fn for_each_row(&self, sql: &str, params: &[Value], each: &mut dyn FnMut(&Row) -> Result<()>) -> Result<()>;
}

impl dyn Sql + '_ {
    /// Every row, mapped.
    pub fn query_map<T>(&self, sql: &str, params: &[Value], mut map: impl FnMut(&Row) -> Result<T>) -> Result<Vec<T>> {
        let mut rows = Vec::new();
        self.for_each_row(sql, params, &mut |row| {
            rows.push(map(row)?);
            Ok(())
        })?;
        Ok(rows)
    }

    /// The first row, mapped, if there is one.
    pub fn query_opt<T>(&self, sql: &str, params: &[Value], map: impl FnOnce(&Row) -> Result<T>) -> Result<Option<T>> {
        let mut map = Some(map);
        let mut found = None;
        self.for_each_row(sql, params, &mut |row| {
            if let Some(map) = map.take() {
                found = Some(map(row)?);
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// The first row, mapped; a query that finds none is an inconsistency.
    pub fn query_row<T>(&self, sql: &str, params: &[Value], map: impl FnOnce(&Row) -> Result<T>) -> Result<T> {
        self.query_opt(sql, params, map)?
            .ok_or_else(|| StoreError::Corrupt(format!("a query that always returns a row found none: {sql}")))
    }

    /// The first column of the first row, if there is a row.
    pub fn query_value_opt<T: FromValue>(&self, sql: &str, params: &[Value]) -> Result<Option<T>> {
        self.query_opt(sql, params, |row| row.get(0))
    }

    /// The first column of the first row.
    pub fn query_value<T: FromValue>(&self, sql: &str, params: &[Value]) -> Result<T> {
        self.query_row(sql, params, |row| row.get(0))
    }

    /// The first column of every row.
    pub fn query_column<T: FromValue>(&self, sql: &str, params: &[Value]) -> Result<Vec<T>> {
        self.query_map(sql, params, |row| row.get(0))
    }
}

/// One row of a result.
#[derive(Debug, Default)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    pub fn new(values: Vec<Value>) -> Self {
        Self { values }
    }

    /// Column `index` as `T`; a missing column or a value of another type is an inconsistency
    /// (the schema says what each column holds).
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T> {
        let value = self.values.get(index).unwrap_or(&Value::Null);
        T::from_value(value).ok_or_else(|| {
            StoreError::Corrupt(format!("column {index} holds {value:?}, not {}", std::any::type_name::<T>()))
        })
    }
}

/// What a parameter can be bound from.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

/// What a column can be read as.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Option<Self>;
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
        impl FromValue for $t {
            fn from_value(value: &Value) -> Option<Self> {
                match value {
                    Value::Int(n) => <$t>::try_from(*n).ok(),
                    _ => None,
                }
            }
        }
    )*};
}
integers!(i64, i32, u32, u64, usize);

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(n) => Some(*n != 0),
            _ => None,
        }
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Real(x) => Some(*x),
            Value::Int(n) => Some(*n as f64),
            _ => None,
        }
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Blob(bytes) => Some(bytes.clone()),
            _ => None,
        }
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

/// The parameters of a statement, in order: `params![pipeline, version]`.
macro_rules! params {
    () => { &[] as &[$crate::catalog::sql::Value] };
    ($($param:expr),+ $(,)?) => {
        &[$($crate::catalog::sql::ToValue::to_value(&$param)),+] as &[$crate::catalog::sql::Value]
    };
}
pub(crate) use params;

/// Rows per multi-row statement ([`insert_rows`], [`placeholders`]): one round trip carries
/// this many, and the engines' statement caches see two shapes (a full group and one row).
pub const ROWS_PER_STATEMENT: usize = 32;

/// Inserts `rows` (each `columns` values) with `INSERT … VALUES (…), (…) {tail}`, a full group
/// of [`ROWS_PER_STATEMENT`] per statement and the rest one by one.
pub fn insert_rows(t: &dyn Sql, head: &str, tail: &str, columns: usize, rows: &[Vec<Value>]) -> Result<()> {
    let statement = |count: usize| {
        let tuples: Vec<String> = (0..count)
            .map(|row| {
                let fields: Vec<String> = (1..=columns).map(|column| format!("?{}", row * columns + column)).collect();
                format!("({})", fields.join(", "))
            })
            .collect();
        format!("{head} VALUES {} {tail}", tuples.join(", "))
    };
    let mut groups = rows.chunks_exact(ROWS_PER_STATEMENT);
    if groups.len() > 0 {
        let full = statement(ROWS_PER_STATEMENT);
        for group in groups.by_ref() {
            t.execute(&full, &group.concat())?;
        }
    }
    let single = statement(1);
    for row in groups.remainder() {
        t.execute(&single, row)?;
    }
    Ok(())
}

/// `?first, ?first+1, …`: `count` numbered parameters, for an `IN (…)` list.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|n| format!("?{n}")).collect::<Vec<_>>().join(", ")
}

/// Where the catalog's connections come from: a read runs on a consistent snapshot, a write in
/// one transaction that no other writer of the catalog interleaves with (SQLite's one writer;
/// a PostgreSQL advisory lock), committed when `work` returns `Ok` and rolled back otherwise.
pub trait Database: Send + Sync {
    fn read(&self, work: &mut dyn FnMut(&dyn Sql) -> Result<()>) -> Result<()>;
    fn write(&self, work: &mut dyn FnMut(&dyn Sql) -> Result<()>) -> Result<()>;
    /// Waits for the lock called `name`, held (across transactions) until the returned guard
    /// drops; a process that dies holding it lets it go.
    fn hold_lock(&self, name: &str) -> Result<Box<dyn Send>>;
    /// Where files that belong with the catalog live (rotated audit segments).
    fn files_dir(&self) -> &std::path::Path;
}

impl dyn Database + '_ {
    /// [`Database::read`] with a result.
    pub fn read_with<T>(&self, work: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        let mut work = Some(work);
        let mut value = None;
        self.read(&mut |sql| {
            let work = work.take().expect("a read runs its work once");
            value = Some(work(sql)?);
            Ok(())
        })?;
        Ok(value.expect("a read that succeeded ran its work"))
    }

    /// [`Database::write`] with a result.
    pub fn write_with<T>(&self, work: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        let mut work = Some(work);
        let mut value = None;
        self.write(&mut |sql| {
            let work = work.take().expect("a write runs its work once");
            value = Some(work(sql)?);
            Ok(())
        })?;
        Ok(value.expect("a write that succeeded ran its work"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_convert_both_ways_and_mismatches_are_errors() {
        let row = Row::new(vec![Value::Int(7), Value::Null, Value::Text("x".into()), Value::Blob(vec![1])]);
        assert_eq!(row.get::<i64>(0).unwrap(), 7);
        assert!(row.get::<bool>(0).unwrap());
        assert_eq!(row.get::<Option<String>>(1).unwrap(), None);
        assert_eq!(row.get::<String>(2).unwrap(), "x");
        assert_eq!(row.get::<Vec<u8>>(3).unwrap(), [1]);
        assert!(row.get::<String>(0).is_err());
        assert!(row.get::<u32>(1).is_err());
        let bound = params![1i64, "a", None::<String>, true];
        assert_eq!(bound, [Value::Int(1), Value::Text("a".into()), Value::Null, Value::Int(1)]);
    }
}
