//! A cell's parameter declarations, and its view of the parameters by local name.

use crate::error::ParamError;
use crate::params::{Param, ParamStore};
use crate::tensor::{Dev, Matrix, Tape, Traced};
use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;

/// How a parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Uniform on `[-bound, bound]`, drawn from the run's initialisation stream.
    Uniform(f64),
    Zeros,
    /// Every entry this value (the predecessor ELM's synapse weights start at 0.5).
    Constant(f64),
}

/// One declared parameter of a cell.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// The name within the layer (`weight_ih_l0`); the store's name is `<layer>.<local>`.
    pub local: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

impl ParamSpec {
    pub fn new(local: impl Into<String>, shape: &[usize], init: Init) -> Self {
        ParamSpec { local: local.into(), shape: shape.to_vec(), init }
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub(crate) fn create(&self, prefix: &str, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<(), ParamError> {
        let name = format!("{prefix}.{}", self.local);
        match self.init {
            Init::Uniform(bound) => store.insert_uniform(&name, &self.shape, bound, rng),
            Init::Zeros => store.insert_zeros(&name, &self.shape),
            Init::Constant(v) => store.insert(&name, &self.shape, vec![v as f32; self.numel()]),
        }
    }
}

/// A cell's parameters by local name, as a step reads them.
pub struct CellParams<'a> {
    store: &'a ParamStore,
    prefix: &'static str,
}

impl<'a> CellParams<'a> {
    pub fn new(store: &'a ParamStore, prefix: &'static str) -> Self {
        CellParams { store, prefix }
    }
    /// The whole store (for helpers that take parameters by their full names).
    pub fn store(&self) -> &'a ParamStore {
        self.store
    }
    /// The store's name of `local` (`lstm.weight_ih_l0`).
    pub fn name(&self, local: &str) -> String {
        format!("{}.{local}", self.prefix)
    }
    pub fn param(&self, local: &str) -> &'a Param {
        self.store.get(&self.name(local))
    }
    /// The value, without a tape (what a fused path reads).
    pub fn value(&self, local: &str) -> &'a Matrix {
        &self.param(local).value
    }
    /// The parameter on a fresh tape: gradients of every use reach it.
    pub fn traced(&self, local: &str) -> Traced {
        self.store.traced(&self.name(local))
    }
    /// A 3-axis parameter (`[units, rows, cols]`, one matrix per unit) on a fresh tape.
    pub fn traced3(&self, local: &str) -> Tensor<(usize, usize, usize), f32, Dev, Tape> {
        self.store.traced3(&self.name(local))
    }
    /// A 1-axis parameter as a traced vector.
    pub fn traced_vector(&self, local: &str) -> Tensor<(usize,), f32, Dev, Tape> {
        self.store.traced_vector(&self.name(local))
    }
    /// `W·x + b` for the weight and bias named, broadcasting `b` over the batch.
    pub fn affine(&self, weight: &str, bias: &str, x: Traced) -> Traced {
        let rows = self.param(bias).shape[0];
        let batch = x.shape().1;
        self.traced(weight).matmul(x) + self.traced_vector(bias).broadcast_like::<(usize, usize), Axis<1>>(&(rows, batch))
    }
    /// A 1-axis parameter added to every column of `x` (`[rows, batch]`).
    pub fn add_bias(&self, bias: &str, x: Traced) -> Traced {
        let shape = *x.shape();
        x + self.traced_vector(bias).broadcast_like::<(usize, usize), Axis<1>>(&shape)
    }
}
