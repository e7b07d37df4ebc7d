//! What a deployment asks of this terminal: at most one RAUC bundle (an A/B terminal boots one
//! system at a time) and any number of signed merchant configurations, each with its detached
//! signature. Every artifact of every chunk is accounted for; anything else is refused with
//! its name, never silently skipped.
//!
//! - A RAUC bundle: an artifact of a chunk whose part is `os`, or a file named `*.raucb`.
//! - A merchant configuration: an artifact of a chunk whose part is `merchant-config`, or a
//!   file named `*.toml`; its signature is the artifact named like it plus `.sig`, anywhere in
//!   the deployment (the signature file `posctl config sign` writes).

use crate::ddi::{Artifact, Deployment};

/// The part (software module type) that marks merchant configurations.
pub const CONFIG_PART: &str = "merchant-config";

/// Largest merchant configuration the payment daemon takes, and its one-line signature.
const MAX_CONFIG_BYTES: u64 = 1 << 20;
const MAX_SIGNATURE_BYTES: u64 = 1024;

/// The artifacts of one deployment, sorted by what they are.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// The bundle and its chunk's version.
    pub bundle: Option<(&'a Artifact, &'a str)>,
    /// (configuration, its signature), in the deployment's order.
    pub configs: Vec<(&'a Artifact, &'a Artifact)>,
}

impl<'a> Plan<'a> {
    pub fn of(dep: &'a Deployment) -> Result<Plan<'a>, String> {
        let all: Vec<_> = dep
            .chunks
            .iter()
            .flat_map(|c| c.artifacts.iter().map(move |a| (c, a)))
            .collect();
        let is_config = |part: &str, name: &str| part == CONFIG_PART || name.ends_with(".toml");
        let signature_of = |name: &str| {
            all.iter()
                .map(|(_, a)| *a)
                .find(|a| a.filename == format!("{name}.sig"))
        };
        let mut plan = Plan::default();
        for (chunk, a) in &all {
            let name = a.filename.as_str();
            if let Some(signed) = name.strip_suffix(".sig")
                && all
                    .iter()
                    .any(|(c, o)| o.filename == signed && is_config(&c.part, signed))
            {
                // Taken with the configuration it signs (usually in the same chunk, whose
                // part is `merchant-config` too).
            } else if chunk.part == "os" || name.ends_with(".raucb") {
                if plan.bundle.is_some() {
                    return Err(format!(
                        "more than one RAUC bundle in one deployment ({name} too): a terminal \
                         boots one system; deploy them one after the other"
                    ));
                }
                plan.bundle = Some((a, chunk.version.as_str()));
            } else if is_config(&chunk.part, name) {
                let Some(sig) = signature_of(name) else {
                    return Err(format!(
                        "merchant configuration {name} comes without its signature {name}.sig"
                    ));
                };
                if a.size > MAX_CONFIG_BYTES || sig.size > MAX_SIGNATURE_BYTES {
                    return Err(format!(
                        "merchant configuration {name} ({} bytes) or its signature ({} bytes) \
                         is larger than the payment daemon takes",
                        a.size, sig.size
                    ));
                }
                plan.configs.push((a, sig));
            } else {
                return Err(format!(
                    "chunk {:?} part {:?}: artifact {name} is neither a RAUC bundle nor a signed \
                     merchant configuration; this terminal installs only those",
                    chunk.name, chunk.part
                ));
            }
        }
        if plan.bundle.is_none() && plan.configs.is_empty() {
            return Err("the deployment holds no artifact".into());
        }
        Ok(plan)
    }

    /// The file names, in the order they are fetched.
    pub fn names(&self) -> Vec<&'a str> {
        let mut names: Vec<&str> = self
            .bundle
            .iter()
            .map(|(a, _)| a.filename.as_str())
            .collect();
        for (c, s) in &self.configs {
            names.push(&c.filename);
            names.push(&s.filename);
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(chunks: serde_json::Value) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "download": "forced", "update": "attempt", "chunks": chunks
        }))
        .expect("deployment")
    }

    fn artifact(name: &str, size: u64) -> serde_json::Value {
        serde_json::json!({"filename": name, "size": size, "hashes": {"sha256": "00"}})
    }

    #[test]
    fn a_bundle_and_a_signed_configuration_in_separate_chunks_are_both_taken() {
        let d = deployment(serde_json::json!([
            {"part": "os", "version": "1.2.0", "name": "pos", "artifacts": [artifact("pos.raucb", 9)]},
            {"part": "merchant-config", "version": "8", "name": "shop",
             "artifacts": [artifact("merchant.toml", 5), artifact("merchant.toml.sig", 89)]}
        ]));
        let plan = Plan::of(&d).expect("plan");
        assert_eq!(
            plan.bundle.map(|(a, v)| (a.filename.as_str(), v)),
            Some(("pos.raucb", "1.2.0"))
        );
        assert_eq!(plan.configs.len(), 1);
        assert_eq!(
            plan.names(),
            ["pos.raucb", "merchant.toml", "merchant.toml.sig"]
        );
    }

    #[test]
    fn a_configuration_without_its_signature_or_two_bundles_or_a_stranger_are_refused() {
        let unsigned = deployment(serde_json::json!([
            {"part": "merchant-config", "artifacts": [artifact("merchant.toml", 5)]}
        ]));
        let e = Plan::of(&unsigned).expect_err("unsigned");
        assert!(e.contains("without its signature merchant.toml.sig"), "{e}");
        let two = deployment(serde_json::json!([
            {"part": "os", "artifacts": [artifact("a.raucb", 1)]},
            {"part": "os", "artifacts": [artifact("b.raucb", 1)]}
        ]));
        assert!(
            Plan::of(&two)
                .expect_err("two")
                .contains("more than one RAUC bundle")
        );
        let stranger = deployment(serde_json::json!([
            {"part": "application", "name": "x", "artifacts": [artifact("app.tar", 1)]}
        ]));
        assert!(
            Plan::of(&stranger)
                .expect_err("stranger")
                .contains("app.tar")
        );
        let orphan = deployment(serde_json::json!([
            {"part": "os", "artifacts": [artifact("a.raucb", 1), artifact("b.toml.sig", 1)]}
        ]));
        assert!(
            Plan::of(&orphan)
                .expect_err("orphan")
                .contains("b.toml.sig")
        );
        let bundle_sig = deployment(serde_json::json!([
            {"part": "os", "artifacts": [artifact("a.raucb", 1)]},
            {"part": "other", "artifacts": [artifact("a.raucb.sig", 1)]}
        ]));
        assert!(
            Plan::of(&bundle_sig)
                .expect_err("bundle sig")
                .contains("a.raucb.sig")
        );
        let huge = deployment(serde_json::json!([
            {"part": "merchant-config", "artifacts": [artifact("m.toml", 2 << 20), artifact("m.toml.sig", 89)]}
        ]));
        assert!(Plan::of(&huge).expect_err("huge").contains("larger"));
        let empty = deployment(serde_json::json!([]));
        assert!(Plan::of(&empty).is_err());
    }
}
