//! `elmlab report` of a small sweep (two finished runs, one failed, one never started),
//! opened in headless Chromium: the page loads without console errors, its script runs,
//! and the table has one row per run. Where Chromium is not installed the browser part
//! says so and is skipped, unless ELMLAB_BROWSER_TESTS=1 (set by CI), where it fails.

mod common;
use common::*;
use std::path::Path;

fn chromium() -> Option<String> {
    let exe = std::env::var("ELMLAB_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = std::process::Command::new(&exe).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if found {
        return Some(exe);
    }
    assert!(std::env::var("ELMLAB_BROWSER_TESTS").is_err(), "ELMLAB_BROWSER_TESTS is set but `{exe}` does not start");
    eprintln!("skipped the browser checks: no `{exe}` (apt-get install chromium, or set ELMLAB_CHROMIUM)");
    None
}

/// Headless Chromium on `page` with `mode` (`--dump-dom` or `--screenshot=PATH`): its
/// stdout and its console lines. The flags keep it off the network.
fn browse(exe: &str, profile: &Path, page: &Path, mode: &str) -> (String, Vec<String>) {
    let url = format!("file://{}", page.display());
    let o = std::process::Command::new(exe)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0", "--window-size=1200,1800"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(mode)
        .arg(url)
        .output()
        .unwrap();
    assert!(o.status.success(), "chromium: {}", text(&o));
    let console = String::from_utf8_lossy(&o.stderr).lines().filter(|l| l.contains(":CONSOLE")).map(str::to_string).collect();
    (String::from_utf8_lossy(&o.stdout).to_string(), console)
}

#[test]
fn a_sweep_report_lists_every_run_and_loads_cleanly_in_a_browser() {
    let tmp = tempfile::tempdir().unwrap();
    config(tmp.path(), "small.ron", SMALL);
    let file = config(tmp.path(), "four.ron", r#"(name: "four", base: "small.ron", set: {"train.steps": 30}, axes: [(key: "model.units", values: [8, 12, 16, 20])])"#);
    let dir = tmp.path().join("four");
    assert!(elmlab(&["sweep", "plan", s(&file), "--out", s(&dir)]).status.success());
    let manifest = dir.join("manifest.jsonl");
    for i in ["0", "1"] {
        let o = elmlab(&["run-index", s(&manifest), "--index", i]);
        assert!(o.status.success(), "{}", text(&o));
    }
    // run 2 fails (refused for memory); run 3 never starts
    let o = elmlab(&["--max-memory", "1K", "run-index", s(&manifest), "--index", "2"]);
    assert!(!o.status.success());

    let o = elmlab(&["report", s(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    let page_path = dir.join("report.html");
    let page = std::fs::read_to_string(&page_path).unwrap();
    // self-contained: nothing to fetch
    for outside in ["src=", "<link", "url(", "@import"] {
        assert!(!page.contains(outside), "the page refers outside itself ({outside})");
    }
    assert_eq!(page.matches("<tr class=\"run ").count(), 4);
    assert_eq!(page.matches("<tr class=\"run finished\"").count(), 2);
    assert!(page.contains("<tr class=\"run failed\""), "the failed run is marked");
    assert!(page.contains("building the model: the model needs an estimated"), "the failed run's error is shown");
    assert!(page.contains(&format!("elmlab run-index {} --index 2", manifest.display())) && page.contains("--index 3"), "resubmit commands");
    assert!(page.contains("Frontier") && page.matches("<svg").count() >= 3, "figures and learning curves inline");

    let Some(exe) = chromium() else { return };
    let (dom, console) = browse(&exe, &tmp.path().join("profile"), &page_path, "--dump-dom");
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(dom.contains("<body data-rows=\"4\">"), "the page's script did not run to the end: {}", &dom[..dom.len().min(400)]);
    assert!(dom.contains("<pre id=\"errors\"></pre>"), "script errors reported on the page");
    assert_eq!(dom.matches("<tr class=\"run ").count(), 4);
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    let _ = std::fs::remove_file(&shot);
    let (_, console) = browse(&exe, &tmp.path().join("profile2"), &page_path, &format!("--screenshot={}", shot.display()));
    assert!(console.is_empty(), "console messages: {console:#?}");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot {}", shot.display());
}
