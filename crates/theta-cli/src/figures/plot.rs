//! Drawing helpers shared by the figures: SVG and PNG output of one drawing
//! routine, heatmaps of loss landscapes, arrows.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::checkpoint::write_atomic;

/// A figure that can draw itself on any plotters backend.
pub(crate) trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the figure.
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Turns any plotters error into a message.
pub(crate) fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("drawing failed: {e:?}")
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Embedded DejaVu Sans: PNGs render the same on a machine without fonts.
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let bytes = if matches!(style, FontStyle::Bold) {
                dejavu::sans::bold()
            } else {
                dejavu::sans::regular()
            };
            // DejaVu Sans is a valid font; a failure would only lose the labels.
            let _ = plotters::style::register_font("sans-serif", style, bytes);
        }
    });
}

/// Writes `DIR/NAME.svg` and `DIR/NAME.png`, each atomically; returns both paths.
pub(crate) fn save(fig: &impl Figure, dir: &Path, name: &str) -> Result<[PathBuf; 2], String> {
    register_font();
    let size = fig.size();
    let svg_path = dir.join(format!("{name}.svg"));
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        area.fill(&WHITE).map_err(err)?;
        fig.draw(&area)?;
        area.present().map_err(err)?;
    }
    write_atomic(&svg_path, svg.as_bytes())?;
    let png_path = dir.join(format!("{name}.png"));
    let tmp = theta_core::fs::temporary_path(&png_path, "png");
    {
        let area = BitMapBackend::new(&tmp, size).into_drawing_area();
        area.fill(&WHITE).map_err(err)?;
        fig.draw(&area)?;
        area.present().map_err(|e| format!("cannot write {}: {e:?}", png_path.display()))?;
    }
    std::fs::rename(&tmp, &png_path)
        .map_err(|e| format!("cannot write {}: {e}", png_path.display()))?;
    Ok([svg_path, png_path])
}

/// Values of a function on a regular grid over [x0, x1] × [y0, y1].
#[derive(Clone, Debug)]
pub(crate) struct Grid {
    pub(crate) x: (f64, f64),
    pub(crate) y: (f64, f64),
    pub(crate) n: usize,
    /// Row-major: `values[j * n + i]` at x_i, y_j.
    pub(crate) values: Vec<f64>,
}

impl Grid {
    /// Evaluates `f` at the centres of n × n cells.
    pub(crate) fn eval(
        x: (f64, f64),
        y: (f64, f64),
        n: usize,
        mut f: impl FnMut(f64, f64) -> f64,
    ) -> Grid {
        let mut values = Vec::with_capacity(n * n);
        for j in 0..n {
            for i in 0..n {
                let (px, py) = Self::centre_of(x, y, n, i, j);
                values.push(f(px, py));
            }
        }
        Grid { x, y, n, values }
    }

    fn centre_of(x: (f64, f64), y: (f64, f64), n: usize, i: usize, j: usize) -> (f64, f64) {
        let dx = (x.1 - x.0) / n as f64;
        let dy = (y.1 - y.0) / n as f64;
        (x.0 + (i as f64 + 0.5) * dx, y.0 + (j as f64 + 0.5) * dy)
    }

    /// The cell centre with the smallest value.
    pub(crate) fn argmin(&self) -> (f64, f64) {
        let k = (0..self.values.len())
            .fold(0, |b, k| if self.values[k] < self.values[b] { k } else { b });
        Self::centre_of(self.x, self.y, self.n, k % self.n, k / self.n)
    }
}

/// A heatmap of `grid` on log scale (darker is lower, as in the article),
/// returning the chart so that callers can draw on top.
pub(crate) fn heatmap<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    grid: &Grid,
    title: &str,
    x_label: &str,
    y_label: &str,
) -> Result<
    ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    String,
> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(grid.x.0..grid.x.1, grid.y.0..grid.y.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    let logs: Vec<f64> = grid.values.iter().map(|v| (v.max(1e-12)).ln()).collect();
    let lo = logs.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let (dx, dy) = ((grid.x.1 - grid.x.0) / grid.n as f64, (grid.y.1 - grid.y.0) / grid.n as f64);
    chart
        .draw_series((0..grid.values.len()).map(|k| {
            let (i, j) = (k % grid.n, k / grid.n);
            let t = if hi > lo { (logs[k] - lo) / (hi - lo) } else { 0.0 };
            // Viridis runs dark to light: low loss is dark.
            let c = ViridisRGB::get_color(t);
            let (x0, y0) = (grid.x.0 + i as f64 * dx, grid.y.0 + j as f64 * dy);
            Rectangle::new([(x0, y0), (x0 + dx, y0 + dy)], c.filled())
        }))
        .map_err(err)?;
    Ok(chart)
}

/// An arrow from `from` to `to` in data coordinates.
pub(crate) fn arrow<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    from: (f64, f64),
    to: (f64, f64),
    color: RGBColor,
) -> Result<(), String> {
    let style = ShapeStyle { color: color.to_rgba(), filled: false, stroke_width: 2 };
    chart.draw_series(std::iter::once(PathElement::new(vec![from, to], style))).map_err(err)?;
    // The head: two short strokes at ±25° from the reversed direction.
    let (vx, vy) = (to.0 - from.0, to.1 - from.1);
    let len = (vx * vx + vy * vy).sqrt();
    if len > 0.0 {
        let head = 0.25 * len.min(0.3);
        for angle in [0.45f64, -0.45] {
            let (c, s) = (angle.cos(), angle.sin());
            let (ux, uy) = (-vx / len, -vy / len);
            let tip = (to.0 + head * (c * ux - s * uy), to.1 + head * (s * ux + c * uy));
            chart
                .draw_series(std::iter::once(PathElement::new(vec![to, tip], style)))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// A labelled point.
pub(crate) fn marker<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    at: (f64, f64),
    label: &str,
    color: RGBColor,
) -> Result<(), String> {
    chart.draw_series(std::iter::once(Circle::new(at, 5, color.filled()))).map_err(err)?;
    chart
        .draw_series(std::iter::once(Text::new(
            label.to_string(),
            (at.0, at.1),
            ("sans-serif", 14).into_font().color(&color),
        )))
        .map_err(err)?;
    Ok(())
}

/// The series legend, framed on a translucent white box.
pub(crate) fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)
}
