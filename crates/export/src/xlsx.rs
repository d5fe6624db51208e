//! XLSX: one sheet per table, typed cells (numbers as numbers, instants as Excel date-times of
//! the local wall clock in the table's zone, percents and durations with number formats), a
//! bold frozen header with an autofilter. Sheets are written in rust_xlsxwriter's
//! constant-memory mode: each row goes to a temporary file as it is written, so a million-row
//! sheet does not sit in memory.

use crate::time::local;
use crate::{Cell, Column, ColumnKind, Result};
use jiff::tz::TimeZone;
use rust_xlsxwriter::{Format, Workbook};
use std::path::Path;

pub struct XlsxWriter {
    book: Workbook,
    zone: TimeZone,
    /// The sheet being written: its index, columns, and next row.
    sheet: Option<(usize, Vec<ColumnKind>, u32)>,
    sheets: usize,
    /// The sheets' names so far, in lower case.
    names: Vec<String>,
    formats: Formats,
}

struct Formats {
    header: Format,
    percent: Format,
    duration: Format,
    date_time: Format,
    date: Format,
    time: Format,
}

/// Excel's limit of rows per sheet (the header is one of them).
pub const MAX_ROWS: u32 = 1_048_576;

impl XlsxWriter {
    /// `temp_dir` holds the constant-memory sheets' rows until the book is saved.
    pub fn new(zone: TimeZone, temp_dir: Option<&Path>) -> Result<XlsxWriter> {
        let mut book = Workbook::new();
        if let Some(dir) = temp_dir {
            book.set_tempdir(dir)?;
        }
        Ok(XlsxWriter {
            book,
            zone,
            sheet: None,
            sheets: 0,
            names: Vec::new(),
            formats: Formats {
                header: Format::new().set_bold(),
                percent: Format::new().set_num_format("0.00%"),
                duration: Format::new().set_num_format("#,##0\" s\""),
                date_time: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
                date: Format::new().set_num_format("yyyy-mm-dd"),
                time: Format::new().set_num_format("hh:mm:ss"),
            },
        })
    }

    /// Starts a sheet named after `title` ([`XlsxWriter::unique_name`]), with its header row.
    pub fn start_sheet(&mut self, title: &str, columns: &[Column]) -> Result<()> {
        self.finish_sheet()?;
        let index = self.sheets;
        self.sheets += 1;
        let name = self.unique_name(title, index);
        self.names.push(name.to_lowercase());
        let sheet = self.book.add_worksheet_with_constant_memory();
        sheet.set_name(name)?;
        for (i, column) in columns.iter().enumerate() {
            let col = i as u16;
            sheet.write_string_with_format(0, col, &column.name, &self.formats.header)?;
            let width = match column.kind {
                ColumnKind::DateTime => 20.0,
                ColumnKind::Text => (column.name.len() as f64 + 2.0).max(14.0),
                _ => (column.name.len() as f64 + 2.0).max(10.0),
            };
            sheet.set_column_width(col, width)?;
        }
        sheet.set_freeze_panes(1, 0)?;
        self.sheet = Some((index, columns.iter().map(|c| c.kind).collect(), 1));
        Ok(())
    }

    /// A sheet name from `title` that Excel takes: at most 31 characters, none of `[]:*?/\`,
    /// and not one already in the book (names are compared without case), else numbered.
    fn unique_name(&self, title: &str, index: usize) -> String {
        let clean: String = title
            .chars()
            .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
            .collect();
        let clean = clean.trim();
        let base = if clean.is_empty() {
            format!("Sheet{}", index + 1)
        } else {
            clean.chars().take(31).collect()
        };
        let taken = |name: &str| self.names.contains(&name.to_lowercase());
        if !taken(&base) {
            return base;
        }
        (2..)
            .map(|n| {
                let suffix = format!(" {n}");
                let head: String = base.chars().take(31 - suffix.len()).collect();
                format!("{}{suffix}", head.trim_end())
            })
            .find(|name| !taken(name))
            .expect("some number is free")
    }

