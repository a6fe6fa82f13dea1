//! Checkpoints: weights and optimiser moments as safetensors (the config and step in
//! the weights' metadata), the trainer's position as JSON beside them.

use crate::error::{CheckpointError, CheckpointProblem as P, RunError};
use crate::optim::Optimizer;
use crate::rundir::RunDir;
use elmlab_core::dfdx::prelude::HasShape;
use elmlab_core::fs::write_atomic;
use elmlab_core::params::{BufferValues, ParamStore};
use elmlab_core::tensor::{device, matrix};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const WEIGHTS: &str = "weights.safetensors";
pub const OPTIMIZER: &str = "optimizer.safetensors";
pub const TRAINER: &str = "trainer.json";
/// The recurrent state carried between training batches (only for tasks that carry it).
pub const CARRIED: &str = "carried_state.safetensors";

/// Named tensors (f32 values or i64 indices) with their shapes.
pub type NamedTensors = Vec<(String, Vec<usize>, BufferValues)>;

pub fn save_tensors(path: &Path, tensors: &NamedTensors, metadata: HashMap<String, String>) -> Result<(), RunError> {
    let bytes: Vec<(Dtype, Vec<u8>)> = tensors
        .iter()
        .map(|(_, _, v)| match v {
            BufferValues::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            BufferValues::I64(v) => (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        })
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), (dtype, b))| TensorView::new(*dtype, shape.clone(), b).map(|v| (name.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, P::Encoding(format!("{e:?}"))))?;
    let mut metadata = metadata;
    let digest = crate::integrity::content_digest(views.iter().map(|(n, v)| (n.as_str(), format!("{:?}", v.dtype()), v.shape(), v.data())), &metadata);
    metadata.insert(crate::integrity::CONTENT_SHA256.to_string(), digest);
    let data = safetensors::tensor::serialize(views, &Some(metadata)).map_err(|e| bad(path, P::Encoding(format!("{e:?}"))))?;
    Ok(write_atomic(path, &data)?)
}

fn bad(path: &Path, problem: P) -> RunError {
    RunError::Checkpoint(CheckpointError { path: path.to_path_buf(), problem })
}

pub fn load_tensors(path: &Path) -> Result<(NamedTensors, HashMap<String, String>), RunError> {
    let data = std::fs::read(path).map_err(|e| RunError::io(format!("reading {}", path.display()), e))?;
    parse_tensors(&data, path)
}

