//! Drawing with plotters. Each chart is drawn by one function, generic over the backend:
//! on a `<canvas>` (sized to the element times the device pixel ratio, crisp on high-DPI
//! screens, redrawn whole on every change) and into an SVG string for downloads and reports.

use crate::view::{Series, SeriesSet};
use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind};
use plotters_canvas::CanvasBackend;
use shared::Summary;
use web_sys::HtmlCanvasElement;

use super::telemetry::{TelemetryChart, value_range};
use super::{Bin, Palette, Rgb, XScale, YScale, decimate, fmt_axis, fmt_length};

fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

fn fail(err: impl std::fmt::Debug) -> String {
    format!("the chart could not be drawn: {err:?}")
}

/// The size an exported chart is drawn at, in pixels.
pub const EXPORT_SIZE: (u32, u32) = (760, 400);

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

/// The surfaces the page draws on, as one backend type: each chart's code (and plotters'
/// own generic code under it) is compiled once for both, which keeps the page small.
pub enum Backend<'a> {
    Canvas(CanvasBackend),
    Svg(SVGBackend<'a>),
}

/// A drawing failure of either surface, in words.
#[derive(Debug)]
pub struct BackendError(String);

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

type Drawn<T> = Result<T, DrawingErrorKind<BackendError>>;

fn lift<T, E: std::error::Error + Send + Sync>(result: Result<T, DrawingErrorKind<E>>) -> Drawn<T> {
    result.map_err(|err| match err {
        DrawingErrorKind::DrawingError(err) => DrawingErrorKind::DrawingError(BackendError(err.to_string())),
        DrawingErrorKind::FontError(err) => DrawingErrorKind::FontError(err),
    })
}

/// Calls the same method on whichever surface this is.
macro_rules! each {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            Backend::Canvas($b) => lift($call),
            Backend::Svg($b) => lift($call),
        }
    };
}

impl DrawingBackend for Backend<'_> {
    type ErrorType = BackendError;

    fn get_size(&self) -> (u32, u32) {
        match self {
            Backend::Canvas(b) => b.get_size(),
            Backend::Svg(b) => b.get_size(),
        }
    }

    fn ensure_prepared(&mut self) -> Drawn<()> {
        each!(self, b => b.ensure_prepared())
    }

    fn present(&mut self) -> Drawn<()> {
        each!(self, b => b.present())
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Drawn<()> {
        each!(self, b => b.draw_pixel(point, color))
    }

    fn draw_line<S: BackendStyle>(&mut self, from: BackendCoord, to: BackendCoord, style: &S) -> Drawn<()> {
        each!(self, b => b.draw_line(from, to, style))
    }

    fn draw_rect<S: BackendStyle>(&mut self, a: BackendCoord, b2: BackendCoord, style: &S, fill: bool) -> Drawn<()> {
        each!(self, b => b.draw_rect(a, b2, style, fill))
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(&mut self, path: I, style: &S) -> Drawn<()> {
        each!(self, b => b.draw_path(path, style))
    }

    fn draw_circle<S: BackendStyle>(&mut self, center: BackendCoord, radius: u32, style: &S, fill: bool) -> Drawn<()> {
        each!(self, b => b.draw_circle(center, radius, style, fill))
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(&mut self, vert: I, style: &S) -> Drawn<()> {
        each!(self, b => b.fill_polygon(vert, style))
    }

    fn draw_text<T: BackendTextStyle>(&mut self, text: &str, style: &T, pos: BackendCoord) -> Drawn<()> {
        each!(self, b => b.draw_text(text, style, pos))
    }

    fn estimate_text_size<T: BackendTextStyle>(&self, text: &str, style: &T) -> Drawn<(u32, u32)> {
        each!(self, b => b.estimate_text_size(text, style))
    }

    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Drawn<()> {
        each!(self, b => b.blit_bitmap(pos, size, src))
    }
}

/// The drawing area every chart function is given.
pub type Area<'a> = DrawingArea<Backend<'a>, Shift>;

/// Fits the canvas and draws on it with `draw(area, device pixel ratio)`; `Ok(None)` while
/// the canvas is not laid out.
pub fn on_canvas<T>(
    canvas: &HtmlCanvasElement,
    palette: &Palette,
    draw: impl FnOnce(&Area<'_>, f64) -> Result<T, String>,
) -> Result<Option<T>, String> {
    let Some(dpr) = fit(canvas) else { return Ok(None) };
    let backend = CanvasBackend::with_canvas_object(canvas.clone()).ok_or("the browser gave no 2D canvas context")?;
    let root = Backend::Canvas(backend).into_drawing_area();
    root.fill(&rgb(palette.background)).map_err(fail)?;
    let drawn = draw(&root, dpr)?;
    root.present().map_err(fail)?;
    Ok(Some(drawn))
}

/// Draws with `draw` into a standalone SVG document of `size` pixels.
pub fn to_svg(
    size: (u32, u32),
    palette: &Palette,
    draw: impl FnOnce(&Area<'_>) -> Result<(), String>,
) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = Backend::Svg(SVGBackend::with_string(&mut out, size)).into_drawing_area();
        root.fill(&rgb(palette.background)).map_err(fail)?;
        draw(&root)?;
        root.present().map_err(fail)?;
    }
    Ok(out)
}

/// What a latency chart draws of one run, in the run's colours.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// The run's name in the chart's legend; a chart of one run has no legend.
    pub label: String,
    /// Settled points: prompt length and the metric's summary.
    pub points: Vec<(u32, Summary)>,
    /// Individual samples as they arrive: prompt length and value (ms).
    pub samples: Vec<(u32, f64)>,
    /// The mean's line and markers.
    pub line: Rgb,
    /// The p50-p99 band and the percentile lines.
    pub band: Rgb,
    /// The single requests.
    pub dots: Rgb,
}

/// A chart of one latency metric against prompt length, of one run or several overlaid.
pub struct LatencyChart<'a> {
    /// What the prompt lengths count ([`shared::SweepSpec::prompt_length_axis`]).
    pub x_desc: String,
    pub y_desc: &'a str,
    pub scale: XScale,
    pub y_scale: YScale,
    /// What to draw of the points and samples.
    pub series: SeriesSet,
    /// Every prompt length of the sweep (or sweeps), settled or not.
    pub lengths: &'a [u32],
    /// One per run, drawn in order.
    pub layers: Vec<Layer>,
    /// Shown in the middle of the chart while it has no data.
    pub empty_note: &'a str,
}

