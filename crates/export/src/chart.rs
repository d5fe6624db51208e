//! Charts as SVG, drawn by plotters (its SVG backend, measuring text with the bundled font):
//! the PDF embeds them as vector graphics, and e-mails show the same SVG rasterized to PNG by
//! resvg (already built for the PDF's SVG support, so it adds nothing to the build).

use crate::{ExportError, Result, FONT_BOLD, FONT_REGULAR};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use resvg::tiny_skia::{Pixmap, Transform};
use std::sync::{Arc, Once};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    Line,
    Bar,
    /// A grid: the categories across, one row per series (its name on the left), each cell
    /// shaded by its value against the largest.
    Heatmap,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

/// A chart over categories (the x axis: time buckets, agents, dispositions …).
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    pub kind: ChartKind,
    pub categories: Vec<String>,
    pub series: Vec<Series>,
}

const COLORS: [RGBColor; 6] = [
    RGBColor(37, 99, 235),
    RGBColor(234, 88, 12),
    RGBColor(22, 163, 74),
    RGBColor(147, 51, 234),
    RGBColor(219, 39, 119),
    RGBColor(100, 116, 139),
];

fn chart_error(e: impl std::fmt::Display) -> ExportError {
    ExportError::Chart(e.to_string())
}

/// The chart as an SVG document of `width` × `height` points.
pub fn chart_svg(chart: &Chart, width: u32, height: u32) -> Result<String> {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        if register_font("sans-serif", FontStyle::Normal, FONT_REGULAR).is_err() {
            unreachable!("the bundled font parses");
        }
    });
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let n = chart.categories.len().max(1);
        let top = chart
            .series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        if chart.kind == ChartKind::Heatmap {
            heatmap(&root, chart, top)?;
            root.present().map_err(chart_error)?;
            drop(root);
            return Ok(svg);
        }
        let top = if top > 0.0 { top * 1.1 } else { 1.0 };
        let mut plot = ChartBuilder::on(&root)
            .caption(&chart.title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top)
            .map_err(chart_error)?;
        let categories = &chart.categories;
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-9 && i >= 0.0 {
                categories.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        plot.configure_mesh()
            .disable_x_mesh()
            .x_labels(n.min(12))
            .x_label_formatter(&label)
            .label_style(("sans-serif", 10))
            .draw()
            .map_err(chart_error)?;
        let count = chart.series.len().max(1) as f64;
        for (k, series) in chart.series.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            let points = series.values.iter().enumerate().map(|(i, v)| (i as f64, *v));
            let drawn = match chart.kind {
                ChartKind::Line => plot
                    .draw_series(LineSeries::new(points, color.stroke_width(2)))
                    .map_err(chart_error)?,
                ChartKind::Bar | ChartKind::Heatmap => {
                    // Side by side within each category's slot.
                    let width = 0.8 / count;
                    plot.draw_series(points.map(|(x, v)| {
                        let x0 = x - 0.4 + width * k as f64;
                        Rectangle::new([(x0, 0.0), (x0 + width, v)], color.filled())
                    }))
                    .map_err(chart_error)?
                }
            };
            drawn
                .label(series.name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 12, y + 4)], color.filled()));
        }
        if chart.series.len() > 1 {
            plot.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .label_font(("sans-serif", 10))
                .draw()
                .map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// The chart as a PNG: the SVG of `width` × `height` points rasterized at `scale` pixels per
/// point (2 for sharp text on high-density screens), on white.
pub fn chart_png(chart: &Chart, width: u32, height: u32, scale: f32) -> Result<Vec<u8>> {
    let svg = chart_svg(chart, width, height)?;
    let tree = usvg::Tree::from_str(&svg, &svg_options()).map_err(chart_error)?;
    let size = |points: u32| (points as f32 * scale).round() as u32;
    let mut pixmap = Pixmap::new(size(width), size(height))
        .ok_or_else(|| chart_error(format!("a chart of {width} × {height} at {scale}× has no pixels")))?;
    resvg::render(&tree, Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(chart_error)
}

/// How the charts' SVG is read: its text in the bundled font, whatever the system has.
pub(crate) fn svg_options() -> usvg::Options<'static> {
    let mut db = usvg::fontdb::Database::new();
    db.load_font_data(FONT_REGULAR.to_vec());
    db.load_font_data(FONT_BOLD.to_vec());
    db.set_sans_serif_family("DejaVu Sans");
    usvg::Options {
        font_family: "DejaVu Sans".into(),
        fontdb: Arc::new(db),
        ..usvg::Options::default()
    }
}

/// A heatmap's grid: a cell per (series, category), from white (nothing) to the first colour
/// (the largest value, `top`).
fn heatmap(root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>, chart: &Chart, top: f64) -> Result<()> {
    let columns = chart.categories.len().max(1);
    let rows = chart.series.len().max(1);
    let mut plot = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..columns as f64, 0f64..rows as f64)
        .map_err(chart_error)?;
    let label = |names: Vec<String>| {
        move |x: &f64| {
            let i = x.floor();
            if (x - i - 0.5).abs() < 1e-9 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        }
    };
    // Rows top to bottom in the series' order.
    let row_names: Vec<String> = chart.series.iter().rev().map(|s| s.name.clone()).collect();
    let x_label = label(chart.categories.clone());
    let y_label = label(row_names);
    plot.configure_mesh()
        .disable_mesh()
        .x_labels(columns * 2 + 1)
        .y_labels(rows * 2 + 1)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .label_style(("sans-serif", 10))
        .draw()
        .map_err(chart_error)?;
    let full = COLORS[0];
    let shade = |v: f64| {
        let t = if top > 0.0 && v.is_finite() {
            (v / top).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mix = |c: u8| (255.0 - (255.0 - c as f64) * t).round() as u8;
        RGBColor(mix(full.0), mix(full.1), mix(full.2))
    };
    for (r, series) in chart.series.iter().enumerate() {
        let y = (rows - 1 - r) as f64;
        plot.draw_series(
            series
                .values
                .iter()
                .enumerate()
                .map(|(c, v)| Rectangle::new([(c as f64, y), (c as f64 + 1.0, y + 1.0)], shade(*v).filled())),
        )
        .map_err(chart_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_rasterizes_to_a_png_of_its_size_times_the_scale_with_its_bars_drawn() {
        let chart = Chart {
            title: "calls per rep".into(),
            kind: ChartKind::Bar,
            categories: vec!["a1".into(), "a2".into()],
            series: vec![Series {
                name: "total_calls".into(),
                values: vec![6.0, 3.0],
            }],
        };
        let png = chart_png(&chart, 300, 150, 2.0).unwrap();
        let image = Pixmap::decode_png(&png).unwrap();
        assert_eq!((image.width(), image.height()), (600, 300));
        let bar = COLORS[0];
        let bar_pixels = image
            .pixels()
            .iter()
            .filter(|p| (p.red(), p.green(), p.blue()) == (bar.0, bar.1, bar.2))
            .count();
        assert!(
            bar_pixels > 1000,
            "the bars are drawn: {bar_pixels} pixels of their colour"
        );
    }

    #[test]
    fn a_heatmap_is_a_grid_shaded_by_value() {
        let chart = Chart {
            title: "calls by day and hour".into(),
            kind: ChartKind::Heatmap,
            categories: (0..24).map(|h| h.to_string()).collect(),
            series: ["Mon", "Tue"]
                .iter()
                .enumerate()
                .map(|(d, name)| Series {
                    name: name.to_string(),
                    values: (0..24).map(|h| (d * 24 + h) as f64).collect(),
                })
                .collect(),
        };
        let svg = chart_svg(&chart, 500, 240).unwrap();
        let tree = usvg::Tree::from_str(&svg, &usvg::Options::default()).unwrap();
        fn paths(group: &usvg::Group) -> usize {
            group
                .children()
                .iter()
                .map(|n| match n {
                    usvg::Node::Path(_) => 1,
                    usvg::Node::Group(g) => paths(g),
                    _ => 0,
                })
                .sum()
        }
        assert!(paths(tree.root()) >= 48, "a cell per day and hour");
        // The largest value is the full colour, the smallest white.
        assert!(svg.contains("#2563EB") || svg.contains("#2563eb"), "{svg}");
        assert!(svg.contains("Mon") && svg.contains("Tue"), "the days name the rows");
    }
}
