//! The model description shared by the GPU and CPU paths: hyper-parameters from GGUF
//! metadata, the table of weight names and shapes, which model the file says it is; and the
//! GPU forward pass.

mod config;
pub mod forward;
mod identity;
mod weights;

pub use config::{Architecture, ConfigError, ModelConfig, RopeType};
pub use forward::{GpuModel, GpuModelOptions, ModelError};
pub use identity::is_m1;
pub use weights::{LayerWeights, WeightSpec, WeightTable};
