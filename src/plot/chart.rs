//! A small line/scatter chart written as SVG: linear or log axes with readable ticks,
//! series with optional error bars, highlighted points with labels, a legend. Text
//! uses the generic `sans-serif` family, so any viewer renders it.

use std::fmt::Write;

const PALETTE: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

#[derive(Clone, Copy, PartialEq)]
pub enum Style {
    Line,
    Points,
    LineAndPoints,
    /// Light grey points behind everything else (e.g. every run under a frontier).
    Background,
}

pub struct Series {
    pub name: String,
    /// (x, y, ± error)
    pub points: Vec<(f64, f64, Option<f64>)>,
    pub style: Style,
}

/// A point drawn as a ring with a label beside it (the optimum, say).
pub struct Mark {
    pub x: f64,
    pub y: f64,
    pub label: String,
}

#[derive(Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    pub series: Vec<Series>,
    pub marks: Vec<Mark>,
    /// Small text under the plot (e.g. the fitted model's parameters).
    pub note: Option<String>,
}

pub const WIDTH: f64 = 720.0;
pub const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 45.0;
const BOTTOM: f64 = 70.0;

struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>, log: bool) -> Axis {
        let vals: Vec<f64> = values.filter(|v| v.is_finite() && (!log || *v > 0.0)).map(|v| if log { v.log10() } else { v }).collect();
        let (mut lo, mut hi) = vals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-12 {
            let pad = if lo.abs() > 1e-12 { lo.abs() * 0.1 } else { 1.0 };
            (lo, hi) = (lo - pad, hi + pad);
        }
        let pad = (hi - lo) * 0.06;
        Axis { lo: lo - pad, hi: hi + pad, log }
    }

    /// Position in [0, 1] along the axis.
    fn frac(&self, v: f64) -> f64 {
        let t = if self.log { v.max(1e-300).log10() } else { v };
        (t - self.lo) / (self.hi - self.lo)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (self.lo.floor() as i32, self.hi.ceil() as i32);
            let decades = (b - a).max(1);
            let mults: &[f64] = if decades <= 2 { &[1.0, 2.0, 5.0] } else { &[1.0] };
            let mut t = Vec::new();
            for e in a..=b {
                for m in mults {
                    let v = m * 10f64.powi(e);
                    if (self.lo..=self.hi).contains(&v.log10()) {
                        t.push(v);
                    }
                }
            }
            t
        } else {
            let raw = (self.hi - self.lo) / 6.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
            let mut v = (self.lo / step).ceil() * step;
            let mut t = Vec::new();
            while v <= self.hi + 1e-12 {
                t.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
                v += step;
            }
            t
        }
    }
}

