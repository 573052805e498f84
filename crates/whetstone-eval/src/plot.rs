//! Line plots of training curves and experiment series, written as both PNG
//! (for quick viewing / embedding in Markdown) and SVG (for papers, scalable).
//!
//! Fonts come from the embedded DejaVu family (see `font.rs`), so no system
//! fonts are required.

use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::font::ensure_fonts_registered;
use crate::fs::create_parent_dir;
use crate::EvalError;

/// A named series of `(x, y)` points, e.g. `("train_loss", [(step, loss)])`.
/// Non-finite points are skipped when drawing (a diverged loss must not
/// break the plot).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// Legend label.
    pub name: String,
    /// Points in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Optional error bars: the half-width at each point (e.g. one standard deviation over
    /// seeds), drawn as vertical bars `y ± spread`; empty for none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<f64>,
}

impl Curve {
    /// Convenience constructor.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
            spread: Vec::new(),
        }
    }

    /// The same curve with error bars of half-width `spread[i]` at point `i`.
    pub fn with_spread(mut self, spread: Vec<f64>) -> Self {
        self.spread = spread;
        self
    }

    /// `(x, y, half-width)` of each finite error bar.
    fn bars(&self) -> impl Iterator<Item = (f64, f64, f64)> + '_ {
        self.points
            .iter()
            .zip(&self.spread)
            .map(|(&(x, y), &s)| (x, y, s))
            .filter(|(x, y, s)| x.is_finite() && y.is_finite() && s.is_finite() && *s > 0.0)
    }
}

/// Size of the two-panel training figure (wide: panels side by side).
const TRAINING_SIZE: (u32, u32) = (1000, 450);
/// Size of a single-panel figure.
const LINES_SIZE: (u32, u32) = (800, 500);
/// Markers are drawn when a curve is this sparse (validation points,
/// accuracy-vs-N), so single points remain visible.
const MARKER_MAX_POINTS: usize = 40;

/// Matplotlib's "tab10" qualitative palette: distinguishable, and familiar
/// to readers of ML papers.
const TAB10: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// One set of axes.
struct Panel<'a> {
    caption: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    /// `(curve, palette index)`.
    curves: Vec<(&'a Curve, usize)>,
    legend_at: SeriesLabelPosition,
    /// Logarithmic x axis (for quantities spanning decades, e.g. dataset size).
    log_x: bool,
}

/// A titled row of panels.
struct Figure<'a> {
    title: &'a str,
    size: (u32, u32),
    panels: Vec<Panel<'a>>,
}

/// Plot training loss (left) and a validation metric (right) against steps.
///
/// The right panel's y axis is labelled with `valid_metric.name`. Empty or
/// single-point curves are fine: ranges are padded so axes still render.
///
/// # Errors
/// [`EvalError::Io`] if an output directory cannot be created,
/// [`EvalError::Plot`] naming the file that could not be drawn/written,
/// [`EvalError::Font`] if the embedded font fails to load.
pub fn plot_training_curves(
    train_loss: &Curve,
    valid_metric: &Curve,
    title: &str,
    png: &Path,
    svg: &Path,
) -> Result<(), EvalError> {
    let fig = Figure {
        title,
        size: TRAINING_SIZE,
        panels: vec![
            Panel {
                caption: "training loss",
                x_label: "step",
                y_label: "loss",
                curves: vec![(train_loss, 0)],
                legend_at: SeriesLabelPosition::UpperRight,
                log_x: false,
            },
            Panel {
                caption: "validation",
                x_label: "step",
                y_label: &valid_metric.name,
                curves: vec![(valid_metric, 1)],
                legend_at: SeriesLabelPosition::LowerRight,
                log_x: false,
            },
        ],
    };
    render(&fig, png, svg)
}

/// Plot any number of named series on one set of axes (e.g. accuracy vs
/// training-set size per model, or several loss curves), with a legend.
///
/// # Errors
/// As [`plot_training_curves`].
pub fn plot_lines(
    series: &[Curve],
    x_label: &str,
    y_label: &str,
    title: &str,
    png: &Path,
    svg: &Path,
) -> Result<(), EvalError> {
    render(
        &lines_figure(series, x_label, y_label, title, false),
        png,
        svg,
    )
}

