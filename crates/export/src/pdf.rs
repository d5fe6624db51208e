//! PDF: a header on every page (title; tenant, range and zone), the charts as vector graphics
//! (plotters' SVG drawn by krilla-svg), tables paginated with their header row repeated on each
//! page, the bundled font embedded (subset), and "page n of N" at the foot.

use crate::chart::{chart_svg, svg_options, Chart};
use crate::time::local;
use crate::{Cell, ColumnKind, ExportError, Result, Table, FONT_BOLD, FONT_REGULAR};
use ab_glyph::{Font as _, FontRef, ScaleFont as _};
use jiff::tz::TimeZone;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect, Size};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::Fill;
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use krilla::Document;
use krilla_svg::{SurfaceExt, SvgSettings};

/// What the header of every page says.
#[derive(Debug, Clone)]
pub struct PdfHeader {
    pub title: String,
    pub tenant: String,
    /// The range as the reader should see it, e.g. "2026-03-01 – 2026-03-15".
    pub range: String,
    pub zone: TimeZone,
}

// A4 landscape, in points.
const WIDTH: f32 = 842.0;
const HEIGHT: f32 = 595.0;
const MARGIN: f32 = 36.0;
const CONTENT_TOP: f32 = 84.0;
const CONTENT_BOTTOM: f32 = HEIGHT - 44.0;
const CHART_HEIGHT: f32 = 230.0;
const TABLE_TITLE: f32 = 11.0;
const TEXT: f32 = 7.5;
const ROW: f32 = 11.0;

/// Where each thing goes, decided before drawing so every page knows the page count.
enum Block {
    Chart(usize),
    TableTitle(usize),
    Header(usize),
    Row(usize, usize),
}

