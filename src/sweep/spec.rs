//! Sweep files: a base experiment config plus axes (lists, linear and log ranges,
//! zipped groups; crossed with each other), seeds, and budget rules. Expanding one
//! gives the runs in a stable order: budgets outermost, then the axes in file order,
//! then seeds.

use anyhow::{bail, ensure, Context, Result};
use elmlab_train::config::Node;
use std::path::{Path, PathBuf};

const KEYS: &[&str] = &["name", "out_dir", "base", "set", "axes", "seeds", "budget"];
const AXIS_KEYS: &[&str] = &["key", "values", "range", "log"];
const BUDGET_KEYS: &[&str] = &["params", "tolerance"];

/// A parsed sweep file.
pub struct SweepSpec {
    pub name: String,
    pub out_dir: PathBuf,
    pub base: Node,
    /// Crossed with each other; each is one axis or several zipped ones.
    pub axes: Vec<AxisGroup>,
    pub seeds: Vec<u64>,
    pub budget: Option<BudgetRule>,
}

/// Axes whose values move together (a plain axis is a group of one).
pub struct AxisGroup {
    pub keys: Vec<String>,
    /// `points[i][k]` is the value of `keys[k]` at the group's i-th point.
    pub points: Vec<Vec<Node>>,
}

/// "Hold the parameter count at P and solve `units`", for every P listed.
pub struct BudgetRule {
    pub params: Vec<usize>,
    /// Allowed relative shortfall of the solved model below P (it never exceeds P).
    pub tolerance: f64,
}

/// One run of the expanded sweep, before its config is resolved.
pub struct PlannedRun {
    /// The axis values that distinguish this run, in axis order (`key`, value).
    pub axes: Vec<(String, Node)>,
    pub budget: Option<usize>,
    pub seed: u64,
    pub tree: Node,
}

fn check_keys(node: &Node, valid: &[&str], what: &str) -> Result<()> {
    let Node::Map(map) = node else { bail!("{what} must be a section `( ... )` with keys {}", valid.join(", ")) };
    if let Some(bad) = map.keys().find(|k| !valid.contains(&k.as_str())) {
        bail!("unknown key `{bad}` in {what}; valid keys: {}", valid.join(", "));
    }
    Ok(())
}

fn number(node: &Node, what: &str) -> Result<f64> {
    match node {
        Node::Int(i) => Ok(*i as f64),
        Node::Float(f) => Ok(*f),
        _ => bail!("{what} must be a number, got {}", node.brief()),
    }
}

fn integer(node: &Node, what: &str) -> Result<i64> {
    match node {
        Node::Int(i) => Ok(*i),
        _ => bail!("{what} must be an integer, got {}", node.brief()),
    }
}

/// The values of one axis: `values: [...]`, `range: (from, to, step)` (inclusive) or
/// `log: (from, to, count)` (geometric; integer ends give distinct rounded integers).
fn axis_values(axis: &Node, key: &str) -> Result<Vec<Node>> {
    let forms: Vec<&str> = ["values", "range", "log"].into_iter().filter(|f| axis.get(f).is_some()).collect();
    ensure!(forms.len() == 1, "axis `{key}` needs exactly one of `values: [...]`, `range: (from:, to:, step:)`, `log: (from:, to:, count:)`; it has {}", if forms.is_empty() { "none".into() } else { forms.join(" and ") });
    let values = match forms[0] {
        "values" => match axis.get("values") {
            Some(Node::List(items)) => items.clone(),
            other => bail!("axis `{key}`: `values` must be a list, got {}", other.map_or("nothing".into(), Node::brief)),
        },
        "range" => {
            let r = axis.get("range").context("range")?;
            check_keys(r, &["from", "to", "step"], &format!("the range of axis `{key}`"))?;
            let field = |f: &str| r.get(f).with_context(|| format!("axis `{key}`: range needs `{f}`"));
            let (from, to, step) = (field("from")?, field("to")?, field("step")?);
            if let (Node::Int(a), Node::Int(b), Node::Int(s)) = (from, to, step) {
                ensure!(*s > 0 && a <= b, "axis `{key}`: range needs from <= to and step > 0 (got from {a}, to {b}, step {s})");
                (*a..=*b).step_by(*s as usize).map(Node::Int).collect()
            } else {
                let (a, b, s) = (number(from, "range.from")?, number(to, "range.to")?, number(step, "range.step")?);
                ensure!(s > 0.0 && a <= b, "axis `{key}`: range needs from <= to and step > 0 (got from {a}, to {b}, step {s})");
                let n = ((b - a) / s + 1e-9).floor() as usize;
                (0..=n).map(|i| Node::Float(a + s * i as f64)).collect()
            }
        }
        _ => {
            let r = axis.get("log").context("log")?;
            check_keys(r, &["from", "to", "count"], &format!("the log range of axis `{key}`"))?;
            let field = |f: &str| r.get(f).with_context(|| format!("axis `{key}`: log range needs `{f}`"));
            let (a, b) = (number(field("from")?, "log.from")?, number(field("to")?, "log.to")?);
            let count = integer(field("count")?, "log.count")?;
            ensure!(a > 0.0 && b >= a && count >= 1, "axis `{key}`: a log range needs 0 < from <= to and count >= 1 (got from {a}, to {b}, count {count})");
            let at = |i: i64| if count == 1 { a } else { a * (b / a).powf(i as f64 / (count - 1) as f64) };
            if matches!((field("from")?, field("to")?), (Node::Int(_), Node::Int(_))) {
                let mut ints: Vec<i64> = (0..count).map(|i| at(i).round() as i64).collect();
                ints.dedup();
                ints.into_iter().map(Node::Int).collect()
            } else {
                (0..count).map(|i| Node::Float(at(i))).collect()
            }
        }
    };
    ensure!(!values.is_empty(), "axis `{key}` has no values");
    Ok(values)
}

