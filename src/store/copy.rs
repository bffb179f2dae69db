//! PostgreSQL's `COPY … FROM STDIN` for large batches: rows are written in COPY's text
//! format into a temporary table that lives until the transaction ends, and one set-based
//! statement moves them where they belong. A bound multi-row `INSERT` sends ~30,000
//! parameters a statement, each parsed and type-checked by the server; COPY's text is
//! parsed once, column by column (issue 21: the import of 100,000 members went from
//! ~33,000/s to the figure in the README's "Member state → Performance").
//!
//! The text format: columns separated by a tab, rows by a newline, `\N` for NULL, and a
//! backslash, tab, newline or carriage return inside a value escaped with a backslash.
//! Every other character (quotes, unicode) is itself.

use chrono::{DateTime, Utc};

use super::{Arg, StoreError, Tx};

/// Rows of COPY text, built a value at a time.
#[derive(Default)]
pub(crate) struct CopyText {
    buf: Vec<u8>,
    /// Whether the current row has a value yet (a tab comes before every later one).
    in_row: bool,
    rows: usize,
}

impl CopyText {
    pub(crate) fn with_capacity(bytes: usize) -> CopyText {
        CopyText { buf: Vec::with_capacity(bytes), ..CopyText::default() }
    }

    /// Appends one value to the current row. Lists are not column values.
    pub(crate) fn value(&mut self, arg: &Arg) {
        if self.in_row {
            self.buf.push(b'\t');
        }
        self.in_row = true;
        match arg {
            Arg::Text(None) | Arg::Int(None) | Arg::Timestamp(None) | Arg::Float(None) | Arg::Json(None) => {
                self.buf.extend_from_slice(b"\\N")
            }
            Arg::Text(Some(text)) | Arg::Json(Some(text)) => self.escaped(text),
            Arg::Int(Some(n)) => self.buf.extend_from_slice(n.to_string().as_bytes()),
            Arg::Bool(b) => self.buf.push(if *b { b't' } else { b'f' }),
            Arg::Timestamp(Some(at)) => self.buf.extend_from_slice(timestamp(*at).as_bytes()),
            Arg::Float(Some(x)) => {
                let text = if x.is_nan() {
                    "NaN".to_string()
                } else if x.is_infinite() {
                    if *x > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
                } else {
                    format!("{x:?}")
                };
                self.buf.extend_from_slice(text.as_bytes());
            }
            Arg::TextList(_) | Arg::IntList(_) => unreachable!("COPY carries column values, not lists"),
        }
    }

    /// Ends the current row.
    pub(crate) fn end_row(&mut self) {
        self.buf.push(b'\n');
        self.in_row = false;
        self.rows += 1;
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    fn escaped(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape = match b {
                b'\\' => b'\\',
                b'\t' => b't',
                b'\n' => b'n',
                b'\r' => b'r',
                _ => continue,
            };
            self.buf.extend_from_slice(&bytes[start..i]);
            self.buf.extend_from_slice(&[b'\\', escape]);
            start = i + 1;
        }
        self.buf.extend_from_slice(&bytes[start..]);
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// A timestamp as PostgreSQL stores it: whole microseconds, counted as sqlx counts them when
/// it binds one (from 2000-01-01, rounded toward that instant), so COPY and a bound
/// statement store the same value.
fn timestamp(at: DateTime<Utc>) -> String {
    let epoch = DateTime::from_timestamp(946_684_800, 0).expect("2000-01-01 is a timestamp");
    let stored = (at - epoch).num_microseconds().map_or(at, |us| epoch + chrono::Duration::microseconds(us));
    stored.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl Tx {
    /// A temporary table `name` shaped like the result of `query` (its columns and types,
    /// no rows, no constraints), dropped when the transaction ends; one left by an earlier
    /// write in the same transaction is dropped first.
    pub(crate) async fn copy_table(&mut self, name: &str, query: &str) -> Result<(), StoreError> {
        let mut sql = self.sql();
        sql.push(&format!("DROP TABLE IF EXISTS pg_temp.{name}"));
        self.execute(sql).await?;
        let mut sql = self.sql();
        sql.push(&format!("CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS {query} WITH NO DATA"));
        self.execute(sql).await?;
        Ok(())
    }

    /// `COPY {table} ({columns}) FROM STDIN` of `rows` (PostgreSQL only).
    pub(crate) async fn copy_in(&mut self, table: &str, columns: &str, rows: CopyText) -> Result<u64, StoreError> {
        let Tx::Postgres(tx) = self else { unreachable!("COPY is PostgreSQL's") };
        let mut copy = tx.copy_in_raw(&format!("COPY {table} ({columns}) FROM STDIN")).await?;
        copy.send(rows.into_bytes()).await?;
        Ok(copy.finish().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awkward_text_is_escaped_and_null_is_not_empty() {
        let mut rows = CopyText::default();
        rows.value(&Arg::Text(Some("a\tb\nc\\d\re \"q\" 'q' 名前 😀".into())));
        rows.value(&Arg::Text(None));
        rows.value(&Arg::Text(Some(String::new())));
        rows.value(&Arg::Text(Some("\\N".into())));
        rows.value(&Arg::Bool(true));
        rows.value(&Arg::Int(Some(-7)));
        rows.end_row();
        let text = String::from_utf8(rows.into_bytes()).unwrap();
        assert_eq!(text, "a\\tb\\nc\\\\d\\re \"q\" 'q' 名前 😀\t\\N\t\t\\\\N\tt\t-7\n");
    }

    #[test]
    fn timestamps_keep_the_microseconds_a_bound_value_keeps() {
        let at: DateTime<Utc> = "2026-06-01T02:00:05.123456789Z".parse().unwrap();
        assert_eq!(timestamp(at), "2026-06-01T02:00:05.123456Z");
        let before: DateTime<Utc> = "1990-06-01T02:00:05.123456789Z".parse().unwrap();
        assert_eq!(timestamp(before), "1990-06-01T02:00:05.123457Z");
    }
}
