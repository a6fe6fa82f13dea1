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
}

impl ParamStore {
    pub fn new() -> Self {
        Self::default()
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
