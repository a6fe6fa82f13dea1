//! The shared building block for recurrent cells: a layer whose step is a small piece
//! of math over declared parameters (LSTM, GRU, linear units, a tanh RNN). A [`Cell`]
//! declares its parameters (local names, shapes, initialisation), its state parts and
//! its wiring, and writes its step; [`CellModel`] does the rest of the neuron-model
//! contract — the closed-form plan (exact by construction: the plan counts the
//! declarations the build creates), the build, the layer, the step loop.

mod gates;
mod params;

pub use gates::{gate_blocks, pytorch_gates, B_HH, B_IH, W_HH, W_IH};
pub use params::{CellParams, Init, ParamSpec};

use crate::connectivity::Connectivity;
use crate::error::{LayerError, PluginError};
use crate::neuron::{step_by_step, ForwardContext, LayerPlan, LayerState, NetworkShape, NeuronModel, RecurrentLayer, SequenceOutput, StatePart, Step, StepInputs};
use crate::params::ParamStore;
use crate::tensor::Traced;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// The size of one layer of a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellShape {
    pub units: usize,
    pub input_width: usize,
    /// Synapses per unit from the connectivity pattern (`k_c`); 0 for a densely wired cell.
    pub fan_in: usize,
}

/// A recurrent cell: its declarations and its step.
pub trait Cell: Send + Sync + 'static {
    /// The layer's name and the prefix of its parameters (`lstm` → `lstm.weight_ih_l0`).
    const NAME: &'static str;
    /// The state parts' names, in the order `step` receives them; each `[units, batch]`
    /// unless [`Cell::state_parts`] says otherwise.
    const STATE: &'static [&'static str];
    /// What the layer fixes when it is built and its step reads (a connectome, timescales).
    type Fixed: 'static;

    /// The state parts with their rows: [`Cell::STATE`], `units` rows each, by default; a
    /// cell with wider state (a trace per synapse, memory per unit) says so here.
    fn state_parts(&self, shape: &CellShape) -> Vec<StatePart> {
        Self::STATE.iter().map(|name| StatePart::new(name, shape.units)).collect()
    }
    /// Synapses per unit asked of the connectivity pattern; `None`: densely wired.
    fn fan_in(&self) -> Option<usize> {
        None
    }
    /// The layer's parameters, in order (local names: `weight_ih_l0`).
    fn parameters(&self, shape: &CellShape) -> Vec<ParamSpec>;
    /// Floating-point operations per step for one sequence (multiply and add count 2).
    fn flops_per_step(&self, shape: &CellShape) -> u64;
    /// Values kept per step and sequence for the backward pass. The default suits a step
    /// written in tensor ops: the gathered and weighted synapses, and a few intermediates
    /// per state row.
    fn activations_per_step(&self, shape: &CellShape) -> u64 {
        let rows: usize = self.state_parts(shape).iter().map(|p| p.rows).sum();
        (2 * shape.units * shape.fan_in + 8 * rows) as u64
    }
    /// Draws what the layer fixes, before its parameters are initialised (a connectome
    /// comes first from the run's random stream), and records fixed tensors in `store`.
    fn prepare(&self, shape: &CellShape, wiring: &dyn Connectivity, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Self::Fixed, PluginError>;
    /// Changes to the freshly initialised parameters, drawn after them (the LSTM's
    /// forget bias). `p` names parameters by their local names.
    fn initialised(&self, _shape: &CellShape, _p: &mut CellParamsMut, _rng: &mut ChaCha8Rng) -> Result<(), PluginError> {
        Ok(())
    }
    /// One step: `x` is `[input_width, batch]`, `state` holds [`Cell::STATE`] in order;
    /// returns the output `[units, batch]` and the next state.
    fn step(&self, fixed: &Self::Fixed, p: &CellParams, x: Traced, state: LayerState) -> Step;

    /// Whether this pass runs [`Cell::fused_sequence`] instead of looping [`Cell::step`].
    fn fused(&self, _ctx: &ForwardContext) -> bool {
        false
    }
    /// A whole sequence at once, equal to the step loop (only called when [`Cell::fused`]).
    fn fused_sequence(&self, _fixed: &Self::Fixed, _p: &CellParams, _ctx: &mut ForwardContext, _inputs: Vec<Traced>, _state: LayerState) -> Result<SequenceOutput, LayerError> {
        Err(LayerError { layer: Self::NAME.into(), problem: "has no fused path".into() })
    }
    /// [`Cell::fused_sequence`] over the data, as the network's first layer (no input
    /// gradients): by default the steps as tensors; a fused path may read them itself.
    fn fused_sequence_from_data(&self, fixed: &Self::Fixed, p: &CellParams, ctx: &mut ForwardContext, inputs: &dyn StepInputs, state: LayerState) -> Result<SequenceOutput, LayerError> {
        self.fused_sequence(fixed, p, ctx, inputs.traced(), state)
    }
}

