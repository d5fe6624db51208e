//! Exports: typed tables (and charts) rendered as CSV, XLSX and PDF, with no HTTP, so the API,
//! export jobs and (later) schedules render the same bytes. A table's columns carry their kind,
//! so each format can type its cells: numbers stay numbers, instants become date-times in the
//! table's zone, percents and durations get number formats.

mod chart;
mod csv_out;
mod pdf;
mod time;
mod xlsx;

pub use chart::{chart_png, chart_svg, Chart, ChartKind, Series};
pub use csv_out::CsvWriter;
pub use pdf::{pdf, PdfHeader};
pub use xlsx::XlsxWriter;

/// What a column holds, which decides how each format writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Integer,
    Number,
    /// A percent (34.5 means 34.5 %), as `/query` returns rates.
    Percent,
    /// Whole seconds.
    DurationSeconds,
    /// An instant ([`Cell::Instant`]) shown in the table's zone: date and time.
    DateTime,
    /// An instant's local date only.
    Date,
    /// An instant's local time of day only.
    Time,
    Boolean,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
}

impl Column {
    pub fn new(name: impl Into<String>, kind: ColumnKind) -> Column {
        Column {
            name: name.into(),
            kind,
        }
    }
}

/// One value. Which variant a column holds follows its kind; `Empty` fits any column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Int(i64),
    Number(f64),
    Bool(bool),
    /// Epoch seconds.
    Instant(i64),
}

/// A table held in memory (a view's result, or a PDF's rows).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing: {0}")]
    Io(#[from] std::io::Error),
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("XLSX: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("PDF: {0}")]
    Pdf(String),
    #[error("chart: {0}")]
    Chart(String),
}

pub type Result<T, E = ExportError> = std::result::Result<T, E>;

/// The fonts every PDF embeds (DejaVu Sans, see fonts/LICENSE-DejaVu.txt): bundled, so a
/// build needs nothing from the system.
pub(crate) const FONT_REGULAR: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
pub(crate) const FONT_BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");
