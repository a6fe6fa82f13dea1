//! The report page: one HTML file with everything inline (styles, a small sorting script,
//! SVG figures), so it opens from disk with no server and fetches nothing.

use super::figures::Figure;
use super::runs::{RunInfo, Study};
use serde_json::Value;
use std::fmt::Write;

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn number(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Number(n) => n.as_f64().map(|x| if x.fract() == 0.0 && x.abs() < 1e15 { format!("{x:.0}") } else { format!("{x:.4}") }).unwrap_or_default(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}table{border-collapse:collapse;font-size:14px}\
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#eee;cursor:pointer;user-select:none}td.name{text-align:left;font-family:monospace}\
tr.failed td{background:#fde2e2}tr.unfinished td,tr.missing td{background:#fff6d5}pre{background:#f6f6f6;padding:8px;white-space:pre-wrap;font-size:12px}\
.figure{margin:1em 0}.missing-figure{color:#a00}#errors{color:#a00}#errors:empty{display:none}";

/// Sorts the table by a clicked header (numbers as numbers), and reports any script error
/// on the page itself.
const SCRIPT: &str = r#"
window.addEventListener('error', function (e) { document.getElementById('errors').textContent += 'error: ' + e.message + '\n'; });
(function () {
  var table = document.getElementById('results');
  var headers = table.querySelectorAll('th');
  headers.forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var up = th.dataset.order !== 'up';
      headers.forEach(function (h) { delete h.dataset.order; });
      th.dataset.order = up ? 'up' : 'down';
      rows.sort(function (a, b) {
        var x = a.cells[col].textContent, y = b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return up ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  document.body.dataset.rows = String(table.tBodies[0].rows.length);
})();
"#;

pub fn page(study: &Study, figures: &[Figure], curves: &[(String, Option<String>)]) -> String {
    let mut h = String::new();
    let _ = write!(h, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>elmlab report: {}</title><style>{STYLE}</style></head><body>\n", escape(&study.title));
    let finished = study.runs.iter().filter(|r| r.status == "finished").count();
    let kind = match &study.kind {
        super::runs::Kind::Sweep { manifest } => format!("sweep ({})", escape(&manifest.display().to_string())),
        super::runs::Kind::Compare => "compare".into(),
        super::runs::Kind::Single => "run".into(),
    };
    let _ = write!(h, "<h1>{}</h1><p>{kind}: {} runs, {finished} finished.</p><pre id=\"errors\"></pre>\n", escape(&study.title), study.runs.len());
    table(&mut h, &study.runs);
    unfinished(&mut h, &study.runs);
    if !figures.is_empty() {
        h.push_str("<h2>Figures</h2>\n");
    }
    for f in figures {
        let _ = write!(h, "<div class=\"figure\"><h3>{}</h3>", escape(&f.title));
        match &f.svg {
            Ok(svg) => h.push_str(strip_xml_declaration(svg)),
            Err(why) => {
                let _ = write!(h, "<p class=\"missing-figure\">not drawn: {}</p>", escape(why));
            }
        }
        if let Some(text) = &f.text {
            let _ = write!(h, "<pre>{}</pre>", escape(text));
        }
        h.push_str("</div>\n");
    }
    h.push_str("<h2>Runs</h2>\n");
    for (run, (_, curve)) in study.runs.iter().zip(curves) {
        let _ = write!(h, "<details id=\"run-{}\"><summary><code>{}</code>: {}</summary>", escape(&run.name), escape(&run.name), escape(&run.status));
        let _ = write!(h, "<p>{}</p>", escape(&run.dir.display().to_string()));
        if let Some(svg) = curve {
            h.push_str(strip_xml_declaration(svg));
        }
        if let Some(config) = &run.config {
            let _ = write!(h, "<h4>config</h4><pre>{}</pre>", escape(config));
        }
        h.push_str("</details>\n");
    }
    let _ = write!(h, "<script>{SCRIPT}</script></body></html>\n");
    h
}

fn strip_xml_declaration(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

fn table(h: &mut String, runs: &[RunInfo]) {
    let axes: Vec<String> = {
        let mut a: Vec<String> = runs.iter().flat_map(|r| r.axes.keys().cloned()).collect();
        a.dedup();
        let mut seen = std::collections::BTreeSet::new();
        a.retain(|k| seen.insert(k.clone()));
        a
    };
    let metric = runs.iter().find_map(|r| r.summary.as_ref().and_then(|s| s["best"]["metric"].as_str().map(str::to_string))).unwrap_or_else(|| "metric".into());
    h.push_str("<h2>Results</h2><table id=\"results\"><thead><tr><th>run</th><th>status</th><th>neuron</th>");
    for a in &axes {
        let _ = write!(h, "<th>{}</th>", escape(a));
    }
    let _ = write!(h, "<th>N</th><th>k_e</th><th>k_c</th><th>parameters</th><th>best valid {m}</th><th>test {m}</th><th>steps</th><th>wall s</th></tr></thead><tbody>\n", m = escape(&metric));
    for r in runs {
        let s = r.summary.clone().unwrap_or(Value::Null);
        let _ = write!(h, "<tr class=\"run {}\"><td class=\"name\"><a href=\"#run-{}\">{}</a></td><td>{}</td><td>{}</td>", escape(&r.status), escape(&r.name), escape(&r.name), escape(&r.status), escape(&number(&s["neuron"])));
        for a in &axes {
            let _ = write!(h, "<td>{}</td>", escape(&number(r.axes.get(a).unwrap_or(&Value::Null))));
        }
        let cells = [&s["units"], &s["k_e"], &s["k_c"], &s["params"]["total"], &s["best"]["value"], &s["best"]["test"][metric.as_str()], &s["steps"], &s["wall_time_s"]];
        for c in cells {
            let _ = write!(h, "<td>{}</td>", escape(&number(c)));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table><p>Click a column to sort.</p>\n");
}

fn unfinished(h: &mut String, runs: &[RunInfo]) {
    let open: Vec<&RunInfo> = runs.iter().filter(|r| r.status != "finished").collect();
    if open.is_empty() {
        return;
    }
    h.push_str("<h2>Not finished</h2><ul>\n");
    for r in open {
        let _ = write!(h, "<li><code>{}</code> ({})", escape(&r.name), escape(&r.status));
        if let Some(e) = &r.error {
            let _ = write!(h, ": <pre>{}</pre>", escape(e));
        }
        if let Some(cmd) = &r.resubmit {
            let _ = write!(h, " resubmit with <code>{}</code>", escape(cmd));
        }
        h.push_str("</li>\n");
    }
    h.push_str("</ul>\n");
}
