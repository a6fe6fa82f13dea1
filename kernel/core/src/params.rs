//! The parameter store: named tensors on the device, in a fixed order. Runtime-shaped
//! dfdx models have no `TensorCollection`, so saving, updating and counting go through here.

use crate::error::ParamError;
use crate::tensor::{device, matrix, trace, Dev, Matrix, Traced};
use dfdx::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// One trainable tensor. Stored as a matrix `[product of leading axes, last axis]`;
/// `shape` is the shape users see (a bias `[n]`, a weight `[out, in]`, per-neuron
/// weights `[N, out, in]`).
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub value: Matrix,
}

impl Param {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Values of a fixed (not trained, not counted) tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum BufferValues {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A fixed tensor that belongs to the model and travels with its weights (a connectome,
/// timescales), so that other frameworks can rebuild the exact model.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: BufferValues,
}

#[derive(Clone, Debug, Default)]
pub struct ParamStore {
    params: Vec<Param>,
    index: HashMap<String, usize>,
    buffers: Vec<Buffer>,
    /// Fixed tensors given from outside (a weights file), taken where a layer asks for one.
    given: HashMap<String, (Vec<usize>, BufferValues)>,
}

impl ParamStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose fixed tensors come from `given` wherever a layer asks for one by
    /// name ([`ParamStore::fixed_indices`], [`ParamStore::fixed_timescales`]): a model
    /// built from a weights file uses the file's connectome and timescales.
    pub fn with_fixed(given: impl IntoIterator<Item = (String, Vec<usize>, BufferValues)>) -> Self {
        ParamStore { given: given.into_iter().map(|(name, shape, values)| (name, (shape, values))).collect(), ..Self::default() }
    }

    /// A fixed index tensor (a connectome, `shape = [units, k_c]`, entries in
    /// `0..inputs + units`): the given one of this name, checked, or else the one `draw`
    /// makes. Recorded as a buffer either way.
    pub fn fixed_indices(&mut self, name: &str, shape: [usize; 2], inputs: usize, units: usize, draw: impl FnOnce() -> Result<Vec<usize>, crate::error::PluginError>) -> Result<Vec<usize>, crate::error::PluginError> {
        let fixed = |problem: String| ParamError::Fixed { name: name.to_string(), problem };
        let indices = match self.given.get(name) {
            None => draw()?,
            Some((given_shape, values)) => {
                if given_shape[..] != shape[..] {
                    return Err(fixed(format!("has shape {given_shape:?}; the model needs {shape:?}")).into());
                }
                let BufferValues::I64(values) = values else {
                    return Err(fixed("holds F32 values; a connectome holds integers (I64)".into()).into());
                };
                let sources = inputs + units;
                let mut out = Vec::with_capacity(values.len());
                for (at, &v) in values.iter().enumerate() {
                    if v < 0 || v as usize >= sources {
                        let (i, k) = (at / shape[1].max(1), at % shape[1].max(1));
                        return Err(fixed(format!("entry [{i}, {k}] is {v}, outside the {sources} sources ({inputs} inputs + {units} units)")).into());
                    }
                    out.push(v as usize);
                }
                out
            }
        };
        self.insert_buffer(name, &shape, BufferValues::I64(indices.iter().map(|&i| i as i64).collect()))?;
        Ok(indices)
    }

    /// A layer's connectome: the given one of this name, checked, or else the one
    /// `wiring` draws for `shape` (validated). Recorded as a buffer either way.
    pub fn fixed_connectome(&mut self, name: &str, wiring: &dyn crate::connectivity::Connectivity, shape: crate::connectivity::WiringShape, rng: &mut rand_chacha::ChaCha8Rng) -> Result<Vec<usize>, crate::error::PluginError> {
        self.fixed_indices(name, [shape.units, shape.fan_in], shape.input_width, shape.units, || {
            let connectome = wiring.wire(shape, rng)?;
            connectome.validate()?;
            Ok(connectome.flat())
        })
    }