/// Draws a latency chart, each part only when `series` asks for it: samples as dots, the
/// p50-p99 band, percentile lines, the mean as a line with markers; with a legend when it
/// overlays several runs. Sizes (margins, fonts, strokes) are CSS pixels times `dpr`.
/// Returns each layer's settled means' positions in CSS pixels (drawn or not), for hovering.
pub fn latency<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &LatencyChart<'_>,
    palette: &Palette,
    dpr: f64,
) -> Result<Vec<Vec<(f64, f64)>>, String> {
    let (x0, x1) = chart.scale.range(chart.lengths);
    let y_scale = chart.y_scale;
    let (y0, y1) = y_scale.range(latency_values(chart));
    let mut ctx = plot(root, x0..x1, y0..y1, 58.0, dpr)?;
    let scale = chart.scale;
    let x_label = |v: &f64| fmt_length(scale.from_axis(*v));
    let y_label = |v: &f64| y_scale.label(*v, y1 - y0);
    themed(
        ctx.configure_mesh()
            .x_desc(&chart.x_desc)
            .y_desc(chart.y_desc)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .x_labels(if scale == XScale::Log2 { ((x1 - x0).ceil() as usize + 1).clamp(2, 12) } else { 8 }),
        palette,
        dpr,
    )
    .draw()
    .map_err(fail)?;
    if chart.layers.iter().all(|l| l.points.is_empty() && l.samples.is_empty()) {
        centre_note(root, chart.empty_note, palette, dpr)?;
    }
    let mut keys = Vec::new();
    let positions = chart
        .layers
        .iter()
        .map(|layer| latency_layer(root, &mut ctx, chart, layer, &mut keys, dpr))
        .collect::<Result<Vec<_>, String>>()?;
    legend(&ctx, &keys, palette, dpr)?;
    Ok(positions)
}

