//! `elmlab inspect`: the resolved config and the model's accounting.

use anyhow::Result;
use elmlab_train::config::ResolvedConfig;
use elmlab_core::registry::Registry;
use elmlab_train::trainer::{params_json, Session};
use serde_json::json;
use std::path::Path;

pub fn run(registry: &Registry, config: &Path, overrides: &[String], as_json: bool) -> Result<i32> {
    let resolved = ResolvedConfig::load(config, overrides, registry)?;
    let ron = resolved.to_ron();
    let session = Session::prepare(resolved, registry)?;
    let plan = &session.plan;
    let params = params_json(plan, &session.network);
    if as_json {
        let out = json!({
            "config": session.config.tree,
            "units": plan.units,
            "budget": plan.solved_from_budget,
            "k_e": plan.k_e,
            "k_c": plan.k_c,
            "input_width": plan.input_width,
            "classes": plan.classes,
            "params": params,
            "flops_per_step": plan.flops_per_step,
            "sequence_length": session.task.sequence_length(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    println!("{ron}");
    match plan.solved_from_budget {
        Some(b) => println!("units N = {} (largest that fits the budget of {b})", plan.units),
        None => println!("units N = {}", plan.units),
    }
    println!("k_e = {}   k_c = {}   input width = {}   classes = {}", plan.k_e, plan.k_c, plan.input_width, plan.classes);
    println!("{:<10} {:>8} {:>8} {:>8} {:>12} {:>14}", "layer", "units", "k_e", "k_c", "params", "FLOPs/step");
    for l in params["layers"].as_array().into_iter().flatten() {
        println!("{:<10} {:>8} {:>8} {:>8} {:>12} {:>14}", l["name"].as_str().unwrap_or(""), l["units"].to_string(), l["k_e"].to_string(), l["k_c"].to_string(), l["params"].to_string(), l["flops_per_step"].to_string());
    }
    println!("{:<10} {:>8} {:>8} {:>8} {:>12} {:>14}", "total", "", "", "", params["total"].to_string(), plan.flops_per_step);
    println!("(FLOPs per time step per sequence; parameters counted from the built tensors, equal to the closed form {})", plan.total_params);
    Ok(0)
}