/// Like [`plot_lines`] but with a base-10 logarithmic x axis, for x values
/// spanning decades (training-set sizes 100 … 100,000), where a linear axis
/// would squash the small-N points together.
///
/// # Errors
/// As [`plot_training_curves`], plus [`EvalError::Plot`] (naming `png`) if
/// any finite x is ≤ 0, which has no logarithm.
pub fn plot_lines_log_x(
    series: &[Curve],
    x_label: &str,
    y_label: &str,
    title: &str,
    png: &Path,
    svg: &Path,
) -> Result<(), EvalError> {
    let bad = series
        .iter()
        .flat_map(|c| &c.points)
        .find(|(x, y)| x.is_finite() && y.is_finite() && *x <= 0.0);
    if let Some((x, _)) = bad {
        return Err(EvalError::Plot {
            path: png.to_path_buf(),
            message: format!("log-scale x axis needs x > 0, got {x}"),
        });
    }
    render(
        &lines_figure(series, x_label, y_label, title, true),
        png,
        svg,
    )
}

/// Single-panel figure shared by the `plot_lines*` functions.
fn lines_figure<'a>(
    series: &'a [Curve],
    x_label: &'a str,
    y_label: &'a str,
    title: &'a str,
    log_x: bool,
) -> Figure<'a> {
    Figure {
        title,
        size: LINES_SIZE,
        panels: vec![Panel {
            caption: "",
            x_label,
            y_label,
            curves: series.iter().enumerate().map(|(i, c)| (c, i)).collect(),
            legend_at: SeriesLabelPosition::UpperLeft,
            log_x,
        }],
    }
}

/// Draw `fig` once per backend, in memory, and write each file atomically
/// ([`crate::write_atomic`]).
fn render(fig: &Figure, png: &Path, svg: &Path) -> Result<(), EvalError> {
    use image::ImageEncoder;
    ensure_fonts_registered()?;
    let plot_err = |path: &Path| {
        let path = path.to_path_buf();
        move |message: String| EvalError::Plot { path, message }
    };
    let write = |path: &Path, bytes: &[u8]| -> Result<(), EvalError> {
        create_parent_dir(path)?;
        crate::write_atomic(path, bytes).map_err(|e| crate::fs::io_err(path, e))
    };

    let (w, h) = fig.size;
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    draw_figure(BitMapBackend::with_buffer(&mut rgb, fig.size).into_drawing_area(), fig)
        .map_err(plot_err(png))?;
    let mut encoded = Vec::new();
    image::codecs::png::PngEncoder::new(&mut encoded)
        .write_image(&rgb, w, h, image::ColorType::Rgb8)
        .map_err(|e| plot_err(png)(e.to_string()))?;
    write(png, &encoded)?;

    let mut text = String::new();
    draw_figure(SVGBackend::with_string(&mut text, fig.size).into_drawing_area(), fig)
        .map_err(plot_err(svg))?;
    write(svg, text.as_bytes())
}

/// Backend-independent drawing; plotters' error types are generic, so errors
/// are flattened to strings here.
fn draw_figure<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    fig: &Figure,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let body = if fig.title.is_empty() {
        root.clone()
    } else {
        root.titled(fig.title, ("sans-serif", 22))
            .map_err(|e| e.to_string())?
    };
    let areas = body.split_evenly((1, fig.panels.len().max(1)));
    for (area, panel) in areas.iter().zip(&fig.panels) {
        draw_panel(area, panel)?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Axes, mesh, curves and legend for one panel.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
) -> Result<(), String> {
    let finite = |c: &Curve| -> Vec<(f64, f64)> {
        c.points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    };
    let data: Vec<PanelSeries> = panel
        .curves
        .iter()
        .map(|&(c, i)| (c, i, finite(c)))
        .collect();
    let xs = data.iter().flat_map(|d| d.2.iter().map(|p| p.0));
    let bar_ends = data
        .iter()
        .flat_map(|d| d.0.bars().flat_map(|(_, y, s)| [y - s, y + s]));
    let y_range = axis_range(
        data.iter().flat_map(|d| d.2.iter().map(|p| p.1)).chain(bar_ends),
        0.05,
    );

    let mut builder = ChartBuilder::on(area);
    builder
        .margin(12)
        .margin_right(30)
        .x_label_area_size(45)
        .y_label_area_size(65);
    if !panel.caption.is_empty() {
        builder.caption(panel.caption, ("sans-serif", 18));
    }
    if panel.log_x {
        let chart = builder.build_cartesian_2d(log_axis_range(xs).log_scale(), y_range);
        draw_chart(chart.map_err(|e| e.to_string())?, panel, data)
    } else {
        let chart = builder.build_cartesian_2d(axis_range(xs, 0.0), y_range);
        draw_chart(chart.map_err(|e| e.to_string())?, panel, data)
    }
}