    pub fn write_row(&mut self, row: &[Cell]) -> Result<()> {
        let (index, kinds, next) = self.sheet.as_mut().expect("start_sheet first");
        if *next >= MAX_ROWS {
            return Err(rust_xlsxwriter::XlsxError::RowColumnLimitError.into());
        }
        let sheet = self.book.worksheet_from_index(*index)?;
        let f = &self.formats;
        for (i, (cell, kind)) in row.iter().zip(kinds.iter()).enumerate() {
            let col = i as u16;
            match (cell, kind) {
                (Cell::Empty, _) => {}
                (Cell::Text(t), _) => {
                    sheet.write_string(*next, col, t)?;
                }
                (Cell::Bool(b), _) => {
                    sheet.write_boolean(*next, col, *b)?;
                }
                (Cell::Int(v), ColumnKind::DurationSeconds) => {
                    sheet.write_number_with_format(*next, col, *v as f64, &f.duration)?;
                }
                (Cell::Number(v), ColumnKind::DurationSeconds) => {
                    sheet.write_number_with_format(*next, col, *v, &f.duration)?;
                }
                (Cell::Int(v), ColumnKind::Percent) => {
                    sheet.write_number_with_format(*next, col, *v as f64 / 100.0, &f.percent)?;
                }
                (Cell::Number(v), ColumnKind::Percent) => {
                    sheet.write_number_with_format(*next, col, *v / 100.0, &f.percent)?;
                }
                (Cell::Int(v), _) => {
                    sheet.write_number(*next, col, *v as f64)?;
                }
                (Cell::Number(v), _) => {
                    sheet.write_number(*next, col, *v)?;
                }
                (Cell::Instant(s), kind) => {
                    let serial = local(*s, &self.zone).excel_serial();
                    let (value, format) = match kind {
                        ColumnKind::Date => (serial.floor(), &f.date),
                        ColumnKind::Time => (serial.fract(), &f.time),
                        _ => (serial, &f.date_time),
                    };
                    sheet.write_number_with_format(*next, col, value, format)?;
                }
            }
        }
        *next += 1;
        Ok(())
    }

    /// Sets the finished sheet's autofilter over its header and rows.
    fn finish_sheet(&mut self) -> Result<()> {
        if let Some((index, kinds, next)) = self.sheet.take() {
            let last_col = kinds.len().saturating_sub(1) as u16;
            self.book
                .worksheet_from_index(index)?
                .autofilter(0, 0, next - 1, last_col)?;
        }
        Ok(())
    }

    /// Writes the book to `path`.
    pub fn save(mut self, path: &Path) -> Result<()> {
        self.finish_sheet()?;
        self.book.save(path)?;
        Ok(())
    }

    /// The book's bytes (for small books).
    pub fn to_bytes(mut self) -> Result<Vec<u8>> {
        self.finish_sheet()?;
        Ok(self.book.save_to_buffer()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names_are_what_excel_takes_and_unique() {
        let mut book = XlsxWriter::new(TimeZone::UTC, None).unwrap();
        let columns = [Column::new("a", ColumnKind::Text)];
        for title in [
            "Totals",
            "totals",
            "Totals",
            "a/b: [c]",
            "",
            &"x".repeat(40),
            &"x".repeat(40),
        ] {
            book.start_sheet(title, &columns).unwrap();
        }
        let long = "x".repeat(31);
        let numbered = format!("{} 2", "x".repeat(29));
        assert_eq!(
            book.names,
            [
                "totals",
                "totals 2",
                "totals 3",
                "a_b_ _c_",
                "sheet5",
                long.as_str(),
                numbered.as_str()
            ]
        );
        assert!(book.to_bytes().is_ok(), "Excel's rules hold, so the book saves");
    }
}
