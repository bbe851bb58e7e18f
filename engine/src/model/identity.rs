//! Which model a GGUF says it is, from its own metadata: the page's "m1" badge must be
//! true of the weights loaded, whatever the file or a list entry is called.

use crate::gguf::Metadata;

/// True when the file names itself m1 (UCSC-VLAA's m1-7B-1K, m1-7B-23K, m1-32B-1K):
/// `general.basename` is "m1" (llama.cpp's converter splits "m1-7B-23K" so), or
/// `general.name`, after any "owner/" prefix, is "m1" or starts with "m1" and a separator
/// (`m1 quantize` writes the model folder's name, "m1-7B-23K"). Case is ignored; "m10" or
/// "qwen-m1" are not m1.
pub fn is_m1(md: &Metadata) -> bool {
    let names_m1 = |key: &str| {
        md.opt_str(key).ok().flatten().is_some_and(|name| {
            let name = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
            name.strip_prefix("m1")
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '_', ' ', '.']))
        })
    };
    names_m1("general.basename") || names_m1("general.name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Value;

    fn metadata(pairs: &[(&str, &str)]) -> Metadata {
        let mut md = Metadata::default();
        for (k, v) in pairs {
            md.insert(k.to_string(), Value::String(v.to_string()))
                .unwrap();
        }
        md
    }

    #[test]
    fn m1_by_its_own_names_only() {
        for (pairs, want) in [
            (vec![("general.name", "m1-7B-23K")], true),
            (vec![("general.name", "UCSC-VLAA/m1-7B-1K")], true),
            (
                vec![("general.name", "M1 7B 23K"), ("general.basename", "m1")],
                true,
            ),
            (vec![("general.basename", "M1")], true),
            (vec![("general.name", "m1")], true),
            (vec![("general.name", "Qwen2.5 Coder 0.5B Instruct")], false),
            (vec![("general.name", "SmolLM2 135M Instruct")], false),
            (vec![("general.name", "m10-base")], false),
            (vec![("general.name", "qwen-m1")], false),
            (vec![("general.architecture", "qwen2")], false),
        ] {
            assert_eq!(is_m1(&metadata(&pairs)), want, "{pairs:?}");
        }
    }
}