/// A curve, its palette index and its finite points.
type PanelSeries<'a> = (&'a Curve, usize, Vec<(f64, f64)>);

/// Mesh, series and legend; generic over the x coordinate (linear or log).
fn draw_chart<'a, DB, X>(
    mut chart: ChartContext<'a, DB, Cartesian2d<X, RangedCoordf64>>,
    panel: &Panel,
    data: Vec<PanelSeries>,
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(panel.x_label)
        .y_desc(panel.y_label)
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 12))
        .x_label_formatter(&|v| format_tick(*v))
        .y_label_formatter(&|v| format_tick(*v))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(|e| e.to_string())?;

    for (curve, idx, points) in data {
        let color = TAB10[idx % TAB10.len()];
        let marker = if points.len() <= MARKER_MAX_POINTS {
            3
        } else {
            0
        };
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(marker))
            .map_err(|e| e.to_string())?
            .label(curve.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(curve.bars().map(|(x, y, s)| {
                PathElement::new(vec![(x, y - s), (x, y + s)], color.mix(0.6).stroke_width(2))
            }))
            .map_err(|e| e.to_string())?;
    }
    if panel.curves.iter().any(|(c, _)| !c.name.is_empty()) {
        chart
            .configure_series_labels()
            .position(panel.legend_at.clone())
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Positive x range for a log axis: exact bounds, or a factor-of-2 margin
/// around a single value; `1..10` when there are no (positive) points.
fn log_axis_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .filter(|&v| v > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        1.0..10.0
    } else if hi / lo < 1.0 + 1e-9 {
        (lo / 2.0)..(hi * 2.0)
    } else {
        lo..hi
    }
}

/// Range covering `values`, widened by `pad_frac` of the span on each side.
/// Empty input gives `0..1`; a degenerate (single-value) input is widened to
/// ±10% of the value (at least ±1 when the value is ~0) so plotters gets a
/// non-empty range.
fn axis_range(values: impl Iterator<Item = f64>, pad_frac: f64) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return 0.0..1.0;
    }
    let span = hi - lo;
    if span <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = if lo.abs() > 1e-9 { lo.abs() * 0.1 } else { 1.0 };
        return (lo - pad)..(hi + pad);
    }
    (lo - span * pad_frac)..(hi + span * pad_frac)
}