fn axis_group(node: &Node) -> Result<AxisGroup> {
    if let Some(zip) = node.get("zip") {
        check_keys(node, &["zip"], "a zipped axis group")?;
        let Node::List(members) = zip else { bail!("`zip` must be a list of axes") };
        ensure!(!members.is_empty(), "`zip` needs at least one axis");
        let mut keys = Vec::new();
        let mut columns = Vec::new();
        for m in members {
            let g = axis_group(m)?;
            ensure!(g.keys.len() == 1, "a zipped group holds plain axes, not other zips");
            keys.push(g.keys[0].clone());
            columns.push(g.points.into_iter().map(|mut p| p.remove(0)).collect::<Vec<_>>());
        }
        let len = columns[0].len();
        if let Some((k, c)) = keys.iter().zip(&columns).find(|(_, c)| c.len() != len) {
            bail!("zipped axes must have equal lengths: `{}` has {len} values, `{k}` has {}", keys[0], c.len());
        }
        let points = (0..len).map(|i| columns.iter().map(|c| c[i].clone()).collect()).collect();
        return Ok(AxisGroup { keys, points });
    }
    check_keys(node, AXIS_KEYS, "an axis")?;
    let key = match node.get("key") {
        Some(Node::Text(k)) => k.clone(),
        _ => bail!("every axis needs `key: \"dotted.config.key\"` (or is a `zip: [...]` group)"),
    };
    let values = axis_values(node, &key)?;
    Ok(AxisGroup { keys: vec![key], points: values.into_iter().map(|v| vec![v]).collect() })
}

