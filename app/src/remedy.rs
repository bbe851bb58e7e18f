//! What the page offers after a failed load or a lost GPU: pure rules over protocol types,
//! tested natively.

use crate::protocol::{ErrorKind, LoadSource, ModelInfo};

/// The action offered next to an error message.
#[derive(Debug, Clone, PartialEq)]
pub enum Remedy {
    /// Load the same URL again: the worker kept the bytes it stored, so this resumes.
    Retry(LoadSource),
    /// The GPU device was lost with the model: load it again (from the cache when stored).
    Reload(LoadSource),
    /// The model came from a picked file, whose handle the worker does not keep.
    PickAgain,
}

pub fn remedy(kind: ErrorKind, last: Option<&LoadSource>) -> Option<Remedy> {
    match (kind, last) {
        (ErrorKind::Network, Some(s @ LoadSource::Url { .. })) => Some(Remedy::Retry(s.clone())),
        (ErrorKind::DeviceLost, Some(LoadSource::Picked { .. })) => Some(Remedy::PickAgain),
        (ErrorKind::DeviceLost, Some(s)) => Some(Remedy::Reload(s.clone())),
        _ => None,
    }
}

/// Where the loaded model can be read again: its cache copy when there is one (no
/// network), else the source it was loaded from.
pub fn reload_source(sent: Option<LoadSource>, model: &ModelInfo) -> Option<LoadSource> {
    match &model.cached_as {
        Some(file) => Some(LoadSource::Cached { file: file.clone() }),
        None => sent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> LoadSource {
        LoadSource::Url {
            url: "models/m.gguf".into(),
            name: "m".into(),
            size: Some(10),
            sha256: None,
        }
    }

    #[test]
    fn a_network_failure_offers_retry_of_the_same_url_only() {
        assert_eq!(
            remedy(ErrorKind::Network, Some(&url())),
            Some(Remedy::Retry(url()))
        );
        let cached = LoadSource::Cached {
            file: "m.gguf".into(),
        };
        assert_eq!(remedy(ErrorKind::Network, Some(&cached)), None);
        assert_eq!(remedy(ErrorKind::Network, None), None);
        assert_eq!(remedy(ErrorKind::Quota, Some(&url())), None);
        assert_eq!(remedy(ErrorKind::BadModel, Some(&url())), None);
    }

    #[test]
    fn a_lost_device_offers_a_reload_from_the_cache_copy() {
        let model = ModelInfo {
            name: "m".into(),
            architecture: "llama".into(),
            is_m1: false,
            file_bytes: 10,
            n_layers: 1,
            context: 64,
            device: "GPU".into(),
            load_ms: 1.0,
            cached_as: Some("m.gguf".into()),
            gpu_memory: None,
            worker_memory: Default::default(),
        };
        let again = reload_source(Some(url()), &model);
        assert_eq!(
            again,
            Some(LoadSource::Cached {
                file: "m.gguf".into()
            })
        );
        assert_eq!(
            remedy(ErrorKind::DeviceLost, again.as_ref()),
            Some(Remedy::Reload(LoadSource::Cached {
                file: "m.gguf".into()
            }))
        );
        // Not cached (no OPFS): the URL again.
        let uncached = ModelInfo {
            cached_as: None,
            ..model
        };
        assert_eq!(reload_source(Some(url()), &uncached), Some(url()));
        let picked = LoadSource::Picked {
            name: "m.gguf".into(),
        };
        assert_eq!(
            remedy(ErrorKind::DeviceLost, Some(&picked)),
            Some(Remedy::PickAgain)
        );
        assert_eq!(remedy(ErrorKind::DeviceLost, None), None);
    }
}
