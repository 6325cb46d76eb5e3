//! Drawing with plotters on a `<canvas>`: sized to the element times the device pixel
//! ratio (crisp on high-DPI screens), redrawn whole on every change.

use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::ranged1d::Ranged;
use plotters::prelude::*;
use plotters_canvas::CanvasBackend;
use shared::Summary;
use shared::view::{Series, SeriesSet};
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use super::{Bin, Palette, XScale, YScale, decimate, fmt_axis, fmt_length};

type Area = DrawingArea<CanvasBackend, Shift>;

fn rgb(c: (u8, u8, u8)) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

fn fail(err: impl std::fmt::Debug) -> String {
    format!("the chart could not be drawn: {err:?}")
}

/// Sizes the canvas's buffer to its laid-out size times the device pixel ratio. Returns the
/// ratio, or `None` while the canvas is not laid out.
pub fn fit(canvas: &HtmlCanvasElement) -> Option<f64> {
    let dpr = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio()).max(1.0);
    let (w, h) = (f64::from(canvas.client_width()), f64::from(canvas.client_height()));
    if w < 1.0 || h < 1.0 {
        return None;
    }
    let (w, h) = ((w * dpr).round() as u32, (h * dpr).round() as u32);
    if canvas.width() != w {
        canvas.set_width(w);
    }
    if canvas.height() != h {
        canvas.set_height(h);
    }
    Some(dpr)
}

fn area(canvas: &HtmlCanvasElement, palette: &Palette) -> Result<Area, String> {
    let area = CanvasBackend::with_canvas_object(canvas.clone())
        .ok_or("the browser gave no 2D canvas context")?
        .into_drawing_area();
    area.fill(&rgb(palette.background)).map_err(fail)?;
    Ok(area)
}

/// A chart of one latency metric against prompt length.
pub struct LatencyChart<'a> {
    pub y_desc: &'a str,
    pub scale: XScale,
    pub y_scale: YScale,
    /// What to draw of the points and samples.
    pub series: SeriesSet,
    /// Every prompt length of the sweep, settled or not.
    pub lengths: &'a [u32],
    /// Settled points: prompt length and the metric's summary.
    pub points: Vec<(u32, Summary)>,
    /// Individual samples as they arrive: prompt length and value (ms).
    pub samples: Vec<(u32, f64)>,
    /// Shown in the middle of the chart while it has no data.
    pub empty_note: &'a str,
}

