//! SVG plots drawn with plotters' SVG backend (no font files needed: text stays SVG text).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::error::Error;

/// A categorical palette (colour-blind friendly ordering) for segments.
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(crate) fn segment_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub(crate) fn segment_hex(i: usize) -> String {
    let c = segment_color(i);
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// `n` category slots: plotters' integer ranges include their end, so `0..n` would be n + 1.
fn slots(n: usize) -> std::ops::Range<i32> {
    0..(n as i32 - 1).max(0)
}

type DrawResult = Result<(), Box<dyn Error>>;

fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult,
) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn range_with_margin(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-9);
    (lo - pad, hi + pad)
}

/// A line plot over k with the chosen k highlighted.
pub(crate) fn line_over_k(
    title: &str,
    y_desc: &str,
    points: &[(usize, f64)],
    chosen: usize,
) -> Result<String, String> {
    svg((560, 320), |root| {
        let (ylo, yhi) = range_with_margin(points.iter().map(|p| p.1));
        let (kmin, kmax) = (
            points.first().map_or(1, |p| p.0),
            points.last().map_or(2, |p| p.0),
        );
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(kmin as f64 - 0.5..kmax as f64 + 0.5, ylo..yhi)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 13))
            .x_desc("k (number of segments)")
            .y_desc(y_desc)
            .x_labels(points.len())
            .x_label_formatter(&|x| format!("{x:.0}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        let series: Vec<(f64, f64)> = points.iter().map(|&(k, v)| (k as f64, v)).collect();
        chart.draw_series(LineSeries::new(series.clone(), PALETTE[0].stroke_width(2)))?;
        chart.draw_series(
            series
                .iter()
                .map(|&p| Circle::new(p, 4, PALETTE[0].filled())),
        )?;
        chart.draw_series(
            series
                .iter()
                .filter(|p| p.0 as usize == chosen)
                .map(|&p| Circle::new(p, 8, PALETTE[3].stroke_width(3))),
        )?;
        Ok(())
    })
}

/// Scatter of the 2-D projection coloured by segment.
pub(crate) fn scatter(
    points: &[[f64; 2]],
    labels: &[u32],
    names: &[String],
    explained: [f64; 2],
) -> Result<String, String> {
    svg((720, 480), |root| {
        let (xlo, xhi) = range_with_margin(points.iter().map(|p| p[0]));
        let (ylo, yhi) = range_with_margin(points.iter().map(|p| p[1]));
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Customers in the first two principal components",
                ("sans-serif", 17),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(xlo..xhi, ylo..yhi)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 13))
            .x_desc(format!("PC1 ({:.0}% of variance)", explained[0] * 100.0))
            .y_desc(format!("PC2 ({:.0}% of variance)", explained[1] * 100.0))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (s, name) in names.iter().enumerate() {
            let color = segment_color(s);
            chart
                .draw_series(
                    points
                        .iter()
                        .zip(labels)
                        .filter(|(_, l)| **l as usize == s)
                        .map(|(p, _)| Circle::new((p[0], p[1]), 2, color.mix(0.55).filled())),
                )?
                .label(name.clone())
                .legend(move |(x, y)| Circle::new((x + 6, y), 5, color.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        Ok(())
    })
}

fn diverging(z: f64) -> RGBColor {
    let t = (z / 2.0).clamp(-1.0, 1.0);
    let mix =
        |a: u8, b: u8, t: f64| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    if t >= 0.0 {
        RGBColor(mix(247, 214, t), mix(247, 39, t), mix(247, 40, t))
    } else {
        RGBColor(mix(247, 31, -t), mix(247, 119, -t), mix(247, 180, -t))
    }
}

fn sequential(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    RGBColor(mix(240, 8), mix(246, 69), mix(252, 148))
}

/// A labelled grid of coloured cells with a value written in each.
pub(crate) struct Grid<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub columns: &'a [String],
    pub rows: &'a [String],
    /// `values[row][column]`
    pub values: &'a [Vec<f64>],
    pub labels: &'a [Vec<String>],
    pub diverging: bool,
}

pub(crate) fn grid(g: &Grid<'_>) -> Result<String, String> {
    let (nc, nr) = (g.columns.len(), g.rows.len());
    let height = (110 + 46 * nr as u32).min(900);
    let max = g
        .values
        .iter()
        .flatten()
        .fold(0.0_f64, |m, v| m.max(v.abs()))
        .max(1e-12);
    svg((760, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(g.title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(170)
            .build_cartesian_2d(slots(nc).into_segmented(), slots(nr).into_segmented())?;
        let name = |names: &[String], v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .label_style(("sans-serif", 13))
            .disable_mesh()
            .x_desc(g.x_desc)
            .y_desc(g.y_desc)
            .x_labels(nc)
            .y_labels(nr)
            .x_label_formatter(&|v| name(g.columns, v))
            .y_label_formatter(&|v| name(g.rows, v))
            .draw()?;
        let text = ("sans-serif", 13)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Center));
        for (r, row) in g.values.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                let color = if g.diverging {
                    diverging(v)
                } else {
                    sequential(v / max)
                };
                let (c0, r0) = (c as i32, r as i32);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(c0), SegmentValue::Exact(r0)),
                        (SegmentValue::Exact(c0 + 1), SegmentValue::Exact(r0 + 1)),
                    ],
                    color.filled(),
                )))?;
                let label = g
                    .labels
                    .get(r)
                    .and_then(|l| l.get(c))
                    .cloned()
                    .unwrap_or_default();
                chart.draw_series(std::iter::once(Text::new(
                    label,
                    (SegmentValue::CenterOf(c0), SegmentValue::CenterOf(r0)),
                    text.clone(),
                )))?;
            }
        }
        Ok(())
    })
}

