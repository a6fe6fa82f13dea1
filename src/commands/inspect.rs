//! `elmlab inspect`: the resolved config and the model's accounting, from the closed
//! form (instant at any size); the tensors are also built, as a cross-check of the count,
//! when they fit comfortably.

use anyhow::Result;
use elmlab_core::registry::Registry;
use elmlab_train::config::ResolvedConfig;
use elmlab_train::memory::{bytes, MemoryEstimate};
use elmlab_train::trainer::{params_json, Session};
use serde_json::json;
use std::path::Path;

/// Models whose weights are at most this large are built to cross-check the count.
const CROSS_CHECK_BYTES: u64 = 256 << 20;

pub fn run(registry: &Registry, config: &Path, overrides: &[String], as_json: bool) -> Result<i32> {
    let resolved = ResolvedConfig::load(config, overrides, registry)?;
    let ron = resolved.to_ron();
    let (plan, steps) = Session::plan_with_steps(&resolved, registry)?;
    let train = &resolved.config.train;
    let training = MemoryEstimate::training(&plan, train.batch, steps);
    let evaluation = MemoryEstimate::evaluation(&plan, train.eval_batch);
    // the built tensors' count beside the closed form, when building is cheap
    let built = if (plan.total_params as u64) * 4 <= CROSS_CHECK_BYTES {
        let session = Session::prepare(resolved.clone(), registry)?;
        Some(params_json(&session.plan, Some(&session.network)))
    } else {
        None
    };
    let params = built.clone().unwrap_or_else(|| params_json(&plan, None));
    let limit = elmlab_train::memory::limit();
    if as_json {
        let out = json!({
            "config": resolved.tree,
            "units": plan.units,
            "budget": plan.solved_from_budget,
            "k_e": plan.k_e,
            "k_c": plan.k_c,
            "input_width": plan.input_width,
            "classes": plan.classes,
            "params": params,
            "built": built.is_some(),
            "flops_per_step": plan.flops_per_step,
            "sequence_length": steps,
            "memory": { "training_bytes": training.total(), "evaluation_bytes": evaluation.total(), "available_bytes": limit.map(|l| l.0), "limit": limit.map(|l| l.1) },
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
    match built {
        Some(_) => println!("(FLOPs per time step per sequence; parameters counted from the built tensors, equal to the closed form {})", plan.total_params),
        None => println!("(FLOPs per time step per sequence; parameters from the closed form: at {} of weights the tensors are not built)", bytes(plan.total_params as u64 * 4)),
    }
    println!("memory (estimated): {}", training.describe());
    println!("                    {}", evaluation.describe());
    if let Some((limit, what)) = limit {
        println!("                    limit: {} ({what})", bytes(limit));
    }
    Ok(0)
}

