//! Result sets: typed columns and cells, and their encoding in PostgreSQL's text and binary
//! formats (pgwire encodes; timestamps with their offset are ours).

use bytes::{BufMut, BytesMut};
use futures_util::stream;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse};
use pgwire::api::Type;
use pgwire::error::PgWireResult;
use pgwire::types::format::FormatOptions;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql};
use std::error::Error;
use std::sync::Arc;

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// An instant (epoch microseconds) shown at a UTC offset (seconds).
    Time(Timestamp),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timestamp {
    pub micros: i64,
    pub offset_seconds: i32,
}

impl Timestamp {
    /// From RFC 3339 (what the query model answers with).
    pub fn parse(s: &str) -> Option<Timestamp> {
        let zoned: jiff::Timestamp = s.parse().ok()?;
        let offset = s
            .rfind(['+', '-'])
            .filter(|&i| i > 10)
            .and_then(|i| {
                let sign = if s[i..].starts_with('-') { -1 } else { 1 };
                let (h, m) = s[i + 1..].split_once(':').unwrap_or((&s[i + 1..], "0"));
                Some(sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60))
            })
            .unwrap_or(0);
        Some(Timestamp {
            micros: zoned.as_microsecond(),
            offset_seconds: offset,
        })
    }

    /// PostgreSQL's text form: `2026-03-01 00:00:00-05`, minutes of the offset only when set.
    fn text(&self) -> String {
        let offset = jiff::tz::Offset::from_seconds(self.offset_seconds).unwrap_or(jiff::tz::Offset::UTC);
        let at = jiff::Timestamp::from_microsecond(self.micros)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(jiff::tz::TimeZone::fixed(offset));
        let secs = self.offset_seconds.abs();
        let sign = if self.offset_seconds < 0 { '-' } else { '+' };
        let (h, m) = (secs / 3600, secs % 3600 / 60);
        let mut s = at.strftime("%Y-%m-%d %H:%M:%S").to_string();
        if at.subsec_nanosecond() != 0 {
            s.push_str(&format!(".{:06}", at.subsec_nanosecond() / 1000));
        }
        s.push_str(&format!("{sign}{h:02}"));
        if m != 0 {
            s.push_str(&format!(":{m:02}"));
        }
        s
    }
}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

impl ToSql for Timestamp {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_i64(self.micros - PG_EPOCH_MICROS);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }

    postgres_types::to_sql_checked!();
}

impl ToSqlText for Timestamp {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_slice(self.text().as_bytes());
        Ok(IsNull::No)
    }
}

impl Cell {
    /// The cell as text (for a column whose type the value does not have).
    pub fn to_text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Bool(b) => Some(if *b { "t" } else { "f" }.into()),
            Cell::Int(i) => Some(i.to_string()),
            Cell::Float(f) => Some(f.to_string()),
            Cell::Text(s) => Some(s.clone()),
            Cell::Time(t) => Some(t.text()),
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            Cell::Int(i) => Some(*i),
            Cell::Bool(b) => Some(*b as i64),
            Cell::Float(f) => Some(*f as i64),
            Cell::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Int(i) => Some(*i as f64),
            Cell::Float(f) => Some(*f),
            Cell::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            Cell::Bool(b) => Some(*b),
            Cell::Int(i) => Some(*i != 0),
            Cell::Text(s) => Some(matches!(s.as_str(), "t" | "true" | "1" | "on" | "yes")),
            _ => None,
        }
    }
}

/// A column of a result set.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub pg_type: Type,
}

impl Column {
    pub fn new(name: impl Into<String>, pg_type: Type) -> Column {
        Column {
            name: name.into(),
            pg_type,
        }
    }
}

/// Rows with their columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

impl ResultSet {
    /// The row description in the formats the client asked for.
    pub fn fields(&self, formats: &Format) -> Vec<FieldInfo> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let format = match formats {
                    Format::Individual(v) if v.is_empty() => FieldFormat::Text,
                    Format::Individual(v) if i >= v.len() => formats_last(v),
                    f => f.format_for(i),
                };
                FieldInfo::new(c.name.clone(), None, None, c.pg_type.clone(), format)
            })
            .collect()
    }

    pub fn into_response(self, formats: &Format) -> PgWireResult<QueryResponse> {
        let fields = Arc::new(self.fields(formats));
        let mut encoder = DataRowEncoder::new(fields.clone());
        let mut rows = Vec::with_capacity(self.rows.len());
        for row in &self.rows {
            for (cell, field) in row.iter().zip(fields.iter()) {
                encode(&mut encoder, cell, field)?;
            }
            rows.push(Ok(encoder.take_row()));
        }
        Ok(QueryResponse::new(fields, stream::iter(rows)))
    }
}

fn formats_last(v: &[i16]) -> FieldFormat {
    FieldFormat::from(*v.last().unwrap_or(&0))
}

/// Encodes a cell as its column's type says (SQLite's catalog values are loosely typed).
fn encode(encoder: &mut DataRowEncoder, cell: &Cell, field: &FieldInfo) -> PgWireResult<()> {
    let ty = field.datatype().clone();
    let format = field.format();
    let options = field.format_options().clone();
    if *cell == Cell::Null {
        return encoder.encode_field_with_type_and_format(&None::<i64>, &ty, format, &options);
    }
    let text = || cell.to_text().unwrap_or_default();
    match ty {
        Type::BOOL => encoder.encode_field_with_type_and_format(&cell.as_bool(), &ty, format, &options),
        Type::INT2 => {
            encoder.encode_field_with_type_and_format(&cell.as_i64().map(|v| v as i16), &ty, format, &options)
        }
        Type::INT4 => {
            encoder.encode_field_with_type_and_format(&cell.as_i64().map(|v| v as i32), &ty, format, &options)
        }
        Type::INT8 => encoder.encode_field_with_type_and_format(&cell.as_i64(), &ty, format, &options),
        Type::OID => encoder.encode_field_with_type_and_format(&cell.as_i64().map(|v| v as u32), &ty, format, &options),
        Type::FLOAT4 => {
            encoder.encode_field_with_type_and_format(&cell.as_f64().map(|v| v as f32), &ty, format, &options)
        }
        Type::FLOAT8 => encoder.encode_field_with_type_and_format(&cell.as_f64(), &ty, format, &options),
        Type::CHAR if format == FieldFormat::Binary => {
            let byte = text().bytes().next().map(|b| b as i8);
            encoder.encode_field_with_type_and_format(&byte, &ty, format, &options)
        }
        Type::TIMESTAMPTZ => match cell {
            Cell::Time(t) => encoder.encode_field_with_type_and_format(t, &ty, format, &options),
            _ => encoder.encode_field_with_type_and_format(&Some(text()), &Type::TEXT, format, &options),
        },
        _ => encoder.encode_field_with_type_and_format(&Some(text()), &ty, format, &options),
    }
}
