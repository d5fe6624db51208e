//! CSV (RFC 4180, UTF-8): a header row, then one record per row, written as rows arrive, so
//! the first row can leave before the last is read. Numbers are written in full precision,
//! instants in the table's zone (RFC 3339 with the offset, or the local date or time).

use crate::time::{local, Local};
use crate::{Cell, Column, ColumnKind, Result};
use jiff::tz::TimeZone;
use std::io::Write;

pub struct CsvWriter<W: Write> {
    out: csv::Writer<W>,
    kinds: Vec<ColumnKind>,
    zone: TimeZone,
    /// Reused for each field that is formatted (text is written as it is).
    field: String,
    /// The instant shown last, in the zone: a row shows its instant as a date and as a time.
    last_instant: Option<(i64, Local)>,
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
            field: String::new(),
            last_instant: None,
        })
    }

    pub fn write_row(&mut self, row: &[Cell]) -> Result<()> {
        for (i, cell) in row.iter().enumerate().take(self.kinds.len()) {
            match cell {
                Cell::Text(text) => self.out.write_field(text)?,
                Cell::Empty => self.out.write_field("")?,
                _ => {
                    self.field.clear();
                    self.format_cell(cell, self.kinds[i]);
                    self.out.write_field(&self.field)?;
                }
            }
        }
        // Ends the record of the fields written.
        self.out.write_record(None::<&[u8]>)?;
        Ok(())
    }

    /// A cell other than text as the field's text, in `self.field`.
    fn format_cell(&mut self, cell: &Cell, kind: ColumnKind) {
        use std::fmt::Write;
        let out = &mut self.field;
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
                let t = match self.last_instant {
                    Some((at, t)) if at == *s => t,
                    _ => {
                        let t = local(*s, &self.zone);
                        self.last_instant = Some((*s, t));
                        t
                    }
                };
                match kind {
                    ColumnKind::Date => t.push_date(out),
                    ColumnKind::Time => t.push_time(out),
                    _ => t.push_rfc3339(out),
                }
            }
        }
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
        // The next chunk is sized as this one (a page of rows each): grown by doubling from
        // a small buffer, a 4 MB chunk was copied about twice over.
        let next = Vec::with_capacity(self.out.get_ref().len().max(1 << 16));
        let done = std::mem::replace(&mut self.out, builder().from_writer(next));
        done.into_inner()
            .map_err(|e| crate::ExportError::Io(std::io::Error::other(e.to_string())))
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
