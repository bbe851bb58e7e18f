//! Values to a GGUF type's on-disk bytes.

use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};
use half::f16;

use crate::gguf::GgmlType;

/// `values` (whole rows of `row_len`) in `ty`'s on-disk layout: f32/f16 directly, quantized
/// types through candle's quantizers (ggml's reference `quantize_row_*`, without an
/// importance matrix, as llama-quantize does when given none).
pub fn encode(ty: GgmlType, values: Vec<f32>, row_len: usize) -> Result<Vec<u8>, String> {
    match ty {
        GgmlType::F32 => Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        GgmlType::F16 => Ok(values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect()),
        _ => {
            let rows = values.len() / row_len.max(1);
            let t = Tensor::from_vec(values, (rows, row_len), &Device::Cpu)
                .map_err(|e| e.to_string())?;
            let q = QTensor::quantize(&t, ty.to_candle()).map_err(|e| e.to_string())?;
            let data = q.data().map_err(|e| e.to_string())?;
            Ok(data.into_owned())
        }
    }
}
