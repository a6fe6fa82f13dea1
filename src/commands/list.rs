//! `elmlab list`: what is registered, described by the registry itself.

use anyhow::Result;
use elmlab_core::registry::Registry;
use serde_json::Value;

pub fn run(registry: &Registry, json: bool) -> Result<i32> {
    let described = registry.describe();
    if json {
        println!("{}", serde_json::to_string_pretty(&described)?);
        return Ok(0);
    }
    for (family, title) in [("neurons", "Neuron models"), ("connectivity", "Connectivity patterns"), ("tasks", "Tasks")] {
        println!("{title}:");
        for entry in described[family].as_array().into_iter().flatten() {
            println!("  {}  ({})  {}", entry["name"].as_str().unwrap_or(""), entry["origin"].as_str().unwrap_or(""), entry["doc"].as_str().unwrap_or(""));
            for f in entry["fields"].as_array().into_iter().flatten() {
                let default = match &f["default"] {
                    Value::Null => "None".to_string(),
                    v => v.to_string(),
                };
                println!("      {:<22} {:<34} default {:<12} {}", f["name"].as_str().unwrap_or(""), f["type"].as_str().unwrap_or(""), default, f["doc"].as_str().unwrap_or(""));
            }
        }
        println!();
    }
    Ok(0)
}