/// Horizontal bars of segment sizes.
pub(crate) fn sizes(names: &[String], sizes: &[usize]) -> Result<String, String> {
    let values: Vec<f64> = sizes.iter().map(|&s| s as f64).collect();
    let labels: Vec<String> = sizes.iter().map(|s| format!(" {s}")).collect();
    let max = values.iter().copied().fold(1.0, f64::max) * 1.15;
    bars(
        "Customers per segment",
        "customers",
        names,
        &values,
        &labels,
        max,
        None,
    )
}

/// Horizontal bars, one per segment in its colour, top to bottom in segment order, each
/// with a label at its end; `mark` draws a dashed vertical reference line.
pub(crate) fn bars(
    title: &str,
    x_desc: &str,
    names: &[String],
    values: &[f64],
    labels: &[String],
    max: f64,
    mark: Option<f64>,
) -> Result<String, String> {
    let n = names.len();
    svg((720, (90 + 40 * n as u32).min(900)), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(190)
            .build_cartesian_2d(0.0..max.max(1e-12), slots(n).into_segmented())?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 13))
            .disable_y_mesh()
            .light_line_style(WHITE.mix(0.0))
            .x_desc(x_desc)
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                // Rows run bottom-up; the first segment goes on top, as in the table.
                SegmentValue::CenterOf(row) => usize::try_from(*row)
                    .ok()
                    .and_then(|r| n.saturating_sub(1).checked_sub(r))
                    .and_then(|r| names.get(r).cloned())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .draw()?;
        for (segment, &v) in values.iter().enumerate() {
            let i = n.saturating_sub(segment + 1) as i32;
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (v, SegmentValue::Exact(i + 1)),
                ],
                segment_color(segment).filled(),
            );
            bar.set_margin(6, 6, 0, 0);
            chart.draw_series(std::iter::once(bar))?;
            chart.draw_series(std::iter::once(Text::new(
                labels.get(segment).cloned().unwrap_or_default(),
                (v, SegmentValue::CenterOf(i)),
                ("sans-serif", 13)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            )))?;
        }
        if let Some(x) = mark {
            chart.draw_series(DashedLineSeries::new(
                [
                    (x, SegmentValue::Exact(0)),
                    (x, SegmentValue::Exact(n as i32)),
                ],
                6,
                4,
                BLACK.mix(0.6).stroke_width(1),
            ))?;
        }
        Ok(())
    })
}