/// Draws a latency chart, each part only when `series` asks for it: samples as dots, the
/// p50-p99 band, percentile lines, the mean as a line with markers. Returns each settled
/// point's mean position in CSS pixels (drawn or not), for hovering.
pub fn latency(
    canvas: &HtmlCanvasElement,
    chart: &LatencyChart<'_>,
    palette: &Palette,
) -> Result<Vec<(f64, f64)>, String> {
    let Some(dpr) = fit(canvas) else { return Ok(Vec::new()) };
    let root = area(canvas, palette)?;
    let shown = |s: Series| chart.series.contains(s);
    let (x0, x1) = chart.scale.range(chart.lengths);
    // The axis fits what is drawn; with nothing drawn, it still fits the data.
    let mut values: Vec<f64> = Vec::new();
    if shown(Series::Dots) {
        values.extend(chart.samples.iter().map(|s| s.1));
    }
    for (_, s) in &chart.points {
        values.extend(
            [
                (Series::Mean, s.mean),
                (Series::P50, s.p50),
                (Series::P90, s.p90),
                (Series::P99, s.p99),
                (Series::Band, s.p50),
                (Series::Band, s.p99),
            ]
            .into_iter()
            .filter(|(series, _)| shown(*series))
            .map(|(_, v)| v),
        );
    }
    if values.is_empty() {
        values.extend(chart.samples.iter().map(|s| s.1).chain(chart.points.iter().map(|(_, s)| s.mean)));
    }
    let y_scale = chart.y_scale;
    let (y0, y1) = y_scale.range(values);
    let mut ctx = ChartBuilder::on(&root)
        .margin((12.0 * dpr) as u32)
        .x_label_area_size((38.0 * dpr) as u32)
        .y_label_area_size((58.0 * dpr) as u32)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(fail)?;
    let scale = chart.scale;
    let x_label = |v: &f64| fmt_length(scale.from_axis(*v));
    let y_label = |v: &f64| y_scale.label(*v, y1 - y0);
    themed(
        ctx.configure_mesh()
            .x_desc("prompt length (approx. tokens)")
            .y_desc(chart.y_desc)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .x_labels(if scale == XScale::Log2 { ((x1 - x0).ceil() as usize + 1).clamp(2, 12) } else { 8 }),
        palette,
        dpr,
    )
    .draw()
    .map_err(fail)?;
    let x = |length: u32| scale.to_axis(f64::from(length));
    let y = |value: f64| y_scale.to_axis(value);
    if chart.points.len() > 1 && shown(Series::Band) {
        let mut band: Vec<(f64, f64)> = chart.points.iter().map(|(l, s)| (x(*l), y(s.p50))).collect();
        band.extend(chart.points.iter().rev().map(|(l, s)| (x(*l), y(s.p99))));
        ctx.draw_series(std::iter::once(Polygon::new(band, rgb(palette.band).mix(0.22)))).map_err(fail)?;
    }
    // Samples go straight to the canvas, one rectangle per distinct pixel.
    let dots = if shown(Series::Dots) {
        decimate(chart.samples.iter().map(|&(l, v)| ctx.backend_coord(&(x(l), y(v)))))
    } else {
        Vec::new()
    };
    if let Some(context) = context_2d(canvas) {
        if chart.points.is_empty() && chart.samples.is_empty() {
            let (r, g, b) = palette.text;
            context.set_fill_style_str(&format!("rgba({r},{g},{b},0.7)"));
            context.set_font(&format!("{}px sans-serif", (13.0 * dpr).round()));
            context.set_text_align("center");
            let _ =
                context.fill_text(chart.empty_note, f64::from(canvas.width()) / 2.0, f64::from(canvas.height()) / 2.0);
            context.set_text_align("start");
        }
        let (r, g, b) = palette.dots;
        context.set_fill_style_str(&format!("rgba({r},{g},{b},0.6)"));
        let size = (3.0 * dpr).round().max(2.0);
        for (px, py) in dots {
            context.fill_rect(f64::from(px) - size / 2.0, f64::from(py) - size / 2.0, size, size);
        }
    }
    // Percentile lines: thin, in the band's colour, darker the higher the percentile.
    for (series, alpha, pick) in [
        (Series::P50, 0.55, (|s: &Summary| s.p50) as fn(&Summary) -> f64),
        (Series::P90, 0.75, |s: &Summary| s.p90),
        (Series::P99, 1.0, |s: &Summary| s.p99),
    ] {
        if shown(series) {
            let style = ShapeStyle {
                color: rgb(palette.band).mix(alpha),
                filled: false,
                stroke_width: (1.5 * dpr).max(1.0) as u32,
            };
            let path: Vec<(f64, f64)> = chart.points.iter().map(|(l, s)| (x(*l), y(pick(s)))).collect();
            ctx.draw_series(std::iter::once(PathElement::new(path, style))).map_err(fail)?;
        }
    }
    let means: Vec<(f64, f64)> = chart.points.iter().map(|(l, s)| (x(*l), y(s.mean))).collect();
    if shown(Series::Mean) {
        let line = ShapeStyle { color: rgb(palette.line).to_rgba(), filled: false, stroke_width: (2.0 * dpr) as u32 };
        ctx.draw_series(std::iter::once(PathElement::new(means.clone(), line))).map_err(fail)?;
        let marker = (4.0 * dpr) as i32;
        ctx.draw_series(means.iter().map(|&p| Circle::new(p, marker, rgb(palette.line).filled()))).map_err(fail)?;
    }
    root.present().map_err(fail)?;
    Ok(means
        .iter()
        .map(|p| {
            let (px, py) = ctx.backend_coord(p);
            (f64::from(px) / dpr, f64::from(py) / dpr)
        })
        .collect())
}