/// The values a latency chart's vertical axis fits: those drawn, or with nothing drawn, the
/// data's.
fn latency_values(chart: &LatencyChart<'_>) -> Vec<f64> {
    let shown = |s: Series| chart.series.contains(s);
    let mut values: Vec<f64> = Vec::new();
    for layer in &chart.layers {
        if shown(Series::Dots) {
            values.extend(layer.samples.iter().map(|s| s.1));
        }
        for (_, s) in &layer.points {
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
    }
    if values.is_empty() {
        for layer in &chart.layers {
            values.extend(layer.samples.iter().map(|s| s.1).chain(layer.points.iter().map(|(_, s)| s.mean)));
        }
    }
    values
}

/// Draws one layer of a latency chart, the parts its series ask for, in the layer's colours.
/// Returns its means' positions in CSS pixels.
fn latency_layer<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    ctx: &mut Plot<'_, DB>,
    chart: &LatencyChart<'_>,
    layer: &Layer,
    keys: &mut Vec<Key>,
    dpr: f64,
) -> Result<Vec<(f64, f64)>, String> {
    let shown = |s: Series| chart.series.contains(s);
    let (scale, y_scale) = (chart.scale, chart.y_scale);
    let at = |length: u32, value: f64| (scale.to_axis(f64::from(length)), y_scale.to_axis(value));
    let path =
        |pick: fn(&Summary) -> f64| -> Vec<(f64, f64)> { layer.points.iter().map(|(l, s)| at(*l, pick(s))).collect() };
    let several = chart.layers.len() > 1;
    if layer.points.len() > 1 && shown(Series::Band) {
        let mut band = path(|s| s.p50);
        band.extend(path(|s| s.p99).into_iter().rev());
        let alpha = if several { 0.14 } else { 0.22 };
        ctx.draw_series(std::iter::once(Polygon::new(band, rgb(layer.band).mix(alpha)))).map_err(fail)?;
    }
    // Samples: one square per distinct pixel.
    if shown(Series::Dots) {
        let dots = decimate(layer.samples.iter().map(|&(l, v)| ctx.backend_coord(&at(l, v))));
        let size = (3.0 * dpr).round().max(2.0) as i32;
        let style = rgb(layer.dots).mix(0.6).filled();
        for (px, py) in dots {
            let corner = (px - size / 2, py - size / 2);
            root.draw(&Rectangle::new([corner, (corner.0 + size, corner.1 + size)], style)).map_err(fail)?;
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
                color: rgb(layer.band).mix(alpha),
                filled: false,
                stroke_width: (1.5 * dpr).max(1.0) as u32,
            };
            ctx.draw_series(std::iter::once(PathElement::new(path(pick), style))).map_err(fail)?;
        }
    }
    let means = path(|s| s.mean);
    if shown(Series::Mean) {
        let line = ShapeStyle { color: rgb(layer.line).to_rgba(), filled: false, stroke_width: (2.0 * dpr) as u32 };
        ctx.draw_series(std::iter::once(PathElement::new(means.clone(), line))).map_err(fail)?;
        if several {
            keys.push(Key { label: layer.label.clone(), line });
        }
        let marker = (4.0 * dpr) as i32;
        ctx.draw_series(means.iter().map(|&p| Circle::new(p, marker, rgb(layer.line).filled()))).map_err(fail)?;
    }
    Ok(css_pixels(ctx, &means, dpr))
}

/// One curve of a latency-throughput chart: a prompt length's points in load order.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// The prompt length (and, in a comparison, the run) in the legend.
    pub label: String,
    pub colour: Rgb,
    /// Per load level: achieved output tokens/s, latency p50 and p99 (ms).
    pub points: Vec<(f64, f64, f64)>,
    /// Per point: whether the client fell behind its schedule there (ringed in the chart).
    pub behind: Vec<bool>,
}

/// Latency against achieved throughput across load levels.
#[derive(Debug, Clone, PartialEq)]
pub struct ThroughputChart {
    pub y_desc: &'static str,
    pub y_scale: YScale,
    pub curves: Vec<Curve>,
    /// Capacity searches' answers: each passing probe's throughput and its words.
    pub capacity: Vec<(f64, String)>,
    pub empty_note: &'static str,
}