/// The top of a dendrogram: the last `leaves − 1` merges drawn as joins at their heights
/// (leaves are the clusters alive below them, labelled with their sizes), with the cut that
/// gives `chosen` clusters as a dashed line.
pub(crate) fn dendrogram(
    tree: &strata_ml::Dendrogram,
    chosen: usize,
    leaves: usize,
) -> Result<String, String> {
    let n = tree.n;
    let p = leaves.clamp(2, n.max(2));
    let first_kept = n.saturating_sub(p); // merges before this are inside leaves
    let size_of = |id: usize| {
        if id < n {
            1
        } else {
            tree.merges.get(id - n).map_or(1, |m| m.size)
        }
    };
    // Lay out leaves left to right by walking from the root, left child first.
    let mut leaf_labels: Vec<(f64, usize)> = Vec::new();
    let mut joins: Vec<[(f64, f64); 4]> = Vec::new();
    if n >= 2 && tree.merges.len() == n - 1 {
        let root = 2 * n - 2;
        // Iterative post-order: (id, children done?).
        let mut stack = vec![(root, false)];
        let mut pos: std::collections::HashMap<usize, (f64, f64)> = Default::default();
        let mut next_x = 0.0;
        while let Some((id, done)) = stack.pop() {
            let is_leaf = id < n + first_kept;
            if is_leaf {
                pos.insert(id, (next_x, 0.0));
                leaf_labels.push((next_x, size_of(id)));
                next_x += 1.0;
                continue;
            }
            let m = tree.merges[id - n];
            if !done {
                stack.push((id, true));
                stack.push((m.b, false));
                stack.push((m.a, false));
            } else {
                let (a, b) = (pos[&m.a], pos[&m.b]);
                let x = (a.0 + b.0) / 2.0;
                pos.insert(id, (x, m.height));
                joins.push([(a.0, a.1), (a.0, m.height), (b.0, m.height), (b.0, b.1)]);
            }
        }
    }
    let top = tree.merges.last().map_or(1.0, |m| m.height).max(1e-12) * 1.05;
    let cut = (chosen >= 2 && chosen <= n).then(|| {
        // Between the merge that would leave chosen − 1 clusters and the one before it.
        let upper = tree.merges[n - chosen].height;
        let lower = if n - chosen >= 1 {
            tree.merges[n - chosen - 1].height
        } else {
            0.0
        };
        (upper + lower) / 2.0
    });
    let width = leaf_labels.len().max(1) as f64;
    svg((760, 380), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "Dendrogram ({:?} linkage): the last {} merges",
                    tree.linkage,
                    leaf_labels.len().saturating_sub(1)
                ),
                ("sans-serif", 17),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5..width - 0.5, 0.0..top)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 12))
            .disable_x_mesh()
            .x_labels(0)
            .x_desc("clusters below the shown merges (customers in each)")
            .y_desc("merge height")
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for j in &joins {
            chart.draw_series(LineSeries::new(j.to_vec(), PALETTE[0].stroke_width(2)))?;
        }
        chart.draw_series(leaf_labels.iter().map(|&(x, size)| {
            Text::new(
                size.to_string(),
                (x, 0.0),
                ("sans-serif", 11)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            )
        }))?;
        if let Some(h) = cut {
            chart
                .draw_series(DashedLineSeries::new(
                    [(-0.5, h), (width - 0.5, h)],
                    6,
                    4,
                    PALETTE[3].stroke_width(2),
                ))?
                .label(format!("cut into k = {chosen}"))
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], PALETTE[3]));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(("sans-serif", 13))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .draw()?;
        }
        Ok(())
    })
}

/// DBSCAN's sorted k-distance curve with the eps used.
pub(crate) fn k_distance(curve: &strata_ml::KDistance, eps: f64) -> Result<String, String> {
    // At most ~600 points: the curve is smooth, and the SVG stays small.
    let step = curve.distances.len().div_ceil(600).max(1);
    let points: Vec<(f64, f64)> = curve
        .distances
        .iter()
        .enumerate()
        .step_by(step)
        .map(|(i, &d)| (i as f64, d))
        .collect();
    let title = format!("k-distance curve (k = {}): eps = {eps:.3}", curve.k);
    lines_with_level(
        &title,
        ("customers, by distance to their k-th neighbour", "distance"),
        &[("k-th neighbour distance", points)],
        Some(("eps", eps)),
    )
}

/// Lines of (x, y) points, each named in a legend, optionally with the y = x diagonal.
pub(crate) fn lines(
    title: &str,
    axes: (&str, &str),
    series: &[(&str, Vec<(f64, f64)>)],
    diagonal: bool,
) -> Result<String, String> {
    draw_lines(title, axes, series, diagonal, None)
}

/// Lines with a named horizontal reference level.
pub(crate) fn lines_with_level(
    title: &str,
    axes: (&str, &str),
    series: &[(&str, Vec<(f64, f64)>)],
    level: Option<(&str, f64)>,
) -> Result<String, String> {
    draw_lines(title, axes, series, false, level)
}

fn draw_lines(
    title: &str,
    (x_desc, y_desc): (&str, &str),
    series: &[(&str, Vec<(f64, f64)>)],
    diagonal: bool,
    level: Option<(&str, f64)>,
) -> Result<String, String> {
    svg((560, 360), |root| {
        let all = || series.iter().flat_map(|s| s.1.iter());
        let (mut xlo, mut xhi) = range_with_margin(all().map(|p| p.0));
        let (mut ylo, mut yhi) = range_with_margin(all().map(|p| p.1).chain(level.map(|l| l.1)));
        if diagonal {
            (xlo, xhi) = (xlo.min(0.0), xhi.max(1.0));
            (ylo, yhi) = (ylo.min(0.0), yhi.max(1.0));
        }
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(xlo..xhi, ylo..yhi)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 13))
            .x_desc(x_desc)
            .y_desc(y_desc)
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        if diagonal {
            chart
                .draw_series(LineSeries::new(
                    [(0.0, 0.0), (1.0, 1.0)],
                    BLACK.mix(0.35).stroke_width(1),
                ))?
                .label("perfect")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.35)));
        }
        if let Some((name, y)) = level {
            chart
                .draw_series(DashedLineSeries::new(
                    [(xlo, y), (xhi, y)],
                    6,
                    4,
                    PALETTE[3].stroke_width(2),
                ))?
                .label(format!("{name} = {y:.3}"))
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], PALETTE[3]));
        }
        for (i, (name, points)) in series.iter().enumerate() {
            let color = segment_color(i);
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .draw()?;
        Ok(())
    })
}