/// The look every chart's axes share: fonts scaled to the device, grid colours of the scheme.
fn themed<'m, 'a, 'b, X: Ranged, Y: Ranged>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, CanvasBackend>,
    palette: &Palette,
    dpr: f64,
) -> &'m mut MeshStyle<'a, 'b, X, Y, CanvasBackend> {
    let text = rgb(palette.text);
    mesh.label_style(("sans-serif", 12.0 * dpr).into_font().color(&text))
        .axis_desc_style(("sans-serif", 13.0 * dpr).into_font().color(&text))
        .axis_style(rgb(palette.grid))
        .bold_line_style(rgb(palette.grid).mix(0.8))
        .light_line_style(rgb(palette.grid).mix(0.3))
}

fn context_2d(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok().flatten()?.dyn_into().ok()
}

/// Draws one request's tokens as ticks on a time axis from its send: stalls show as gaps.
/// `tokens` are (ms since send, tokens in that response).
pub fn timeline(canvas: &HtmlCanvasElement, tokens: &[(f64, u32)], palette: &Palette) -> Result<(), String> {
    let Some(dpr) = fit(canvas) else { return Ok(()) };
    let root = area(canvas, palette)?;
    let end = tokens.iter().map(|t| t.0).fold(0.0_f64, f64::max);
    let end = if end > 0.0 { end * 1.04 } else { 1.0 };
    let mut ctx = ChartBuilder::on(&root)
        .margin((12.0 * dpr) as u32)
        .x_label_area_size((38.0 * dpr) as u32)
        .y_label_area_size((12.0 * dpr) as u32)
        .build_cartesian_2d(0.0..end, 0.0..1.0)
        .map_err(fail)?;
    let x_label = |v: &f64| fmt_axis(*v, end);
    themed(
        ctx.configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .x_desc("time since the request was sent (ms)")
            .x_label_formatter(&x_label),
        palette,
        dpr,
    )
    .draw()
    .map_err(fail)?;
    if let Some(&(first, _)) = tokens.first() {
        // Time to first token, shaded.
        ctx.draw_series(std::iter::once(Rectangle::new(
            [(0.0, 0.0), (first, 1.0)],
            rgb(palette.band).mix(0.18).filled(),
        )))
        .map_err(fail)?;
    }
    let tick =
        ShapeStyle { color: rgb(palette.line).to_rgba(), filled: false, stroke_width: (1.5 * dpr).max(1.0) as u32 };
    ctx.draw_series(tokens.iter().map(|&(t, n)| {
        let top = if n > 1 { 0.95 } else { 0.8 };
        PathElement::new(vec![(t, 0.1), (t, top)], tick)
    }))
    .map_err(fail)?;
    root.present().map_err(fail)
}

/// Draws a histogram of time to first token (ms).
pub fn histogram(canvas: &HtmlCanvasElement, bins: &[Bin], palette: &Palette) -> Result<(), String> {
    let Some(dpr) = fit(canvas) else { return Ok(()) };
    let root = area(canvas, palette)?;
    let (lo, hi) = match (bins.first(), bins.last()) {
        (Some(first), Some(last)) if last.hi > first.lo => (first.lo, last.hi),
        (Some(first), Some(_)) => (first.lo - 0.5, first.lo + 0.5),
        _ => (0.0, 1.0),
    };
    let top = f64::from(bins.iter().map(|b| b.count).max().unwrap_or(1)) * 1.1;
    let mut ctx = ChartBuilder::on(&root)
        .margin((12.0 * dpr) as u32)
        .x_label_area_size((38.0 * dpr) as u32)
        .y_label_area_size((46.0 * dpr) as u32)
        .build_cartesian_2d(lo..hi, 0.0..top)
        .map_err(fail)?;
    let x_label = |v: &f64| fmt_axis(*v, hi - lo);
    // Whole requests only.
    let y_label = |v: &f64| if v.fract() == 0.0 { format!("{v:.0}") } else { String::new() };
    themed(
        ctx.configure_mesh()
            .x_desc("time to first token (ms)")
            .y_desc("requests")
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .y_labels((top as usize + 1).clamp(2, 11)),
        palette,
        dpr,
    )
    .draw()
    .map_err(fail)?;
    let width = if bins.len() == 1 && bins[0].hi <= bins[0].lo { 0.2 } else { 0.0 };
    ctx.draw_series(bins.iter().map(|b| {
        Rectangle::new([(b.lo - width, 0.0), (b.hi + width, f64::from(b.count))], rgb(palette.line).filled())
    }))
    .map_err(fail)?;
    root.present().map_err(fail)
}