/// The tensors and metadata of a safetensors file's bytes, its checksum checked if it
/// has one; `path` names it in errors.
pub fn parse_tensors(data: &[u8], path: &Path) -> Result<(NamedTensors, HashMap<String, String>), RunError> {
    let unreadable = |e: safetensors::SafeTensorError| bad(path, P::Unreadable(format!("{e:?}")));
    let (_, meta) = SafeTensors::read_metadata(data).map_err(unreadable)?;
    let st = SafeTensors::deserialize(data).map_err(unreadable)?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    crate::integrity::verify_content(path, &st, &metadata)?;
    let mut out = Vec::new();
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    for name in names {
        let view = st.tensor(&name).map_err(unreadable)?;
        let values = match view.dtype() {
            Dtype::F32 => BufferValues::F32(view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
            Dtype::I64 => BufferValues::I64(view.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()),
            other => return Err(bad(path, P::Dtype { tensor: name, dtype: format!("{other:?}") })),
        };
        out.push((name, view.shape().to_vec(), values));
    }
    Ok((out, metadata))
}

/// The parameters, then the fixed buffers.
pub fn store_tensors(store: &ParamStore) -> NamedTensors {
    let params = store.iter().map(|p| (p.name.clone(), p.shape.clone(), BufferValues::F32(p.value.as_vec())));
    params.chain(store.buffers().iter().map(|b| (b.name.clone(), b.shape.clone(), b.values.clone()))).collect()
}

/// Loads weights into a store built from the same config; every parameter must be
/// present with its shape, and nothing else may be. Fixed buffers (connectome,
/// timescales) may be absent, but if present must equal the model's.
pub fn load_weights(path: &Path, store: &mut ParamStore) -> Result<HashMap<String, String>, RunError> {
    let (tensors, meta) = load_tensors(path)?;
    let mut seen = 0;
    for (name, shape, values) in tensors {
        if let Some(buffer) = store.buffer(&name) {
            if buffer.shape != shape || buffer.values != values {
                return Err(bad(path, P::FixedDiffers { tensor: name }));
            }
            continue;
        }
        let BufferValues::F32(values) = values else {
            return Err(bad(path, P::Integers { tensor: name }));
        };
        if !store.contains(&name) {
            return Err(bad(path, P::Unexpected { tensor: name, have: format!("{:?}", store.names()) }));
        }
        let want = &store.get(&name).shape;
        if &shape != want {
            return Err(bad(path, P::Shape { tensor: name, got: shape, want: want.clone() }));
        }
        let expected = values.len();
        store.load_values(&name, values).map_err(|_| bad(path, P::Size { tensor: name.clone(), got: expected, expected: store.get(&name).numel() }))?;
        seen += 1;
    }
    if seen != store.len() {
        return Err(bad(path, P::Incomplete { seen, total: store.len() }));
    }
    Ok(meta)
}

pub fn save_weights(path: &Path, store: &ParamStore, config_ron: &str, step: u64) -> Result<(), RunError> {
    let meta = HashMap::from([
        ("config".to_string(), config_ron.to_string()),
        ("step".to_string(), step.to_string()),
        ("format".to_string(), "elmlab-weights-1".to_string()),
    ]);
    save_tensors(path, &store_tensors(store), meta)
}

pub fn save_optimizer(path: &Path, opt: &Optimizer, store: &ParamStore) -> Result<(), RunError> {
    let mut tensors = Vec::new();
    for (i, p) in store.iter().enumerate() {
        let (m, v) = opt.moments(i);
        tensors.push((format!("m.{}", p.name), p.shape.clone(), BufferValues::F32(m)));
        tensors.push((format!("v.{}", p.name), p.shape.clone(), BufferValues::F32(v)));
    }
    save_tensors(path, &tensors, HashMap::from([("updates".to_string(), opt.updates.to_string())]))
}

pub fn load_optimizer(path: &Path, opt: &mut Optimizer, store: &ParamStore) -> Result<(), RunError> {
    let (tensors, meta) = load_tensors(path)?;
    let by_name: HashMap<&str, &Vec<f32>> = tensors
        .iter()
        .filter_map(|(n, _, v)| match v {
            BufferValues::F32(v) => Some((n.as_str(), v)),
            BufferValues::I64(_) => None,
        })
        .collect();
    for (i, p) in store.iter().enumerate() {
        let mut moments = Vec::with_capacity(2);
        for prefix in ["m.", "v."] {
            let key = format!("{prefix}{}", p.name);
            let values = by_name.get(key.as_str()).ok_or_else(|| bad(path, P::Missing { tensor: key.clone() }))?;
            if values.len() != p.numel() {
                return Err(bad(path, P::Size { tensor: key, got: values.len(), expected: p.numel() }));
            }
            moments.push(*values);
        }
        opt.set_moments(i, moments[0], moments[1]);
    }
    opt.updates = meta.get("updates").and_then(|u| u.parse().ok()).ok_or_else(|| bad(path, P::NoUpdateCount))?;
    Ok(())
}

/// Saves the carried state: tensor `layer<l>.<j>` is layer `l`'s state matrix `j`.
pub fn save_carried(path: &Path, state: &crate::network::NetworkState) -> Result<(), RunError> {
    let mut tensors = Vec::new();
    for (l, layer) in state.iter().enumerate() {
        for (j, m) in layer.iter().enumerate() {
            let (rows, cols) = *m.shape();
            tensors.push((format!("layer{l}.{j:03}"), vec![rows, cols], BufferValues::F32(m.as_vec())));
        }
    }
    save_tensors(path, &tensors, HashMap::new())
}

/// Loads a carried state saved by [`save_carried`], if the checkpoint has one.
pub fn load_carried(path: &Path) -> Result<Option<crate::network::NetworkState>, RunError> {
    if !path.is_file() {
        return Ok(None);
    }
    let (tensors, _) = load_tensors(path)?;
    let dev = device();
    let mut state: crate::network::NetworkState = Vec::new();
    for (name, shape, values) in tensors {
        let (Some(l), BufferValues::F32(values), &[rows, cols]) = (name.strip_prefix("layer").and_then(|r| r.split('.').next()).and_then(|l| l.parse::<usize>().ok()), values, shape.as_slice()) else {
            return Err(bad(path, P::Unexpected { tensor: name, have: "layer<l>.<j> state matrices".into() }));
        };
        while state.len() <= l {
            state.push(Vec::new());
        }
        state[l].push(matrix(&dev, values, rows, cols));
    }
    Ok(Some(state))
}

/// Writes a complete checkpoint for `step` (weights, optimiser, trainer state, the
/// carried state if any, then the manifest of their checksums), renames it into place,
/// points `latest` at it, then removes all but the newest `keep`. A crash or a failed
/// write at any point leaves the previous checkpoints as they were.
pub fn write_checkpoint(run: &RunDir, step: u64, contents: &CheckpointContents, keep: usize) -> Result<PathBuf, RunError> {
    let root = run.checkpoints_dir();
    let name = format!("step-{step:09}");
    let dir = root.join(&name);
    let tmp = root.join(format!(".{name}.partial"));
    let _ = std::fs::remove_dir_all(&tmp);
    let written = (|| -> Result<(), RunError> {
        std::fs::create_dir_all(&tmp).map_err(|e| RunError::io(format!("creating {}", tmp.display()), e))?;
        save_weights(&tmp.join(WEIGHTS), contents.store, contents.config_ron, step)?;
        save_optimizer(&tmp.join(OPTIMIZER), contents.optimizer, contents.store)?;
        let state = serde_json::to_vec_pretty(contents.trainer_state).map_err(|e| bad(&tmp.join(TRAINER), P::TrainerState(e.to_string())))?;
        write_atomic(&tmp.join(TRAINER), &state)?;
        if let Some(c) = contents.carried {
            save_carried(&tmp.join(CARRIED), c)?;
        }
        crate::integrity::write_manifest(&tmp)
    })();
    if let Err(e) = written {
        // nothing half-written stays behind; the earlier checkpoints are untouched
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| RunError::io(format!("renaming {} to {}", tmp.display(), dir.display()), e))?;
    write_atomic(&root.join("latest"), name.as_bytes())?;
    for (_, old) in run.checkpoints().into_iter().skip(keep.max(1)) {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(dir)
}

/// What a checkpoint holds.
pub struct CheckpointContents<'a> {
    pub store: &'a ParamStore,
    pub optimizer: &'a Optimizer,
    pub trainer_state: &'a serde_json::Value,
    pub config_ron: &'a str,
    pub carried: Option<&'a crate::network::NetworkState>,
}
