//! The model description shared by the GPU and CPU paths: hyper-parameters from GGUF
//! metadata, the table of weight names and shapes, which model the file says it is. The
//! models themselves live with their compute: `gpu::model` and `cpu::model`.

mod config;
mod identity;
mod weights;

pub use config::{Architecture, ConfigError, ModelConfig, RopeType};
pub use identity::is_m1;
pub use weights::{
    Assemble, Layer, LayerWeights, WeightSpec, WeightTable, LAYER_NAMES, OUTPUT, OUTPUT_NORM,
    TOKEN_EMBD,
};