/// Short, readable tick text: 1e4 → "10k", 0.25 → "0.25".
pub fn tick_text(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Chart {
    pub fn to_svg(&self) -> String {
        let all = || self.series.iter().flat_map(|s| s.points.iter()).copied();
        let xs = Axis::new(all().map(|p| p.0).chain(self.marks.iter().map(|m| m.x)), self.x_log);
        let ys = Axis::new(all().flat_map(|(_, y, e)| [y - e.unwrap_or(0.0), y + e.unwrap_or(0.0)]).chain(self.marks.iter().map(|m| m.y)), self.y_log);
        let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let px = |x: f64| LEFT + pw * xs.frac(x);
        let py = |y: f64| TOP + ph * (1.0 - ys.frac(y));
        let mut s = String::new();
        let _ = writeln!(s, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#);
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(s, r#"<text x="{}" y="25" text-anchor="middle" font-size="15">{}</text>"#, LEFT + pw / 2.0, esc(&self.title));
        // grid and ticks
        for t in xs.ticks() {
            let x = px(t);
            let _ = writeln!(s, r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#e5e5e5"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##, TOP + ph, TOP + ph + 18.0, tick_text(t));
        }
        for t in ys.ticks() {
            let y = py(t);
            let _ = writeln!(s, r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##, LEFT + pw, LEFT - 6.0, y + 4.0, tick_text(t));
        }
        let _ = writeln!(s, r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#);
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#, LEFT + pw / 2.0, TOP + ph + 40.0, esc(&self.x_label));
        let _ = writeln!(s, r#"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#, TOP + ph / 2.0, esc(&self.y_label));
        let mut legend = 0;
        let mut color_index = 0;
        for series in &self.series {
            let color = if series.style == Style::Background {
                "#b0b0b0"
            } else {
                color_index += 1;
                PALETTE[(color_index - 1) % PALETTE.len()]
            };
            let pts: Vec<(f64, f64, Option<f64>)> = series.points.iter().copied().filter(|(x, y, _)| x.is_finite() && y.is_finite()).collect();
            if matches!(series.style, Style::Line | Style::LineAndPoints) && pts.len() > 1 {
                let path: Vec<String> = pts.iter().map(|(x, y, _)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
                let _ = writeln!(s, r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#, path.join(" "));
            }
            for (x, y, e) in &pts {
                if let Some(e) = e.filter(|e| *e > 0.0) {
                    let (y1, y2) = (py(y + e), py(if self.y_log { (y - e).max(y * 1e-3) } else { y - e }));
                    let _ = writeln!(s, r#"<line x1="{0:.1}" y1="{y1:.1}" x2="{0:.1}" y2="{y2:.1}" stroke="{color}"/><line x1="{1:.1}" y1="{y1:.1}" x2="{2:.1}" y2="{y1:.1}" stroke="{color}"/><line x1="{1:.1}" y1="{y2:.1}" x2="{2:.1}" y2="{y2:.1}" stroke="{color}"/>"#, px(*x), px(*x) - 4.0, px(*x) + 4.0);
                }
                if series.style != Style::Line {
                    let r = if series.style == Style::Background { 3.0 } else { 4.0 };
                    let _ = writeln!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="{r}" fill="{color}"/>"#, px(*x), py(*y));
                }
            }
            if !series.name.is_empty() {
                let ly = TOP + 10.0 + 20.0 * legend as f64;
                let lx = LEFT + pw + 15.0;
                let _ = writeln!(s, r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#, lx + 22.0, lx + 28.0, ly + 4.0, esc(&series.name));
                legend += 1;
            }
        }
        for m in &self.marks {
            let (x, y) = (px(m.x), py(m.y));
            // Labels of points in the right half go to their left, clear of the legend.
            let (lx, anchor) = if x > LEFT + 0.6 * pw { (x - 11.0, "end") } else { (x + 11.0, "start") };
            let _ = writeln!(s, r#"<circle cx="{x:.1}" cy="{y:.1}" r="9" fill="none" stroke="black" stroke-width="2"/><text x="{lx:.1}" y="{:.1}" font-size="11" text-anchor="{anchor}">{}</text>"#, y - 11.0, esc(&m.label));
        }
        if let Some(note) = &self.note {
            for (i, line) in note.lines().enumerate() {
                let _ = writeln!(s, r#"<text x="{}" y="{:.1}" font-size="10">{}</text>"#, LEFT + pw + 15.0, TOP + ph - 12.0 * (note.lines().count() - 1 - i) as f64, esc(line));
            }
        }
        s + "</svg>\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let a = Axis::new([0.13, 0.87].into_iter(), false);
        let t = a.ticks();
        assert!(t.len() >= 3 && t.iter().all(|v| (v * 10.0 - (v * 10.0).round()).abs() < 1e-9), "{t:?}");
        let l = Axis::new([3e3, 4e6].into_iter(), true);
        assert_eq!(l.ticks(), vec![1e4, 1e5, 1e6]);
        assert_eq!(tick_text(25_000.0), "25k");
        assert_eq!(tick_text(0.5), "0.5");
        assert_eq!(tick_text(3_280_000.0), "3.28M");
    }

    #[test]
    fn points_land_inside_the_plot_area() {
        let chart = Chart { series: vec![Series { name: "a".into(), points: vec![(1.0, 2.0, None), (3.0, 5.0, Some(0.5))], style: Style::LineAndPoints }], ..Default::default() };
        let svg = chart.to_svg();
        for c in svg.split("<circle").skip(1) {
            let cx: f64 = c.split("cx=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
            let cy: f64 = c.split("cy=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
            assert!(cx > LEFT && cx < WIDTH - RIGHT && cy > TOP && cy < HEIGHT - BOTTOM, "({cx}, {cy})");
        }
    }
}