/// Draws latency against output tokens/s: per curve, p50 as a line with dots and p99 as a
/// thinner line with squares, both in the curve's colour, and the capacity as a vertical
/// dashed line. Returns the p50 points' positions in CSS pixels, curve after curve.
pub fn throughput<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &ThroughputChart,
    palette: &Palette,
    dpr: f64,
) -> Result<Vec<(f64, f64)>, String> {
    let xs: Vec<f64> = chart.curves.iter().flat_map(|c| c.points.iter().map(|p| p.0)).collect();
    let x1 = xs.iter().copied().chain(chart.capacity.iter().map(|c| c.0)).fold(0.0_f64, f64::max);
    let x1 = if x1 > 0.0 { x1 * 1.08 } else { 1.0 };
    let y_scale = chart.y_scale;
    let (y0, y1) = y_scale.range(chart.curves.iter().flat_map(|c| c.points.iter().flat_map(|p| [p.1, p.2])));
    let mut ctx = plot(root, 0.0..x1, y0..y1, 58.0, dpr)?;
    let x_label = |v: &f64| fmt_axis(*v, x1);
    let y_label = |v: &f64| y_scale.label(*v, y1 - y0);
    axes(&mut ctx, ("achieved output tokens/s", &x_label), (chart.y_desc, &y_label), palette, dpr)?;
    let y = |value: f64| y_scale.to_axis(value);
    if chart.curves.iter().all(|c| c.points.is_empty()) {
        centre_note(root, chart.empty_note, palette, dpr)?;
    }
    for (k, (at, words)) in chart.capacity.iter().enumerate() {
        let style = ShapeStyle {
            color: rgb(palette.error).to_rgba(),
            filled: false,
            stroke_width: (1.5 * dpr).max(1.0) as u32,
        };
        let dash = (y1 - y0) / 40.0;
        let dashes = (0..40).step_by(2).map(|k| {
            let from = y0 + dash * f64::from(k);
            PathElement::new(vec![(*at, from), (*at, from + dash)], style)
        });
        ctx.draw_series(dashes).map_err(fail)?;
        let (px, py) = ctx.backend_coord(&(*at, y1));
        let font = font(12.0 * dpr).color(&rgb(palette.error));
        let right = *at > x1 * 0.6;
        let anchor = if right { HPos::Right } else { HPos::Left };
        let gap = (6.0 * dpr) as i32;
        let place = (if right { px - gap } else { px + gap }, py + gap + k as i32 * (16.0 * dpr) as i32);
        root.draw(&Text::new(words.clone(), place, font.pos(Pos::new(anchor, VPos::Top)))).map_err(fail)?;
    }
    let mut positions = Vec::new();
    let mut keys = Vec::new();
    let marker = (4.0 * dpr) as i32;
    for curve in &chart.curves {
        let colour = rgb(curve.colour);
        let p50: Vec<(f64, f64)> = curve.points.iter().map(|p| (p.0, y(p.1))).collect();
        let p99: Vec<(f64, f64)> = curve.points.iter().map(|p| (p.0, y(p.2))).collect();
        let thick = ShapeStyle { color: colour.to_rgba(), filled: false, stroke_width: (2.0 * dpr) as u32 };
        let thin = ShapeStyle { color: colour.mix(0.7), filled: false, stroke_width: (1.2 * dpr).max(1.0) as u32 };
        ctx.draw_series(std::iter::once(PathElement::new(p50.clone(), thick))).map_err(fail)?;
        keys.push(Key { label: format!("{} p50", curve.label).trim_start().to_string(), line: thick });
        ctx.draw_series(p50.iter().map(|&p| Circle::new(p, marker, colour.filled()))).map_err(fail)?;
        ctx.draw_series(std::iter::once(PathElement::new(p99.clone(), thin))).map_err(fail)?;
        keys.push(Key { label: format!("{} p99", curve.label).trim_start().to_string(), line: thin });
        let ring = ShapeStyle { color: rgb(palette.error).to_rgba(), filled: false, stroke_width: (1.5 * dpr) as u32 };
        let flagged = p50
            .iter()
            .zip(&curve.behind)
            .filter(|(_, behind)| **behind)
            .map(|(p, _)| Circle::new(*p, marker * 2, ring));
        ctx.draw_series(flagged).map_err(fail)?;
        let fill = colour.mix(0.7).filled();
        ctx.draw_series(
            p99.iter().map(|&p| EmptyElement::at(p) + Rectangle::new([(-marker, -marker), (marker, marker)], fill)),
        )
        .map_err(fail)?;
        positions.extend(css_pixels(&ctx, &p50, dpr));
    }
    if chart.curves.iter().any(|c| c.behind.contains(&true)) {
        corner_note(root, "ringed: the client fell behind its schedule", &rgb(palette.error), dpr)?;
    }
    legend(&ctx, &keys, palette, dpr)?;
    Ok(positions)
}

/// The description of every axis of seconds since the run's start.
pub const RUN_TIME: &str = "seconds since the run's start";

/// Draws one dot per request: seconds since the run's start (`x_range`, which the point's
/// server-metrics chart shares so that the two line up) against a latency (ms), described on
/// the vertical axis by `y_desc`.
pub fn scatter<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    points: &[(f64, f64)],
    x_range: (f64, f64),
    y_desc: &str,
    palette: &Palette,
    dpr: f64,
) -> Result<(), String> {
    let (x0, x1) = x_range;
    let (y0, y1) = YScale::Linear.range(points.iter().map(|p| p.1));
    let mut ctx = plot(root, x0..x1, y0..y1, 58.0, dpr)?;
    let x_label = |v: &f64| fmt_axis(*v, x1 - x0);
    let y_label = |v: &f64| fmt_axis(*v, y1 - y0);
    axes(&mut ctx, (RUN_TIME, &x_label), (y_desc, &y_label), palette, dpr)?;
    let radius = (2.5 * dpr).max(2.0) as i32;
    ctx.draw_series(points.iter().map(|&p| Circle::new(p, radius, rgb(palette.dots).filled()))).map_err(fail)?;
    Ok(())
}