    /// Fixed timescales (positive, finite) of `shape`: the given ones of this name, or
    /// else `compute()`. Returned in f64: the computed values where the given f32 values
    /// are exactly those rounded (a run's own checkpoint, so that a resumed run goes on
    /// with the same factors), else the given values widened. Recorded as an f32 buffer.
    pub fn fixed_timescales(&mut self, name: &str, shape: &[usize], compute: impl FnOnce() -> Vec<f64>) -> Result<Vec<f64>, crate::error::PluginError> {
        let fixed = |problem: String| ParamError::Fixed { name: name.to_string(), problem };
        let computed = compute();
        let taus: Vec<f64> = match self.given.get(name) {
            None => computed,
            Some((given_shape, values)) => {
                if given_shape[..] != shape[..] {
                    return Err(fixed(format!("has shape {given_shape:?}; the model needs {shape:?}")).into());
                }
                let BufferValues::F32(values) = values else {
                    return Err(fixed("holds integers; timescales are F32".into()).into());
                };
                let last = *shape.last().unwrap_or(&1);
                if let Some((at, v)) = values.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v > 0.0)) {
                    return Err(fixed(format!("entry [{}, {}] is {v}; timescales are positive and finite", at / last.max(1), at % last.max(1))).into());
                }
                if computed.len() == values.len() && computed.iter().zip(values).all(|(c, v)| *c as f32 == *v) {
                    computed
                } else {
                    values.iter().map(|&v| v as f64).collect()
                }
            }
        };
        self.insert_buffer(name, shape, BufferValues::F32(taus.iter().map(|&t| t as f32).collect()))?;
        Ok(taus)
    }

    /// Adds a tensor of `shape` (1 to 3 axes) with the given row-major values.
    pub fn insert(&mut self, name: &str, shape: &[usize], values: Vec<f32>) -> Result<(), ParamError> {
        if self.index.contains_key(name) || self.buffer(name).is_some() {
            return Err(ParamError::Twice { name: name.to_string() });
        }
        if !(1..=3).contains(&shape.len()) {
            return Err(ParamError::Rank { name: name.to_string(), shape: shape.to_vec() });
        }
        let (rows, cols) = matrix_dims(shape);
        if values.len() != rows * cols {
            return Err(ParamError::Size { name: name.to_string(), got: values.len(), shape: shape.to_vec() });
        }
        let value = matrix(&device(), values, rows, cols);
        self.index.insert(name.to_string(), self.params.len());
        self.params.push(Param { name: name.to_string(), shape: shape.to_vec(), value });
        Ok(())
    }

    /// Adds a tensor initialised uniformly on `[-bound, bound]`.
    pub fn insert_uniform(&mut self, name: &str, shape: &[usize], bound: f64, rng: &mut ChaCha8Rng) -> Result<(), ParamError> {
        let n: usize = shape.iter().product();
        let values = (0..n).map(|_| rng.gen_range(-bound..=bound) as f32).collect();
        self.insert(name, shape, values)
    }

    pub fn insert_zeros(&mut self, name: &str, shape: &[usize]) -> Result<(), ParamError> {
        let n: usize = shape.iter().product();
        self.insert(name, shape, vec![0.0; n])
    }

    pub fn get(&self, name: &str) -> &Param {
        match self.index.get(name) {
            Some(&i) => &self.params[i],
            None => panic!("no parameter `{name}`; have {:?}", self.names()),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The parameter as a matrix on a fresh tape: gradients of every use reach it.
    pub fn traced(&self, name: &str) -> Traced {
        trace(&self.get(name).value)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.params.iter()
    }

    pub fn names(&self) -> Vec<&str> {
        self.params.iter().map(|p| p.name.as_str()).collect()
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Trainable scalars whose names start with `prefix` (`""` for all).
    pub fn count(&self, prefix: &str) -> usize {
        self.params.iter().filter(|p| p.name.starts_with(prefix)).map(Param::numel).sum()
    }

    pub fn set_values(&mut self, i: usize, value: Matrix) {
        let p = &mut self.params[i];
        debug_assert_eq!(p.value.shape(), value.shape());
        p.value = value;
    }

    pub fn param_at(&self, i: usize) -> &Param {
        &self.params[i]
    }

    /// The value of parameter `i`, to change in place (same shape).
    pub fn value_mut(&mut self, i: usize) -> &mut Matrix {
        &mut self.params[i].value
    }

    /// Values of one parameter, row-major.
    pub fn values(&self, name: &str) -> Vec<f32> {
        crate::tensor::values(&self.get(name).value)
    }

    /// Replaces one parameter's values (same shape), e.g. when loading a checkpoint.
    pub fn load_values(&mut self, name: &str, values: Vec<f32>) -> Result<(), ParamError> {
        let Some(&i) = self.index.get(name) else {
            return Err(ParamError::Unknown { name: name.to_string() });
        };
        let p = &self.params[i];
        if values.len() != p.numel() {
            return Err(ParamError::Size { name: name.to_string(), got: values.len(), shape: p.shape.clone() });
        }
        let (rows, cols) = matrix_dims(&p.shape);
        let value = matrix(&device(), values, rows, cols);
        self.params[i].value = value;
        Ok(())
    }

    /// Records a fixed tensor beside the parameters.
    pub fn insert_buffer(&mut self, name: &str, shape: &[usize], values: BufferValues) -> Result<(), ParamError> {
        if self.buffer(name).is_some() || self.contains(name) {
            return Err(ParamError::Twice { name: name.to_string() });
        }
        let len = match &values {
            BufferValues::F32(v) => v.len(),
            BufferValues::I64(v) => v.len(),
        };
        if len != shape.iter().product::<usize>() {
            return Err(ParamError::Size { name: name.to_string(), got: len, shape: shape.to_vec() });
        }
        self.buffers.push(Buffer { name: name.to_string(), shape: shape.to_vec(), values });
        Ok(())
    }

    pub fn buffer(&self, name: &str) -> Option<&Buffer> {
        self.buffers.iter().find(|b| b.name == name)
    }

    pub fn buffers(&self) -> &[Buffer] {
        &self.buffers
    }
}

/// Vectors are stored as one-row matrices, higher ranks with their leading axes folded.
fn matrix_dims(shape: &[usize]) -> (usize, usize) {
    match shape {
        [n] => (1, *n),
        [lead @ .., last] => (lead.iter().product(), *last),
        [] => unreachable!("checked on insert"),
    }
}

impl ParamStore {
    /// A 1-axis parameter as a traced vector `[n]`.
    pub fn traced_vector(&self, name: &str) -> Tensor<(usize,), f32, Dev, crate::tensor::Tape> {
        let p = self.get(name);
        assert_eq!(p.shape.len(), 1, "`{name}` is not a vector");
        self.traced(name).reshape_like(&(p.shape[0],))
    }

    /// A 3-axis parameter as a traced `[a, b, c]` tensor.
    pub fn traced3(&self, name: &str) -> Tensor<(usize, usize, usize), f32, Dev, crate::tensor::Tape> {
        let p = self.get(name);
        let [a, b, c] = p.shape[..] else { panic!("`{name}` is not a 3-axis tensor") };
        self.traced(name).reshape_like(&(a, b, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(name: &str, shape: &[usize], values: BufferValues) -> ParamStore {
        ParamStore::with_fixed(vec![(name.to_string(), shape.to_vec(), values)])
    }

    #[test]
    fn given_indices_are_taken_checked_and_recorded_else_drawn() {
        let mut store = given("l.connectome", &[2, 2], BufferValues::I64(vec![0, 4, 3, 3]));
        let got = store.fixed_indices("l.connectome", [2, 2], 3, 2, || panic!("a given tensor is not drawn")).unwrap();
        assert_eq!(got, vec![0, 4, 3, 3]);
        assert!(matches!(&store.buffer("l.connectome").unwrap().values, BufferValues::I64(v) if *v == vec![0, 4, 3, 3]));
        let mut drawn = ParamStore::new();
        assert_eq!(drawn.fixed_indices("l.connectome", [1, 2], 3, 1, || Ok(vec![2, 1])).unwrap(), vec![2, 1]);
        assert!(drawn.buffer("l.connectome").is_some());
        for (values, says) in [(vec![0, 5, 1, 1], "entry [0, 1] is 5, outside the 5 sources (3 inputs + 2 units)"), (vec![0, 1, -2, 1], "entry [1, 0] is -2")] {
            let e = given("l.connectome", &[2, 2], BufferValues::I64(values)).fixed_indices("l.connectome", [2, 2], 3, 2, || Ok(vec![])).unwrap_err().to_string();
            assert!(e.contains("l.connectome") && e.contains(says), "{e}");
        }
        let e = given("l.connectome", &[4], BufferValues::I64(vec![0; 4])).fixed_indices("l.connectome", [2, 2], 3, 2, || Ok(vec![])).unwrap_err().to_string();
        assert!(e.contains("has shape [4]; the model needs [2, 2]"), "{e}");
        let e = given("l.connectome", &[2, 2], BufferValues::F32(vec![0.0; 4])).fixed_indices("l.connectome", [2, 2], 3, 2, || Ok(vec![])).unwrap_err().to_string();
        assert!(e.contains("integers"), "{e}");
    }

    /// A run's own f32 timescales give back the exact f64 values they were rounded from
    /// (a resumed run continues bit for bit); another file's are widened as they are.
    #[test]
    fn given_timescales_keep_a_runs_own_values_and_refuse_bad_ones() {
        let computed = vec![1.0, 7.0f64.sqrt(), 500.0];
        let own = given("l.tau_m", &[1, 3], BufferValues::F32(computed.iter().map(|&t| t as f32).collect())).fixed_timescales("l.tau_m", &[1, 3], || computed.clone()).unwrap();
        assert_eq!(own, computed);
        let foreign = given("l.tau_m", &[1, 3], BufferValues::F32(vec![2.5, 3.0, 4.0])).fixed_timescales("l.tau_m", &[1, 3], || computed.clone()).unwrap();
        assert_eq!(foreign, vec![2.5, 3.0, 4.0]);
        for (bad, says) in [(0.0f32, "entry [0, 1] is 0"), (f32::NAN, "entry [0, 1] is NaN"), (f32::INFINITY, "entry [0, 1] is inf"), (-1.0, "entry [0, 1] is -1")] {
            let e = given("l.tau_m", &[1, 3], BufferValues::F32(vec![1.0, bad, 2.0])).fixed_timescales("l.tau_m", &[1, 3], || computed.clone()).unwrap_err().to_string();
            assert!(e.contains("l.tau_m") && e.contains(says) && e.contains("positive and finite"), "{e}");
        }
    }
}