pub fn pdf(header: &PdfHeader, charts: &[Chart], tables: &[Table]) -> Result<Vec<u8>> {
    let pages = paginate(charts, tables);
    let regular = Font::new(FONT_REGULAR.to_vec().into(), 0).ok_or_else(|| pdf_error("the bundled font"))?;
    let bold = Font::new(FONT_BOLD.to_vec().into(), 0).ok_or_else(|| pdf_error("the bundled bold font"))?;
    let measure = FontRef::try_from_slice(FONT_REGULAR).map_err(pdf_error)?;
    let layouts: Vec<TableLayout> = tables
        .iter()
        .map(|t| TableLayout::new(t, &measure, &header.zone))
        .collect();
    let svg_options = svg_options();
    let mut charts_svg = Vec::with_capacity(charts.len());
    for chart in charts {
        let svg = chart_svg(chart, (WIDTH - 2.0 * MARGIN) as u32, CHART_HEIGHT as u32)?;
        charts_svg.push(usvg::Tree::from_str(&svg, &svg_options).map_err(pdf_error)?);
    }
    let mut document = Document::new();
    let count = pages.len();
    for (number, blocks) in pages.iter().enumerate() {
        let mut page = document.start_page_with(PageSettings::new(WIDTH, HEIGHT));
        let mut s = page.surface();
        let text = |s: &mut Surface, font: &Font, size: f32, x: f32, y: f32, t: &str| {
            s.draw_text(Point::from_xy(x, y), font.clone(), size, t, false, TextDirection::Auto);
        };
        text(&mut s, &bold, 15.0, MARGIN, 46.0, &header.title);
        let zone = header.zone.iana_name().unwrap_or("UTC");
        let subtitle = format!(
            "Tenant: {}   ·   Range: {}   ·   Time zone: {zone}",
            header.tenant, header.range
        );
        text(&mut s, &regular, 9.0, MARGIN, 62.0, &subtitle);
        fill_rect(&mut s, MARGIN, 70.0, WIDTH - 2.0 * MARGIN, 0.7, (160, 160, 160));
        let footer = format!("Page {} of {count}", number + 1);
        let footer_width = text_width(&measure, TEXT + 0.5, &footer);
        text(
            &mut s,
            &regular,
            TEXT + 0.5,
            (WIDTH - footer_width) / 2.0,
            HEIGHT - 24.0,
            &footer,
        );
        let mut y = CONTENT_TOP;
        for block in blocks {
            match block {
                Block::Chart(i) => {
                    s.push_transform(&krilla::geom::Transform::from_translate(MARGIN, y));
                    let size = Size::from_wh(WIDTH - 2.0 * MARGIN, CHART_HEIGHT).expect("a positive size");
                    s.draw_svg(&charts_svg[*i], size, SvgSettings::default());
                    s.pop();
                    y += CHART_HEIGHT + 12.0;
                }
                Block::TableTitle(t) => {
                    text(&mut s, &bold, TABLE_TITLE, MARGIN, y + TABLE_TITLE, &tables[*t].title);
                    y += TABLE_TITLE + 8.0;
                }
                Block::Header(t) => {
                    let layout = &layouts[*t];
                    fill_rect(&mut s, MARGIN, y, layout.total, ROW + 2.0, (226, 232, 240));
                    for (c, column) in tables[*t].columns.iter().enumerate() {
                        let label = fit(&measure, TEXT, &column.name, layout.widths[c] - 4.0);
                        text(&mut s, &bold, TEXT, layout.x[c] + 2.0, y + ROW - 2.0, &label);
                    }
                    y += ROW + 2.0;
                }
                Block::Row(t, r) => {
                    let layout = &layouts[*t];
                    if r % 2 == 1 {
                        fill_rect(&mut s, MARGIN, y, layout.total, ROW, (248, 250, 252));
                    }
                    let table = &tables[*t];
                    for (c, cell) in table.rows[*r].iter().enumerate().take(layout.widths.len()) {
                        let shown = show(cell, table.columns[c].kind, &header.zone);
                        let shown = fit(&measure, TEXT, &shown, layout.widths[c] - 4.0);
                        let x = if is_numeric(table.columns[c].kind) {
                            layout.x[c] + layout.widths[c] - 2.0 - text_width(&measure, TEXT, &shown)
                        } else {
                            layout.x[c] + 2.0
                        };
                        text(&mut s, &regular, TEXT, x, y + ROW - 3.0, &shown);
                    }
                    y += ROW;
                }
            }
        }
        s.finish();
        page.finish();
    }
    document.finish().map_err(|e| pdf_error(format!("{e:?}")))
}

/// Splits charts and tables into pages: a chart or a table's first rows start a new page when
/// they do not fit, and every page a table continues on starts with its header row.
fn paginate(charts: &[Chart], tables: &[Table]) -> Vec<Vec<Block>> {
    let mut pages = vec![Vec::new()];
    let mut y = CONTENT_TOP;
    let new_page = |pages: &mut Vec<Vec<Block>>, y: &mut f32| {
        pages.push(Vec::new());
        *y = CONTENT_TOP;
    };
    for i in 0..charts.len() {
        if y + CHART_HEIGHT > CONTENT_BOTTOM {
            new_page(&mut pages, &mut y);
        }
        pages.last_mut().expect("a page").push(Block::Chart(i));
        y += CHART_HEIGHT + 12.0;
    }
    for (t, table) in tables.iter().enumerate() {
        // A title with its header and at least a few rows, or a new page.
        if y + TABLE_TITLE + 8.0 + ROW * 4.0 > CONTENT_BOTTOM {
            new_page(&mut pages, &mut y);
        }
        pages.last_mut().expect("a page").push(Block::TableTitle(t));
        pages.last_mut().expect("a page").push(Block::Header(t));
        y += TABLE_TITLE + 8.0 + ROW + 2.0;
        for r in 0..table.rows.len() {
            if y + ROW > CONTENT_BOTTOM {
                new_page(&mut pages, &mut y);
                pages.last_mut().expect("a page").push(Block::Header(t));
                y += ROW + 2.0;
            }
            pages.last_mut().expect("a page").push(Block::Row(t, r));
            y += ROW;
        }
        y += 14.0;
    }
    pages
}

