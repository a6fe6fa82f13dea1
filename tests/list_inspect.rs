//! `list` and `inspect`: the registry describes itself; accounting is exact.

mod common;
use common::*;

fn json(args: &[&str]) -> serde_json::Value {
    let o = elmlab(args);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn list_shows_every_builtin_plugin_with_fields() {
    let v = json(&["list", "--json"]);
    let names = |family: &str| v[family].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert!(names("neurons").contains(&"linear".to_string()));
    assert!(names("connectivity").contains(&"random_fan_in".to_string()) && names("connectivity").contains(&"dense".to_string()));
    assert!(names("tasks").contains(&"delayed_recall".to_string()));
    let linear = v["neurons"].as_array().unwrap().iter().find(|e| e["name"] == "linear").unwrap();
    assert_eq!(linear["origin"], "built in");
    let synapses = linear["fields"].as_array().unwrap().iter().find(|f| f["name"] == "synapses").unwrap();
    assert_eq!(synapses["default"], 300);
    let plain = elmlab(&["list"]);
    assert!(text(&plain).contains("recurrent_share"));
}

#[test]
fn inspect_reports_exact_accounting() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    let v = json(&["inspect", s(&cfg), "--json", "model.units=57"]);
    // linear units: N (k_c + 1); output map: C (N + 1)
    assert_eq!(v["units"], 57);
    assert_eq!((v["k_e"].as_u64(), v["k_c"].as_u64()), (Some(1), Some(12)));
    assert_eq!(v["params"]["total"].as_u64(), Some(57 * 13 + 4 * 58));
    assert_eq!(v["params"]["total"], v["params"]["closed_form"]);
    assert_eq!(v["config"]["model"]["units"], 57);
    // dense wiring fixes k_c = D_in + N (D_in = classes + marker + noise = 9)
    let d = json(&["inspect", s(&cfg), "--json", "model.connectivity.kind=dense"]);
    assert_eq!(d["k_c"].as_u64(), Some(9 + 16));
    assert_eq!(d["params"]["total"].as_u64(), Some(16 * (25 + 1) + 4 * 17));
}

#[test]
fn budget_solves_the_largest_width_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "c.ron", SMALL);
    for budget in [100u64, 1000, 5000] {
        let v = json(&["inspect", s(&cfg), "--json", &format!("model.budget={budget}")]);
        let n = v["units"].as_u64().unwrap();
        assert_eq!(v["budget"].as_u64(), Some(budget));
        let total = v["params"]["total"].as_u64().unwrap();
        let next = json(&["inspect", s(&cfg), "--json", &format!("model.units={}", n + 1)]);
        assert!(total <= budget && next["params"]["total"].as_u64().unwrap() > budget, "budget {budget}: N={n}");
    }
}