/// Parameters to change in [`Cell::initialised`], by local name.
pub struct CellParamsMut<'a> {
    pub(crate) store: &'a mut ParamStore,
    pub(crate) prefix: &'static str,
}

impl CellParamsMut<'_> {
    /// The values of `local`, row-major.
    pub fn values(&self, local: &str) -> Vec<f32> {
        self.store.values(&format!("{}.{local}", self.prefix))
    }
    /// Replaces the values of `local` (same size).
    pub fn set(&mut self, local: &str, values: Vec<f32>) -> Result<(), PluginError> {
        Ok(self.store.load_values(&format!("{}.{local}", self.prefix), values)?)
    }
}

/// A cell as a neuron model.
pub struct CellModel<C: Cell> {
    cell: Arc<C>,
}

impl<C: Cell> CellModel<C> {
    pub fn new(cell: C) -> Self {
        CellModel { cell: Arc::new(cell) }
    }

    fn cell_shape(&self, shape: &NetworkShape) -> CellShape {
        let fan_in = self.cell.fan_in().map(|k| shape.fan_in.unwrap_or(k)).unwrap_or(0);
        CellShape { units: shape.units, input_width: shape.input_width, fan_in }
    }
}

/// The closed-form plan of one layer of `cell` (what [`cell_layer`] builds).
pub fn cell_plan<C: Cell>(cell: &C, s: &CellShape) -> LayerPlan {
    let params: usize = cell.parameters(s).iter().map(ParamSpec::numel).sum();
    LayerPlan {
        name: C::NAME.into(),
        units: s.units,
        k_e: (params / s.units.max(1)).saturating_sub(s.fan_in),
        k_c: s.fan_in,
        params,
        flops_per_step: cell.flops_per_step(s),
        activations_per_step: cell.activations_per_step(s),
    }
}

/// Builds one layer of `cell`: what it fixes, then its parameters in declared order,
/// then its changes to them. Models of several layers stack these.
pub fn cell_layer<C: Cell>(cell: Arc<C>, s: CellShape, wiring: &dyn Connectivity, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Box<dyn RecurrentLayer>, PluginError> {
    let fixed = cell.prepare(&s, wiring, store, rng)?;
    for spec in cell.parameters(&s) {
        spec.create(C::NAME, store, rng)?;
    }
    cell.initialised(&s, &mut CellParamsMut { store, prefix: C::NAME }, rng)?;
    Ok(Box::new(CellLayer { cell, fixed, shape: s }))
}

impl<C: Cell> NeuronModel for CellModel<C> {
    fn requested_fan_in(&self) -> Option<usize> {
        self.cell.fan_in()
    }

    fn plan(&self, shape: &NetworkShape) -> Vec<LayerPlan> {
        vec![cell_plan(self.cell.as_ref(), &self.cell_shape(shape))]
    }

    fn build(&self, shape: &NetworkShape, wiring: &dyn Connectivity, store: &mut ParamStore, rng: &mut ChaCha8Rng) -> Result<Vec<Box<dyn RecurrentLayer>>, PluginError> {
        Ok(vec![cell_layer(self.cell.clone(), self.cell_shape(shape), wiring, store, rng)?])
    }
}

/// One built layer of a cell.
pub struct CellLayer<C: Cell> {
    cell: Arc<C>,
    fixed: C::Fixed,
    shape: CellShape,
}

impl<C: Cell> RecurrentLayer for CellLayer<C> {
    fn name(&self) -> &str {
        C::NAME
    }
    fn units(&self) -> usize {
        self.shape.units
    }
    fn input_width(&self) -> usize {
        self.shape.input_width
    }
    fn state_parts(&self) -> Vec<StatePart> {
        self.cell.state_parts(&self.shape)
    }
    fn step(&self, params: &ParamStore, _ctx: &mut ForwardContext, input: Traced, state: LayerState) -> Step {
        self.cell.step(&self.fixed, &CellParams::new(params, C::NAME), input, state)
    }
    fn sequence(&self, params: &ParamStore, ctx: &mut ForwardContext, inputs: Vec<Traced>, state: LayerState) -> Result<SequenceOutput, LayerError> {
        if !inputs.is_empty() && self.cell.fused(ctx) {
            return self.cell.fused_sequence(&self.fixed, &CellParams::new(params, C::NAME), ctx, inputs, state);
        }
        step_by_step(self, params, ctx, inputs, state)
    }
    fn sequence_from_data(&self, params: &ParamStore, ctx: &mut ForwardContext, inputs: &dyn StepInputs, state: LayerState) -> Result<SequenceOutput, LayerError> {
        if inputs.steps() > 0 && self.cell.fused(ctx) {
            return self.cell.fused_sequence_from_data(&self.fixed, &CellParams::new(params, C::NAME), ctx, inputs, state);
        }
        step_by_step(self, params, ctx, inputs.traced(), state)
    }
}
