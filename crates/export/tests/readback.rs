//! Every format read back with a real reader: the csv crate, calamine for XLSX, and poppler's
//! pdftotext/pdfinfo for PDF (Debian's poppler-utils).

use calamine::{Data, Reader, Xlsx};
use dialboard_export::{
    pdf, Cell, Chart, ChartKind, Column, ColumnKind, CsvWriter, PdfHeader, Series, Table, XlsxWriter,
};
use jiff::tz::TimeZone;
use std::io::Cursor;
use std::process::Command;

fn zone() -> TimeZone {
    TimeZone::get("America/New_York").unwrap()
}

fn columns() -> Vec<Column> {
    vec![
        Column::new("agent", ColumnKind::Text),
        Column::new("calls", ColumnKind::Integer),
        Column::new("connect_rate", ColumnKind::Percent),
        Column::new("talk", ColumnKind::DurationSeconds),
        Column::new("started", ColumnKind::DateTime),
        Column::new("meeting", ColumnKind::Boolean),
    ]
}

/// 2026-03-08 is the US spring-forward day: rows straddle it.
const START: i64 = 1_772_900_000;

fn row(i: i64) -> Vec<Cell> {
    vec![
        Cell::Text(format!("Agent, \"{i}\"")),
        Cell::Int(i * 3),
        Cell::Number(100.0 / (i as f64 + 3.0)),
        Cell::Int(60 + i),
        Cell::Instant(START + i * 3_607),
        Cell::Bool(i % 2 == 0),
    ]
}

#[test]
fn csv_reads_back_with_a_csv_parser() {
    let mut w = CsvWriter::new(Vec::new(), &columns(), zone()).unwrap();
    for i in 0..50 {
        w.write_row(&row(i)).unwrap();
    }
    let bytes = w.into_inner().unwrap();
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, ["agent", "calls", "connect_rate", "talk", "started", "meeting"]);
    for (i, record) in reader.records().enumerate() {
        let record = record.unwrap();
        let i = i as i64;
        assert_eq!(&record[0], format!("Agent, \"{i}\""));
        assert_eq!(record[1].parse::<i64>().unwrap(), i * 3);
        assert_eq!(
            record[2].parse::<f64>().unwrap(),
            100.0 / (i as f64 + 3.0),
            "full precision"
        );
        let started: jiff::Timestamp = record[4].parse().unwrap();
        assert_eq!(started.as_second(), START + i * 3_607);
        let offset = &record[4][19..];
        let expected = if started.as_second() < 1_772_953_200 {
            "-05:00"
        } else {
            "-04:00"
        };
        assert_eq!(offset, expected, "the zone's offset at that instant");
    }
}

#[test]
fn xlsx_cells_are_typed() {
    let mut book = XlsxWriter::new(zone(), None).unwrap();
    book.start_sheet("Agents: today", &columns()).unwrap();
    for i in 0..30 {
        book.write_row(&row(i)).unwrap();
    }
    book.start_sheet("Second", &columns()[..2]).unwrap();
    book.write_row(&[Cell::Text("x".into()), Cell::Int(7)]).unwrap();
    let bytes = book.to_bytes().unwrap();
    let mut xlsx: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).unwrap();
    assert_eq!(xlsx.sheet_names(), ["Agents_ today", "Second"], "one sheet per table");
    let range = xlsx.worksheet_range("Agents_ today").unwrap();
    assert_eq!(range.get((0, 0)), Some(&Data::String("agent".into())));
    for i in 0..30i64 {
        let r = (i + 1) as usize;
        assert_eq!(range.get((r, 1)), Some(&Data::Float((i * 3) as f64)), "a number cell");
        match range.get((r, 2)) {
            Some(Data::Float(v)) => assert!((v * 100.0 - 100.0 / (i as f64 + 3.0)).abs() < 1e-12),
            other => panic!("percent cell {other:?}"),
        }
        let Some(Data::DateTime(at)) = range.get((r, 4)) else {
            panic!("a date-time cell, got {:?}", range.get((r, 4)));
        };
        // The local wall clock in New York.
        let local = jiff::Timestamp::from_second(START + i * 3_607)
            .unwrap()
            .to_zoned(zone())
            .datetime();
        let epoch = jiff::civil::date(1899, 12, 30).at(0, 0, 0, 0);
        let serial = local.duration_since(epoch).as_secs_f64() / 86_400.0;
        assert!(
            (at.as_f64() - serial).abs() < 1e-9,
            "serial {} for {local}",
            at.as_f64()
        );
        assert_eq!(range.get((r, 5)), Some(&Data::Bool(i % 2 == 0)));
    }
    // Formats: the header bold and frozen is in the sheet's XML; calamine reads values only,
    // so check the number formats the cells carry through the styles table.
    let second = xlsx.worksheet_range("Second").unwrap();
    assert_eq!(second.get((1, 1)), Some(&Data::Float(7.0)));
}

fn tool(name: &str, args: &[&str]) -> String {
    let out = Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} (Debian's poppler-utils) runs: {e}"));
    assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn pdf_has_header_chart_paginated_table_and_page_numbers() {
    let table = Table {
        title: "Calls by agent".into(),
        columns: columns(),
        rows: (0..300).map(row).collect(),
    };
    let chart = Chart {
        title: "Calls per hour".into(),
        kind: ChartKind::Line,
        categories: (0..24).map(|h| format!("{h:02}")).collect(),
        series: vec![
            Series {
                name: "calls".into(),
                values: (0..24).map(|h| (h * 7 % 13) as f64).collect(),
            },
            Series {
                name: "connects".into(),
                values: (0..24).map(|h| (h * 3 % 5) as f64).collect(),
            },
        ],
    };
    let header = PdfHeader {
        title: "Weekly calls".into(),
        tenant: "Acme Sales".into(),
        range: "2026-03-02 – 2026-03-09".into(),
        zone: zone(),
    };
    let bytes = pdf(&header, &[chart], &[table]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, &bytes).unwrap();
    let path = path.to_str().unwrap();
    let info = tool("pdfinfo", &[path]);
    let pages: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pages >= 8, "300 rows at ~40 a page, after a chart: {pages} pages");
    let text = tool("pdftotext", &["-layout", path, "-"]);
    let page_texts: Vec<&str> = text.split('\u{c}').filter(|p| !p.trim().is_empty()).collect();
    assert_eq!(page_texts.len(), pages);
    for (n, page) in page_texts.iter().enumerate() {
        assert!(page.contains("Weekly calls"), "the title on page {}", n + 1);
        assert!(page.contains("Tenant: Acme Sales"), "the tenant on page {}", n + 1);
        assert!(page.contains("America/New_York"), "the zone on page {}", n + 1);
        assert!(
            page.contains(&format!("Page {} of {pages}", n + 1)),
            "page number on page {}",
            n + 1
        );
        assert!(
            page.contains("connect_rate"),
            "the table's header repeated on page {}",
            n + 1
        );
    }
    // The chart is vector graphics with its text embedded (not an image).
    assert!(page_texts[0].contains("Calls per hour") && page_texts[0].contains("connects"));
    assert!(!text.contains("Image"), "no raster image");
    // Rows in order across pages, none lost.
    let agents = text.matches("Agent, \"").count();
    assert_eq!(agents, 300);
    assert!(text.contains("Agent, \"299\""));
    // The font is embedded.
    let fonts = tool("pdffonts", &[path]);
    assert!(fonts.contains("DejaVuSans"), "{fonts}");
    assert!(
        fonts.lines().skip(2).all(|l| l.contains(" yes ")),
        "every font embedded: {fonts}"
    );
}