/// Draws server metrics over time: each line's segments in its colour (a lone value as a
/// dot), failed scrapes as shaded spans with a mark along the bottom, a legend when the chart
/// asks for one and its note in the top right corner. The plot's margins are those of
/// [`scatter`], so a chart over the same seconds lines up with it.
pub fn telemetry<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &TelemetryChart,
    palette: &Palette,
    dpr: f64,
) -> Result<(), String> {
    let (x0, x1) = chart.x_range;
    let (y0, y1) = value_range(chart.lines.iter().flat_map(|l| l.segments.iter().flatten().map(|p| p.1)));
    let mut ctx = plot(root, x0..x1, y0..y1, 58.0, dpr)?;
    let x_label = |v: &f64| fmt_axis(*v, x1 - x0);
    let y_label = |v: &f64| fmt_axis(*v, y1 - y0);
    axes(&mut ctx, (RUN_TIME, &x_label), (&chart.y_desc, &y_label), palette, dpr)?;
    // Failed scrapes: a pale span over the plot and a solid mark along its bottom, at least
    // two pixels wide so that a single failure shows.
    let mark = (4.0 * dpr).max(2.0) as i32;
    let least = (2.0 * dpr).max(2.0) as i32;
    for gap in &chart.gaps {
        let (left, top) = ctx.backend_coord(&(gap.from, y1));
        let (right, bottom) = ctx.backend_coord(&(gap.to, y0));
        let right = right.max(left + least);
        root.draw(&Rectangle::new([(left, top), (right, bottom)], rgb(gap.colour).mix(0.12).filled())).map_err(fail)?;
        root.draw(&Rectangle::new([(left, bottom - mark), (right, bottom)], rgb(gap.colour).mix(0.85).filled()))
            .map_err(fail)?;
    }
    let mut keys = Vec::new();
    let dot = (2.5 * dpr).max(2.0) as i32;
    for line in &chart.lines {
        let style = ShapeStyle { color: rgb(line.colour).to_rgba(), filled: false, stroke_width: (2.0 * dpr) as u32 };
        // One point per pixel column and row: the picture is the same, and an hour of
        // scrapes redraws within a frame.
        let thinned: Vec<Vec<(f64, f64)>> = line
            .segments
            .iter()
            .map(|segment| {
                let mut last = None;
                segment
                    .iter()
                    .copied()
                    .filter(|p| {
                        let at = Some(ctx.backend_coord(p));
                        let new = at != last;
                        last = at;
                        new
                    })
                    .collect()
            })
            .collect();
        let paths = thinned.iter().filter(|s| s.len() > 1).map(|s| PathElement::new(s.clone(), style));
        ctx.draw_series(paths).map_err(fail)?;
        if chart.legend {
            keys.push(Key { label: line.label.clone(), line: style });
        }
        let lone = thinned.iter().filter(|s| s.len() == 1).map(|s| Circle::new(s[0], dot, rgb(line.colour).filled()));
        ctx.draw_series(lone).map_err(fail)?;
    }
    if chart.lines.iter().all(|l| l.segments.is_empty()) {
        centre_note(root, &chart.empty_note, palette, dpr)?;
    }
    if let Some(note) = &chart.note {
        corner_note(root, note, &rgb(palette.text).mix(0.8), dpr)?;
    }
    legend(&ctx, &keys, palette, dpr)?;
    Ok(())
}

/// The plotting context of every chart: numbers against numbers.
type Plot<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A plot of `x` against `y` on `root`, with the margins every chart shares and `y_labels`
/// CSS pixels left of it for the vertical axis's labels.
fn plot<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    y_labels: f64,
    dpr: f64,
) -> Result<Plot<'_, DB>, String> {
    ChartBuilder::on(root)
        .margin((12.0 * dpr) as u32)
        .x_label_area_size((38.0 * dpr) as u32)
        .y_label_area_size((y_labels * dpr) as u32)
        .build_cartesian_2d(x, y)
        .map_err(fail)
}

/// Writes `note` in the middle of a chart that has nothing to draw.
fn centre_note<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    note: &str,
    palette: &Palette,
    dpr: f64,
) -> Result<(), String> {
    let (w, h) = root.dim_in_pixel();
    let font = font(13.0 * dpr).color(&rgb(palette.text).mix(0.7));
    let at = ((w / 2) as i32, (h / 2) as i32);
    root.draw(&Text::new(note, at, font.pos(Pos::new(HPos::Center, VPos::Center)))).map_err(fail)
}

/// Writes `note` in a chart's top right corner, in `colour`.
fn corner_note<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    note: &str,
    colour: &impl Color,
    dpr: f64,
) -> Result<(), String> {
    let (w, _) = root.dim_in_pixel();
    let font = font(12.0 * dpr).color(colour);
    let at = (w as i32 - (14.0 * dpr) as i32, (14.0 * dpr) as i32);
    root.draw(&Text::new(note, at, font.pos(Pos::new(HPos::Right, VPos::Top)))).map_err(fail)
}

/// The page's font, `size` pixels high.
fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::SansSerif, size, FontStyle::Normal)
}

/// An entry of a chart's legend: a label and the line that stands for it.
struct Key {
    label: String,
    line: ShapeStyle,
}