/// Column positions: each as wide as its header or its widest value among the first rows,
/// scaled down to the page's width when they do not fit.
struct TableLayout {
    x: Vec<f32>,
    widths: Vec<f32>,
    total: f32,
}

impl TableLayout {
    fn new(table: &Table, measure: &FontRef, zone: &TimeZone) -> TableLayout {
        let mut widths: Vec<f32> = table
            .columns
            .iter()
            .map(|c| text_width(measure, TEXT, &c.name) + 8.0)
            .collect();
        for row in table.rows.iter().take(200) {
            for ((w, cell), column) in widths.iter_mut().zip(row).zip(&table.columns) {
                let shown = show(cell, column.kind, zone);
                *w = w.max((text_width(measure, TEXT, &shown) + 6.0).min(180.0));
            }
        }
        let available = WIDTH - 2.0 * MARGIN;
        let sum: f32 = widths.iter().sum();
        if sum > available {
            widths.iter_mut().for_each(|w| *w *= available / sum);
        }
        let mut x = Vec::with_capacity(widths.len());
        let mut at = MARGIN;
        for w in &widths {
            x.push(at);
            at += w;
        }
        TableLayout {
            x,
            total: at - MARGIN,
            widths,
        }
    }
}

fn is_numeric(kind: ColumnKind) -> bool {
    matches!(
        kind,
        ColumnKind::Integer | ColumnKind::Number | ColumnKind::Percent | ColumnKind::DurationSeconds
    )
}

/// A value as a reader of the PDF sees it.
fn show(cell: &Cell, kind: ColumnKind, zone: &TimeZone) -> String {
    let number = |v: f64| match kind {
        ColumnKind::Percent => format!("{v:.1} %"),
        ColumnKind::DurationSeconds => {
            let s = v.round() as i64;
            format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
        }
        _ if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v}"),
        _ => format!("{v:.2}"),
    };
    match cell {
        Cell::Empty => String::new(),
        Cell::Text(t) => t.replace(['\n', '\r', '\t'], " "),
        Cell::Int(v) => number(*v as f64),
        Cell::Number(v) => number(*v),
        Cell::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Cell::Instant(s) => {
            let t = local(*s, zone);
            match kind {
                ColumnKind::Date => t.date(),
                ColumnKind::Time => t.time(),
                _ => format!("{} {}", t.date(), t.time()),
            }
        }
    }
}

fn text_width(font: &FontRef, size: f32, text: &str) -> f32 {
    let scaled = font.as_scaled(font.pt_to_px_scale(size).unwrap_or(ab_glyph::PxScale::from(size)));
    let em = font.units_per_em().unwrap_or(2048.0);
    // Advances in font units, scaled to points (1 pt = 1 unit of PDF space).
    text.chars()
        .map(|c| font.h_advance_unscaled(scaled.glyph_id(c)) * size / em)
        .sum()
}

/// `text`, cut with an ellipsis to fit `width`.
fn fit(font: &FontRef, size: f32, text: &str, width: f32) -> String {
    if text_width(font, size, text) <= width {
        return text.to_string();
    }
    let mut out = String::new();
    for c in text.chars() {
        out.push(c);
        if text_width(font, size, &out) + text_width(font, size, "…") > width {
            out.pop();
            break;
        }
    }
    out.push('…');
    out
}

fn fill_rect(s: &mut Surface, x: f32, y: f32, w: f32, h: f32, (r, g, b): (u8, u8, u8)) {
    let Some(rect) = Rect::from_xywh(x, y, w, h) else {
        return;
    };
    let mut path = PathBuilder::new();
    path.push_rect(rect);
    let Some(path) = path.finish() else {
        return;
    };
    s.set_fill(Some(Fill {
        paint: rgb::Color::new(r, g, b).into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }));
    s.draw_path(&path);
    s.set_fill(Some(Fill::default()));
}

/// usvg's options with only the bundled fonts: charts look the same on every machine.
fn pdf_error(e: impl std::fmt::Display) -> ExportError {
    ExportError::Pdf(e.to_string())
}
