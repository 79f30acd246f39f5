//! PNG plots for the reports: learning curves, PR curves, true vs predicted maps,
//! and the strategy comparison. Text uses the embedded DejaVu Sans font, so
//! plots render the same on machines without system fonts.

use std::path::Path;
use std::sync::Once;

use ndarray::Array2;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{CliError, CliResult};

static FONT: Once = Once::new();

fn init_font() {
    FONT.call_once(|| {
        // A failure leaves plots without text rather than failing the run.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

fn err(path: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::Write { path: path.to_path_buf(), message: format!("plot: {e}") }
}

/// Training loss, validation loss and validation F1 per epoch.
pub fn learning_curves(path: &Path, history: &[symseg_train::train::EpochLog]) -> CliResult<()> {
    init_font();
    let root = BitMapBackend::new(path, (1000, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let (left, right) = root.split_horizontally(500);
    let epochs = history.len().max(1) as f64;
    let losses: Vec<f64> =
        history.iter().flat_map(|h| std::iter::once(h.train_loss).chain(h.val_loss)).collect();
    let ymax = losses.iter().cloned().fold(0.0f64, f64::max).max(1e-9) * 1.05;
    let mut c = ChartBuilder::on(&left)
        .caption("loss", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(1.0..epochs.max(2.0), 0.0..ymax)
        .map_err(|e| err(path, e))?;
    c.configure_mesh().x_desc("epoch").draw().map_err(|e| err(path, e))?;
    let train: Vec<(f64, f64)> = history.iter().map(|h| (h.epoch as f64, h.train_loss)).collect();
    c.draw_series(LineSeries::new(train, &BLUE))
        .map_err(|e| err(path, e))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    let val: Vec<(f64, f64)> =
        history.iter().filter_map(|h| h.val_loss.map(|v| (h.epoch as f64, v))).collect();
    if !val.is_empty() {
        c.draw_series(LineSeries::new(val, &RED))
            .map_err(|e| err(path, e))?
            .label("validation")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    }
    c.configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(path, e))?;
    let mut c = ChartBuilder::on(&right)
        .caption("validation F1 (average, threshold 0.5)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(1.0..epochs.max(2.0), 0.0..1.0)
        .map_err(|e| err(path, e))?;
    c.configure_mesh().x_desc("epoch").draw().map_err(|e| err(path, e))?;
    let f1: Vec<(f64, f64)> = history.iter().filter_map(|h| h.val_f1.map(|v| (h.epoch as f64, v))).collect();
    c.draw_series(LineSeries::new(f1, &GREEN)).map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}

/// A precision–recall curve (points `(threshold, precision, recall)`).
pub fn pr_curve(path: &Path, points: &[(f64, f64, f64)], title: &str) -> CliResult<()> {
    init_font();
    let root = BitMapBackend::new(path, (500, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(|e| err(path, e))?;
    c.configure_mesh().x_desc("recall").y_desc("precision").draw().map_err(|e| err(path, e))?;
    let line: Vec<(f64, f64)> = std::iter::once((0.0, points.first().map_or(1.0, |p| p.1)))
        .chain(points.iter().map(|&(_, p, r)| (r, p)))
        .collect();
    c.draw_series(LineSeries::new(line, &BLUE)).map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}

/// True (left) vs predicted probability (right) maps, one row per sample.
pub fn maps(path: &Path, samples: &[(String, Array2<u8>, Array2<f32>)]) -> CliResult<()> {
    init_font();
    let cell = 3u32;
    let side = samples.iter().map(|s| s.1.nrows()).max().unwrap_or(1) as u32 * cell;
    let (w, h) = (2 * side + 60, (side + 40) * samples.len().max(1) as u32);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    for (k, (id, truth, probs)) in samples.iter().enumerate() {
        let top = k as u32 * (side + 40);
        let label = format!("{id}: true (left), predicted probability (right)");
        root.draw(&Text::new(label, (10, top as i32 + 5), ("sans-serif", 14))).map_err(|e| err(path, e))?;
        let n = truth.nrows();
        let edge = (n as u32 * cell) as i32;
        for dx in [20i32, 40 + side as i32] {
            let y0 = (top + 25) as i32;
            root.draw(&Rectangle::new(
                [(dx - 1, y0 - 1), (dx + edge + 1, y0 + edge + 1)],
                RGBColor(160, 160, 160),
            ))
            .map_err(|e| err(path, e))?;
        }
        for i in 0..n {
            for j in 0..n {
                let t = if truth[[i, j]] == 1 { 0u8 } else { 255 };
                let p = (255.0 * (1.0 - probs[[i, j]].clamp(0.0, 1.0))) as u8;
                for (dx, color) in [(20u32, RGBColor(t, t, t)), (40 + side, RGBColor(255, p, p))] {
                    let (x0, y0) = ((dx + j as u32 * cell) as i32, (top + 25 + i as u32 * cell) as i32);
                    root.draw(&Rectangle::new(
                        [(x0, y0), (x0 + cell as i32, y0 + cell as i32)],
                        color.filled(),
                    ))
                    .map_err(|e| err(path, e))?;
                }
            }
        }
    }
    root.present().map_err(|e| err(path, e))
}

/// Mean F1 ± sd of each strategy (x) for each post-processing (one series each).
pub fn compare(path: &Path, strategies: &[String], series: &[(String, Vec<(f64, f64)>)]) -> CliResult<()> {
    init_font();
    let root = BitMapBackend::new(path, (900, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let ymax =
        series.iter().flat_map(|s| s.1.iter().map(|(m, sd)| m + sd)).fold(0.0f64, f64::max).clamp(0.05, 1.0);
    let names = strategies.to_vec();
    let mut c = ChartBuilder::on(&root)
        .caption("validation F1 by strategy (mean ± sd over seeds)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..(strategies.len() as f64 - 0.5), 0.0..ymax * 1.1)
        .map_err(|e| err(path, e))?;
    c.configure_mesh()
        .x_labels(strategies.len())
        .x_label_formatter(&|x| {
            let k = x.round();
            if (x - k).abs() < 1e-6 && k >= 0.0 {
                names.get(k as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("F1")
        .draw()
        .map_err(|e| err(path, e))?;
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (s, (name, values)) in series.iter().enumerate() {
        let color = colors[s % colors.len()];
        let offset = (s as f64 - (series.len() as f64 - 1.0) / 2.0) * 0.1;
        let pts: Vec<(f64, f64, f64)> =
            values.iter().enumerate().map(|(k, &(m, sd))| (k as f64 + offset, m, sd)).collect();
        c.draw_series(pts.iter().map(|&(x, m, sd)| {
            ErrorBar::new_vertical(x, (m - sd).max(0.0), m, (m + sd).min(1.0), color.filled(), 6)
        }))
        .map_err(|e| err(path, e))?
        .label(name.clone())
        .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
    }
    c.configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}