/// Draws a legend of `keys`, if any, in the plot's top left corner, laid out as plotters'
/// series labels are (five pixels from the corner, a 30-pixel column for the lines). Drawn
/// here because plotters names its labels' default font by a string, which it lower-cases:
/// that would put Unicode's case tables in the page.
fn legend<DB: DrawingBackend>(ctx: &Plot<'_, DB>, keys: &[Key], palette: &Palette, dpr: f64) -> Result<(), String> {
    if keys.is_empty() {
        return Ok(());
    }
    let area = ctx.plotting_area().strip_coord_spec();
    let colour = rgb(palette.text);
    let style = font(12.0 * dpr).color(&colour);
    let mut text = MultiLineText::<BackendCoord, &str>::new((0, 0), &style);
    for key in keys {
        text.push_line(key.label.as_str());
    }
    let (w, h) = text.estimate_dimension().map_err(fail)?;
    let (corner, lines, margin) = (5, 30, (8.0 * dpr) as i32);
    let far = (corner + w + lines + 2 * margin, corner + h + 2 * margin);
    let frame = [(corner, corner), far];
    area.draw(&Rectangle::new(frame, rgb(palette.background).mix(0.85).filled())).map_err(fail)?;
    area.draw(&Rectangle::new(frame, rgb(palette.grid))).map_err(fail)?;
    text.relocate((corner + lines + margin, corner + margin));
    area.draw(&text).map_err(fail)?;
    let length = (18.0 * dpr) as i32;
    for (((_, top), (_, bottom)), key) in text.compute_line_layout().map_err(fail)?.into_iter().zip(keys) {
        let (x, y) = (corner + margin, (top + bottom) / 2);
        area.draw(&PathElement::new(vec![(x, y), (x + length, y)], key.line)).map_err(fail)?;
    }
    Ok(())
}

/// Where plotted points lie, in CSS pixels.
fn css_pixels<DB: DrawingBackend>(ctx: &Plot<'_, DB>, points: &[(f64, f64)], dpr: f64) -> Vec<(f64, f64)> {
    points
        .iter()
        .map(|p| {
            let (px, py) = ctx.backend_coord(p);
            (f64::from(px) / dpr, f64::from(py) / dpr)
        })
        .collect()
}

/// A latency chart as a standalone SVG document of [`EXPORT_SIZE`].
pub fn latency_svg(chart: &LatencyChart<'_>, palette: &Palette) -> Result<String, String> {
    to_svg(EXPORT_SIZE, palette, |root| latency(root, chart, palette, 1.0).map(drop))
}

/// A latency-throughput chart as a standalone SVG document of [`EXPORT_SIZE`].
pub fn throughput_svg(chart: &ThroughputChart, palette: &Palette) -> Result<String, String> {
    to_svg(EXPORT_SIZE, palette, |root| throughput(root, chart, palette, 1.0).map(drop))
}

/// Draws a plot's axes and grid in the look every chart shares: each axis's description and
/// how its labels read.
fn axes<DB: DrawingBackend>(
    ctx: &mut Plot<'_, DB>,
    (x_desc, x_label): (&str, &dyn Fn(&f64) -> String),
    (y_desc, y_label): (&str, &dyn Fn(&f64) -> String),
    palette: &Palette,
    dpr: f64,
) -> Result<(), String> {
    let mut mesh = ctx.configure_mesh();
    mesh.x_desc(x_desc).y_desc(y_desc).x_label_formatter(x_label).y_label_formatter(y_label);
    themed(&mut mesh, palette, dpr).draw().map_err(fail)
}

/// The look every chart's axes share: fonts scaled to the device, grid colours of the scheme.
fn themed<'m, 'a, 'b, X: Ranged, Y: Ranged, DB: DrawingBackend>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
    palette: &Palette,
    dpr: f64,
) -> &'m mut MeshStyle<'a, 'b, X, Y, DB> {
    let text = rgb(palette.text);
    mesh.label_style(font(12.0 * dpr).color(&text))
        .axis_desc_style(font(13.0 * dpr).color(&text))
        .axis_style(rgb(palette.grid))
        .bold_line_style(rgb(palette.grid).mix(0.8))
        .light_line_style(rgb(palette.grid).mix(0.3))
}

/// Draws one request's tokens as ticks on a time axis from its send: stalls show as gaps.
/// `tokens` are (ms since send, tokens in that response).
pub fn timeline<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    tokens: &[(f64, u32)],
    palette: &Palette,
    dpr: f64,
) -> Result<(), String> {
    let end = tokens.iter().map(|t| t.0).fold(0.0_f64, f64::max);
    let end = if end > 0.0 { end * 1.04 } else { 1.0 };
    let mut ctx = plot(root, 0.0..end, 0.0..1.0, 12.0, dpr)?;
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
    Ok(())
}