/// Compact tick label: integers without a trailing `.0` (steps), otherwise
/// up to 4 significant decimals with trailing zeros trimmed.
fn format_tick(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let s = if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    };
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            bytes.len() > 1000,
            "PNG suspiciously small: {} bytes",
            bytes.len()
        );
        assert_eq!(bytes[..8], PNG_SIGNATURE);
    }

    #[test]
    fn training_curves_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = (
            dir.path().join("out/curves.png"),
            dir.path().join("out/curves.svg"),
        );
        let loss = Curve::new(
            "train_loss",
            (0..200)
                .map(|s| (s as f64 * 10.0, 0.7 * (-(s as f64) / 60.0).exp() + 0.05))
                .collect(),
        );
        let acc = Curve::new(
            "accuracy",
            (1..=10)
                .map(|i| (i as f64 * 200.0, 0.5 + 0.4 * (1.0 - 1.0 / i as f64)))
                .collect(),
        );
        plot_training_curves(&loss, &acc, "sst2 / tiny-bert", &png, &svg).unwrap();
        assert_png(&png);
        let s = std::fs::read_to_string(&svg).unwrap();
        assert!(s.contains("<svg"));
        for text in ["step", "loss", "accuracy", "sst2 / tiny-bert", "train_loss"] {
            assert!(s.contains(text), "SVG lacks {text:?}");
        }
    }

    #[test]
    fn empty_and_single_point_curves() {
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = (dir.path().join("e.png"), dir.path().join("e.svg"));
        let empty = Curve::new("train_loss", vec![]);
        let one = Curve::new("mcc", vec![(100.0, 0.42)]);
        plot_training_curves(&empty, &one, "", &png, &svg).unwrap();
        assert_png(&png);
        assert!(std::fs::read_to_string(&svg).unwrap().contains("mcc"));

        let nan = Curve::new(
            "diverged",
            vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, f64::INFINITY)],
        );
        plot_lines(&[nan, Curve::default()], "N", "accuracy", "t", &png, &svg).unwrap();
        assert_png(&png);
    }

    #[test]
    fn lines_plot_has_all_series() {
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = (dir.path().join("n.png"), dir.path().join("n.svg"));
        let series: Vec<Curve> = ["bilstm", "tiny-bert", "cnn"]
            .iter()
            .enumerate()
            .map(|(k, name)| {
                Curve::new(
                    *name,
                    [100.0f64, 1000.0, 10000.0]
                        .iter()
                        .map(|&n| (n, 0.6 + 0.05 * k as f64 + n.log10() * 0.05))
                        .collect(),
                )
            })
            .collect();
        plot_lines(
            &series,
            "training examples (N)",
            "test accuracy",
            "accuracy vs N",
            &png,
            &svg,
        )
        .unwrap();
        assert_png(&png);
        let s = std::fs::read_to_string(&svg).unwrap();
        for text in [
            "bilstm",
            "tiny-bert",
            "cnn",
            "training examples (N)",
            "test accuracy",
        ] {
            assert!(s.contains(text), "SVG lacks {text:?}");
        }
    }

    #[test]
    fn log_x_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = (dir.path().join("log.png"), dir.path().join("log.svg"));
        let c = Curve::new("bilstm", vec![(100.0, 0.7), (1000.0, 0.8), (10000.0, 0.85)]);
        plot_lines_log_x(std::slice::from_ref(&c), "N", "accuracy", "log", &png, &svg).unwrap();
        assert_png(&png);
        plot_lines_log_x(
            &[Curve::new("one", vec![(500.0, 0.5)])],
            "N",
            "acc",
            "",
            &png,
            &svg,
        )
        .unwrap();
        plot_lines_log_x(&[], "N", "acc", "", &png, &svg).unwrap();
        let zero = Curve::new("z", vec![(0.0, 0.5)]);
        let err = plot_lines_log_x(&[c, zero], "N", "acc", "", &png, &svg).unwrap_err();
        assert!(err.to_string().contains("log.png"), "{err}");
        assert_eq!(log_axis_range([5.0].into_iter()), 2.5..10.0);
    }

    #[test]
    fn error_bars_are_drawn_and_skip_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = (dir.path().join("bars.png"), dir.path().join("bars.svg"));
        let c = Curve::new("arm", vec![(50.0, 55.0), (200.0, 60.0), (1000.0, 70.0)]).with_spread(vec![f64::NAN, 1.0, 0.0]);
        // One drawable bar (the NaN and the zero are skipped), inside the y range of the points,
        // so the axes are the same with and without it.
        assert_eq!(c.bars().collect::<Vec<_>>(), vec![(200.0, 60.0, 1.0)]);
        plot_lines_log_x(std::slice::from_ref(&c), "N", "accuracy", "bars", &png, &svg).unwrap();
        assert_png(&png);
        let polylines = |curve: &Curve| {
            plot_lines_log_x(std::slice::from_ref(curve), "N", "accuracy", "bars", &png, &svg).unwrap();
            std::fs::read_to_string(&svg).unwrap().matches("<polyline").count()
        };
        let without = polylines(&Curve::new("arm", c.points.clone()));
        assert_eq!(polylines(&c), without + 1, "exactly one error bar expected");
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("spread"));
        assert!(!serde_json::to_string(&Curve::new("x", vec![])).unwrap().contains("spread"));
    }

    #[test]
    fn unwritable_path_errors_with_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let png = blocker.join("sub/c.png");
        let err = plot_lines(&[], "x", "y", "t", &png, &dir.path().join("c.svg")).unwrap_err();
        assert!(err.to_string().contains("file"), "{err}");
    }

    #[test]
    fn ranges_and_ticks() {
        assert_eq!(axis_range(std::iter::empty(), 0.05), 0.0..1.0);
        assert_eq!(axis_range([5.0].into_iter(), 0.05), 4.5..5.5);
        assert_eq!(axis_range([0.0].into_iter(), 0.05), -1.0..1.0);
        assert_eq!(axis_range([0.0, 10.0].into_iter(), 0.1), -1.0..11.0);
        assert_eq!(format_tick(2000.0), "2000");
        assert_eq!(format_tick(0.25), "0.25");
        assert_eq!(format_tick(0.123456), "0.1235");
        assert_eq!(format_tick(12.5), "12.5");
    }
}
