//! Charts as SVG, drawn by plotters (its SVG backend, measuring text with the bundled font):
//! the PDF embeds them as vector graphics, and e-mails can rasterize the same SVG later.

use crate::{ExportError, Result, FONT_REGULAR};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use std::sync::Once;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    Line,
    Bar,
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
                ChartKind::Bar => {
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