/// Draws a histogram of a latency (ms), described on its axis by `x_desc`.
pub fn histogram<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    bins: &[Bin],
    x_desc: &str,
    palette: &Palette,
    dpr: f64,
) -> Result<(), String> {
    let (lo, hi) = match (bins.first(), bins.last()) {
        (Some(first), Some(last)) if last.hi > first.lo => (first.lo, last.hi),
        (Some(first), Some(_)) => (first.lo - 0.5, first.lo + 0.5),
        _ => (0.0, 1.0),
    };
    let top = f64::from(bins.iter().map(|b| b.count).max().unwrap_or(1)) * 1.1;
    let mut ctx = plot(root, lo..hi, 0.0..top, 46.0, dpr)?;
    let x_label = |v: &f64| fmt_axis(*v, hi - lo);
    // Whole requests only.
    let y_label = |v: &f64| if v.fract() == 0.0 { format!("{v:.0}") } else { String::new() };
    themed(
        ctx.configure_mesh()
            .x_desc(x_desc)
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::SweepSpec;

    fn summary(mean: f64) -> Summary {
        Summary {
            count: 3,
            mean,
            min: mean - 1.0,
            max: mean + 2.0,
            std: 1.0,
            p50: mean - 0.5,
            p90: mean + 1.0,
            p99: mean + 1.5,
            p95: mean + 1.2,
            p999: None,
        }
    }

    fn layer(label: &str, colour: Rgb, means: &[(u32, f64)]) -> Layer {
        Layer {
            label: label.into(),
            points: means.iter().map(|&(l, m)| (l, summary(m))).collect(),
            samples: means.iter().map(|&(l, m)| (l, m + 0.25)).collect(),
            line: colour,
            band: colour,
            dots: colour,
        }
    }

    fn hex(c: Rgb) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }

    /// The `points` of every polyline stroked in `colour`.
    fn polylines(svg: &str, colour: Rgb) -> Vec<String> {
        let stroke = format!("stroke=\"{}\"", hex(colour));
        svg.split("<polyline")
            .skip(1)
            .map(|rest| &rest[..rest.find("/>").unwrap()])
            .filter(|tag| tag.contains(&stroke))
            .map(|tag| tag.split("points=\"").nth(1).unwrap().split('"').next().unwrap().trim().to_string())
            .collect()
    }

    #[test]
    fn an_svg_has_the_axes_and_a_line_per_run() {
        let lengths = [16, 64, 256];
        let (a, b) = ((200, 10, 10), (10, 150, 20));
        let chart = LatencyChart {
            x_desc: SweepSpec::default().prompt_length_axis(),
            y_desc: "TTFT (ms)",
            scale: XScale::for_lengths(&lengths),
            y_scale: YScale::Linear,
            series: SeriesSet::default(),
            lengths: &lengths,
            layers: vec![
                layer("base <run>", a, &[(16, 10.0), (64, 12.0), (256, 20.0)]),
                layer("other", b, &[(16, 11.0), (256, 30.0)]),
            ],
            empty_note: "none",
        };
        let mut positions = Vec::new();
        let svg = to_svg(EXPORT_SIZE, &Palette::LIGHT, |root| {
            positions = latency(root, &chart, &Palette::LIGHT, 1.0)?;
            Ok(())
        })
        .unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        assert!(svg.contains("width=\"760\" height=\"400\""));
        // Axis descriptions and tick labels.
        for text in ["prompt length (approx. tokens)", "TTFT (ms)", ">\n16\n<", ">\n64\n<", ">\n256\n<"] {
            assert!(svg.contains(text), "no {text:?} in the SVG");
        }
        // One mean line per run, through its points; the legend names both, escaped.
        let lines_a = polylines(&svg, a);
        assert!(lines_a.iter().any(|p| p.split(' ').count() == 3), "{lines_a:?}");
        let lines_b = polylines(&svg, b);
        assert!(lines_b.iter().any(|p| p.split(' ').count() == 2), "{lines_b:?}");
        assert!(svg.contains(">\nbase &lt;run&gt;\n<") && svg.contains(">\nother\n<"), "the legend names the runs");
        assert!(!svg.contains("<run>"));
        // Markers and dots in each run's colour.
        assert!(svg.matches(&format!("fill=\"{}\"", hex(a))).count() >= 6);
        assert_eq!(positions.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 2]);
        // Further right, further up: the means rise with the prompt length.
        assert!(positions[0][0].0 < positions[0][2].0 && positions[0][0].1 > positions[0][2].1);
    }

    #[test]
    fn one_run_has_no_legend_and_an_empty_chart_says_why() {
        let lengths = [16, 64];
        let by_tokenizer =
            SweepSpec { tokenizer: Some("/models/llama-3/tokenizer.json".into()), ..SweepSpec::default() };
        let mut chart = LatencyChart {
            x_desc: by_tokenizer.prompt_length_axis(),
            y_desc: "token-to-token (ms)",
            scale: XScale::Linear,
            y_scale: YScale::Log10,
            series: SeriesSet::of(&[Series::Mean, Series::P99]),
            lengths: &lengths,
            layers: vec![layer("only", Palette::LIGHT.line, &[(16, 2.0), (64, 3.0)])],
            empty_note: "no results",
        };
        chart.layers[0].band = Palette::LIGHT.band;
        let svg = latency_svg(&chart, &Palette::LIGHT).unwrap();
        assert!(!svg.contains(">\nonly\n<"), "a single run has no legend");
        assert!(svg.contains(">\nprompt length (tokens, tokenizer llama-3)\n<"), "the axis says what lengths count");
        // The mean and the p99 line (in the band colour).
        assert_eq!(polylines(&svg, Palette::LIGHT.line).len(), 1);
        assert_eq!(polylines(&svg, Palette::LIGHT.band).len(), 1);
        chart.layers[0].points.clear();
        chart.layers[0].samples.clear();
        let svg = latency_svg(&chart, &Palette::LIGHT).unwrap();
        assert!(svg.contains(">\nno results\n<"));
    }

    #[test]
    fn server_metrics_draw_lines_broken_at_gaps_and_line_up_with_the_scatter() {
        use super::super::telemetry::{Gap, Line};
        let (a, b) = (Palette::LIGHT.run(0), Palette::LIGHT.run(1));
        let chart = TelemetryChart {
            x_range: (1.9, 3.1),
            y_desc: "nv_inference_count /s".into(),
            lines: vec![
                Line {
                    label: "model=m".into(),
                    colour: a,
                    segments: vec![vec![(2.0, 1.0), (2.2, 3.0)], vec![(2.8, 2.0)]],
                },
                Line { label: "model=<n>".into(), colour: b, segments: vec![vec![(2.0, 0.0), (3.0, 1.0)]] },
            ],
            gaps: vec![Gap { from: 2.4, to: 2.6, colour: Palette::LIGHT.error }],
            legend: true,
            empty_note: "nothing".into(),
            note: Some("simulated: the simulator's stand-in, not a GPU's".into()),
            simulated: true,
        };
        let svg = to_svg(EXPORT_SIZE, &Palette::LIGHT, |root| telemetry(root, &chart, &Palette::LIGHT, 1.0)).unwrap();
        // A line per segment of two values or more (and one in the legend), a dot for the lone one.
        assert_eq!(polylines(&svg, a).len(), 2, "{svg}");
        assert_eq!(polylines(&svg, b).len(), 2);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains(&format!("fill=\"{}\"", hex(Palette::LIGHT.error))), "the failed scrapes are marked");
        for text in ["nv_inference_count /s", "model=m", "model=&lt;n&gt;", "stand-in"] {
            assert!(svg.contains(text), "no {text:?} in the SVG");
        }
        assert!(!svg.contains(">\nnothing\n<"));
        // The same seconds on both charts: the same tick labels at the same places.
        let ticks = |svg: &str| -> Vec<String> {
            svg.split("<text").filter(|t| t.contains(">\n2.")).map(|t| t[..t.find('>').unwrap()].to_string()).collect()
        };
        let scatter_svg = to_svg(EXPORT_SIZE, &Palette::LIGHT, |root| {
            scatter(root, &[(2.0, 5.0), (2.5, 7.0)], (1.9, 3.1), "TTFT (ms)", &Palette::LIGHT, 1.0)
        })
        .unwrap();
        let (mine, theirs) = (ticks(&svg), ticks(&scatter_svg));
        assert!(mine.len() >= 3 && mine.iter().filter(|t| theirs.contains(t)).count() >= 3, "{mine:?} {theirs:?}");
        let empty = TelemetryChart { lines: Vec::new(), gaps: Vec::new(), note: None, legend: false, ..chart };
        let svg = to_svg(EXPORT_SIZE, &Palette::LIGHT, |root| telemetry(root, &empty, &Palette::LIGHT, 1.0)).unwrap();
        assert!(svg.contains(">\nnothing\n<"));
    }

    #[test]
    fn the_inspector_charts_draw_as_svg_too() {
        let svg = to_svg((400, 120), &Palette::DARK, |root| {
            timeline(root, &[(5.0, 1), (6.0, 2), (9.0, 1)], &Palette::DARK, 1.0)
        })
        .unwrap();
        assert_eq!(polylines(&svg, Palette::DARK.line).len(), 3, "a tick per response");
        let bins = super::super::histogram(&[1.0, 2.0, 2.5, 4.0], 4);
        let svg = to_svg((400, 300), &Palette::LIGHT, |root| {
            histogram(root, &bins, "time to first token (ms)", &Palette::LIGHT, 1.0)
        })
        .unwrap();
        assert!(svg.contains(">\ntime to first token (ms)\n<") && svg.contains(">\nrequests\n<"));
        let svg = to_svg((400, 300), &Palette::LIGHT, |root| {
            scatter(root, &[(2.0, 5.0), (2.5, 7.0), (3.0, 12.0)], (1.9, 3.1), "TTFT (ms)", &Palette::LIGHT, 1.0)
        })
        .unwrap();
        assert_eq!(svg.matches("<circle").count(), 3, "a dot per request");
        assert!(svg.contains(">\nseconds since the run&apos;s start\n<"), "the dots are on the run's time");
    }
}