impl SweepSpec {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading sweep file {}", path.display()))?;
        let tree = Node::parse_ron(&text, &path.display().to_string())?;
        check_keys(&tree, KEYS, &format!("the sweep file {}", path.display()))?;
        let name = match tree.get("name") {
            Some(Node::Text(s)) => s.clone(),
            None => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "sweep".into()),
            Some(other) => bail!("`name` must be text, got {}", other.brief()),
        };
        let out_dir = match tree.get("out_dir") {
            Some(Node::Text(s)) => PathBuf::from(s),
            None => PathBuf::from("runs/sweeps"),
            Some(other) => bail!("`out_dir` must be text, got {}", other.brief()),
        };
        // The base: a path to an experiment config (relative to the sweep file) or the config inline.
        let base = match tree.get("base") {
            Some(Node::Text(rel)) => {
                let p = path.parent().unwrap_or(Path::new(".")).join(rel);
                let text = std::fs::read_to_string(&p).with_context(|| format!("reading the base config {} named by {}", p.display(), path.display()))?;
                let mut base = Node::parse_ron(&text, &p.display().to_string())?;
                // Runs are stored elsewhere: plugin paths must not depend on where.
                elmlab_train::config::anchor_plugins(&mut base, &p)?;
                base
            }
            Some(node @ Node::Map(_)) => {
                let mut base = node.clone();
                elmlab_train::config::anchor_plugins(&mut base, path)?;
                base
            }
            Some(other) => bail!("`base` must be a path to an experiment config or the config itself, got {}", other.brief()),
            None => bail!("a sweep needs `base`: the experiment config every run starts from"),
        };
        // `set: {"train.steps": 300}`: fixed changes to the base, like command-line overrides.
        let mut base = base;
        match tree.get("set") {
            None => {}
            Some(Node::Map(changes)) => {
                for (key, value) in changes {
                    base.set(&key.split('.').collect::<Vec<_>>(), value.clone());
                }
            }
            Some(other) => bail!("`set` must be a map of dotted keys to values, like {{\"train.steps\": 300}}; got {}", other.brief()),
        }
        let axes = match tree.get("axes") {
            None => Vec::new(),
            Some(Node::List(items)) => items.iter().map(axis_group).collect::<Result<_>>()?,
            Some(other) => bail!("`axes` must be a list, got {}", other.brief()),
        };
        let seeds = match tree.get("seeds") {
            None => vec![0],
            Some(Node::Int(n)) if *n >= 1 => (0..*n as u64).collect(),
            Some(Node::List(items)) => items.iter().map(|n| integer(n, "a seed").and_then(|i| u64::try_from(i).context("seeds are >= 0"))).collect::<Result<_>>()?,
            Some(other) => bail!("`seeds` must be a count (3 → seeds 0, 1, 2) or a list of seeds, got {}", other.brief()),
        };
        ensure!(!seeds.is_empty(), "`seeds` is empty");
        let budget = match tree.get("budget") {
            None => None,
            Some(b) => {
                check_keys(b, BUDGET_KEYS, "`budget`")?;
                let params = match b.get("params") {
                    Some(Node::Int(p)) => vec![*p],
                    Some(Node::List(items)) => items.iter().map(|n| integer(n, "a budget")).collect::<Result<_>>()?,
                    _ => bail!("`budget` needs `params`: a parameter count or a list of them"),
                };
                ensure!(!params.is_empty() && params.iter().all(|&p| p > 0), "`budget.params` must be positive parameter counts");
                let tolerance = b.get("tolerance").map(|t| number(t, "budget.tolerance")).transpose()?.unwrap_or(0.05);
                ensure!((0.0..1.0).contains(&tolerance), "`budget.tolerance` is a fraction in [0, 1), got {tolerance}");
                Some(BudgetRule { params: params.into_iter().map(|p| p as usize).collect(), tolerance })
            }
        };
        Ok(SweepSpec { name, out_dir, base, axes, seeds, budget })
    }

    /// Every run, in the stable manifest order.
    pub fn expand(&self) -> Result<Vec<PlannedRun>> {
        // Cartesian product of the groups, first group outermost.
        let mut combos: Vec<Vec<(String, Node)>> = vec![Vec::new()];
        for g in &self.axes {
            let mut next = Vec::with_capacity(combos.len() * g.points.len());
            for c in &combos {
                for p in &g.points {
                    let mut row = c.clone();
                    row.extend(g.keys.iter().cloned().zip(p.iter().cloned()));
                    next.push(row);
                }
            }
            combos = next;
        }
        let budgets: Vec<Option<usize>> = match &self.budget {
            Some(b) => b.params.iter().map(|&p| Some(p)).collect(),
            None => vec![None],
        };
        let mut runs = Vec::new();
        for &budget in &budgets {
            for combo in &combos {
                for &seed in &self.seeds {
                    let mut tree = self.base.clone();
                    for (key, value) in combo {
                        let path: Vec<&str> = key.split('.').collect();
                        tree.set(&path, value.clone());
                    }
                    if let Some(p) = budget {
                        tree.set(&["model", "budget"], Node::Int(p as i64));
                        tree.set(&["model", "units"], Node::Null);
                    }
                    tree.set(&["seed"], Node::Int(seed as i64));
                    // Every run carries the sweep's name, so equal configs hash equally.
                    tree.set(&["name"], Node::Text(self.name.clone()));
                    runs.push(PlannedRun { axes: combo.clone(), budget, seed, tree });
                }
            }
        }
        Ok(runs)
    }
}
