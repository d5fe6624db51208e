//! CSV (RFC 4180, UTF-8): a header row, then one record per row, written as rows arrive, so
//! the first row can leave before the last is read. Numbers are written in full precision,
//! instants in the table's zone (RFC 3339 with the offset, or the local date or time).

use crate::time::local;
use crate::{Cell, Column, ColumnKind, Result};
use jiff::tz::TimeZone;
use std::io::Write;

pub struct CsvWriter<W: Write> {
    out: csv::Writer<W>,
    kinds: Vec<ColumnKind>,
    zone: TimeZone,
    /// Reused for each row's fields.
    fields: Vec<String>,
}

impl<W: Write> CsvWriter<W> {
    /// Writes the header row.
    pub fn new(out: W, columns: &[Column], zone: TimeZone) -> Result<CsvWriter<W>> {
        let mut out = builder().from_writer(out);
        out.write_record(columns.iter().map(|c| c.name.as_str()))?;
        Ok(CsvWriter {
            out,
            kinds: columns.iter().map(|c| c.kind).collect(),
            zone,
            fields: vec![String::new(); columns.len()],
        })
    }

    pub fn write_row(&mut self, row: &[Cell]) -> Result<()> {
        for ((field, cell), kind) in self.fields.iter_mut().zip(row).zip(&self.kinds) {
            field.clear();
            format_cell(field, cell, *kind, &self.zone);
        }
        self.out.write_record(&self.fields)?;
        Ok(())
    }

    /// Flushes what the CSV writer buffers to the underlying writer.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }

    /// The underlying writer, every row flushed to it.
    pub fn into_inner(self) -> Result<W> {
        self.out
            .into_inner()
            .map_err(|e| crate::ExportError::Io(std::io::Error::other(e.to_string())))
    }
}

fn builder() -> csv::WriterBuilder {
    let mut b = csv::WriterBuilder::new();
    b.terminator(csv::Terminator::CRLF);
    b
}

impl CsvWriter<Vec<u8>> {
    /// What was written since the last call, to send on while later rows are still read.
    pub fn take_bytes(&mut self) -> Result<Vec<u8>> {
        let done = std::mem::replace(&mut self.out, builder().from_writer(Vec::with_capacity(1 << 16)));
        done.into_inner()
            .map_err(|e| crate::ExportError::Io(std::io::Error::other(e.to_string())))
    }
}

fn format_cell(out: &mut String, cell: &Cell, kind: ColumnKind, zone: &TimeZone) {
    use std::fmt::Write;
    match cell {
        Cell::Empty => {}
        Cell::Text(t) => out.push_str(t),
        Cell::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Cell::Number(v) => {
            let _ = write!(out, "{v}");
        }
        Cell::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
        Cell::Instant(s) => {
            let t = local(*s, zone);
            out.push_str(&match kind {
                ColumnKind::Date => t.date(),
                ColumnKind::Time => t.time(),
                _ => t.rfc3339(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_rfc_4180_requires_and_types_instants() {
        let columns = [
            Column::new("name", ColumnKind::Text),
            Column::new("at", ColumnKind::DateTime),
            Column::new("day", ColumnKind::Date),
            Column::new("rate", ColumnKind::Percent),
        ];
        let zone = TimeZone::get("America/New_York").unwrap();
        let mut w = CsvWriter::new(Vec::new(), &columns, zone).unwrap();
        w.write_row(&[
            Cell::Text("Doe, \"JD\"\nJr".into()),
            Cell::Instant(1_772_366_400),
            Cell::Instant(1_772_366_400),
            Cell::Number(450.0 / 13.0),
        ])
        .unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(
            text,
            "name,at,day,rate\r\n\"Doe, \"\"JD\"\"\nJr\",2026-03-01T07:00:00-05:00,2026-03-01,34.61538461538461\r\n"
        );
    }
}
