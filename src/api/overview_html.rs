//! Server-side rendering of the overview page: plain HTML with inline SVG sparklines and bar charts, no
//! external assets (works offline), accessible (every chart has a title and a text equivalent).

use std::fmt::Write;

/// One figure on the page with its trend over the last periods.
pub struct Tile {
    pub label: String,
    pub value: String,
    pub level: Option<String>,
    pub note: String,
    /// (period label, value) oldest first; `None` = no data in that period.
    pub series: Vec<(String, Option<f64>)>,
    pub format: fn(f64) -> String,
}

pub struct Section {
    pub title: String,
    pub tiles: Vec<Tile>,
}

pub struct Page {
    pub title: String,
    pub subtitle: String,
    pub teams: Vec<String>,
    pub team: Option<String>,
    pub sections: Vec<Section>,
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A sparkline with a dot per period; gaps where there is no data.
pub fn sparkline(series: &[(String, Option<f64>)], title: &str, format: fn(f64) -> String) -> String {
    let (w, h, pad) = (220.0, 56.0, 6.0);
    let values: Vec<f64> = series.iter().filter_map(|(_, v)| *v).collect();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-labelledby="t-{id}"><title id="t-{id}">{t}</title>"#,
        id = slug(title),
        t = esc(title)
    );
    if values.is_empty() || series.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{x}" y="{y}" class="nodata">no data</text></svg>"#,
            x = w / 2.0 - 24.0,
            y = h / 2.0
        );
        return svg;
    }
    let min = values.iter().cloned().fold(f64::INFINITY, f64::min).min(0.0);
    let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let span = if (max - min).abs() < f64::EPSILON {
        1.0
    } else {
        max - min
    };
    let n = series.len().max(2) as f64 - 1.0;
    let xy = |i: usize, v: f64| {
        (
            pad + (w - 2.0 * pad) * i as f64 / n,
            h - pad - (h - 2.0 * pad) * (v - min) / span,
        )
    };
    let mut path = String::new();
    let mut pen_up = true;
    for (i, (_, v)) in series.iter().enumerate() {
        match v {
            Some(v) => {
                let (x, y) = xy(i, *v);
                let _ = write!(path, "{}{x:.1},{y:.1} ", if pen_up { "M" } else { "L" });
                pen_up = false;
            }
            None => pen_up = true,
        }
    }
    let _ = write!(svg, r#"<path d="{path}" class="line"/>"#);
    for (i, (label, v)) in series.iter().enumerate() {
        if let Some(v) = v {
            let (x, y) = xy(i, *v);
            let _ = write!(
                svg,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" class="dot"><title>{}: {}</title></circle>"#,
                esc(label),
                esc(&format(*v))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

const CSS: &str = r#"
:root { color-scheme: light; --fg:#1d2330; --muted:#5a6375; --line:#2f6fde; --card:#ffffff; --bg:#f3f5f9; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header { padding: 20px 28px 8px; }
h1 { margin:0; font-size: 24px; }
.sub { color: var(--muted); margin: 4px 0 0; }
form { margin: 12px 0 0; }
main { padding: 0 28px 28px; }
h2 { font-size: 18px; margin: 22px 0 10px; }
.grid { display:grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 14px; }
.card { background:var(--card); border-radius: 10px; padding: 14px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.card h3 { margin:0; font-size: 14px; color: var(--muted); font-weight: 600; }
.value { font-size: 26px; font-weight: 700; margin: 4px 0 2px; }
.note { color: var(--muted); font-size: 12.5px; margin: 0 0 6px; min-height: 1.2em; }
.level { display:inline-block; font-size: 12px; font-weight: 700; padding: 1px 8px; border-radius: 10px; margin-left: 6px; vertical-align: middle; }
.level.elite { background:#d6f5e3; color:#0b6b34; } .level.high { background:#e1efff; color:#0b4f9c; }
.level.medium { background:#fff1d1; color:#8a5a00; } .level.low { background:#fde0de; color:#a1231b; }
.spark .line { fill:none; stroke: var(--line); stroke-width: 2; } .spark .dot { fill: var(--line); }
.spark .nodata { fill: var(--muted); font-size: 11px; }
table.trend { border-collapse: collapse; font-size: 12px; margin-top: 6px; width: 100%; }
table.trend td, table.trend th { padding: 1px 4px; text-align: right; color: var(--muted); font-weight: 400; }
.sr { position:absolute; left:-10000px; width:1px; height:1px; overflow:hidden; }
footer { color: var(--muted); padding: 0 28px 24px; font-size: 12.5px; }
"#;

pub fn render(page: &Page) -> String {
    let mut html = String::with_capacity(64 * 1024);
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{}</title><style>{CSS}</style></head><body>"#,
        esc(&page.title)
    );
    let _ = write!(
        html,
        r#"<header><h1>{}</h1><p class="sub">{}</p><form method="get" action="/"><label for="team">Team</label> <select id="team" name="team" onchange="this.form.submit()"><option value="">All teams</option>"#,
        esc(&page.title),
        esc(&page.subtitle)
    );
    for t in &page.teams {
        let sel = if page.team.as_deref() == Some(t.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(html, r#"<option value="{v}"{sel}>{v}</option>"#, v = esc(t));
    }
    html.push_str(r#"</select> <noscript><button type="submit">Show</button></noscript></form></header><main>"#);
    for section in &page.sections {
        let _ = write!(
            html,
            "<section aria-label=\"{t}\"><h2>{t}</h2><div class=\"grid\">",
            t = esc(&section.title)
        );
        for tile in &section.tiles {
            let level = tile
                .level
                .as_ref()
                .map(|l| format!(r#"<span class="level {l}" title="DORA level">{l}</span>"#, l = esc(l)))
                .unwrap_or_default();
            let _ = write!(
                html,
                r#"<article class="card"><h3>{}</h3><div class="value">{}{level}</div><p class="note">{}</p>"#,
                esc(&tile.label),
                esc(&tile.value),
                esc(&tile.note)
            );
            html.push_str(&sparkline(
                &tile.series,
                &format!("{} by period", tile.label),
                tile.format,
            ));
            html.push_str(r#"<table class="trend sr"><tr>"#);
            for (label, _) in &tile.series {
                let _ = write!(html, "<th>{}</th>", esc(label));
            }
            html.push_str("</tr><tr>");
            for (_, v) in &tile.series {
                let _ = write!(
                    html,
                    "<td>{}</td>",
                    v.map(tile.format).unwrap_or_else(|| "no data".into())
                );
            }
            html.push_str("</tr></table></article>");
        }
        html.push_str("</div></section>");
    }
    html.push_str(r#"</main><footer>Definitions: <a href="/api/v1/definitions">/api/v1/definitions</a> · API: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> · Prometheus: <a href="/metrics">/metrics</a></footer></body></html>"#);
    html
}

/// Seconds as the largest sensible unit.
pub fn fmt_duration(secs: f64) -> String {
    let s = secs.abs();
    if s < 90.0 {
        format!("{secs:.0} s")
    } else if s < 5400.0 {
        format!("{:.0} min", secs / 60.0)
    } else if s < 2.0 * 86_400.0 {
        format!("{:.1} h", secs / 3600.0)
    } else {
        format!("{:.1} days", secs / 86_400.0)
    }
}

pub fn fmt_percent(r: f64) -> String {
    format!("{:.1} %", r * 100.0)
}

pub fn fmt_count(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn sparkline_draws_gaps_and_says_no_data() {
        let s = sparkline(
            &[("Q1".into(), Some(1.0)), ("Q2".into(), None), ("Q3".into(), Some(3.0))],
            "x",
            fmt_count,
        );
        assert_eq!(s.matches('M').count(), 2, "a gap starts a new segment: {s}");
        assert!(s.contains("<title>Q3: 3</title>"));
        assert!(sparkline(&[("Q1".into(), None)], "x", fmt_count).contains("no data"));
    }
    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a&\">"), "&lt;a&amp;&quot;&gt;");
    }
}
