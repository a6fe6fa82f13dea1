//! The CPU math of elmlab: operations computed on the host and attached to dfdx's tape as
//! one backward operation (`tape`): the output map of a whole sequence (`affine`), softmax
//! cross-entropy (`softmax`); two halves of a piece of work on two threads (`both`); the
//! matmul, products on weights packed once (`packed`), a vectorisable f32 `exp`, and the
//! CPU's vector instructions (`cpu`). CPU only: dfdx keeps CUDA buffers private, and a CUDA build
//! takes none of these paths ([`AVAILABLE`]).

pub mod affine;
pub mod both;
pub mod cpu;
pub mod exp;
pub mod matmul;
pub mod packed;
pub mod softmax;
pub mod tape;

pub use affine::{affine_columns, affine_stacked};
pub use softmax::{softmax_cross_entropy, Hits};
pub use tape::{add_grad, grad_of, take_input, DevError, GradResult, Grads, AVAILABLE};
