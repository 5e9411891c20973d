//! Live cluster assignment (issue 7): the clustering model a batch run saved (`model.json` of
//! `strata run`) places each profile in one of its segments, from the profile's built-in RFM
//! computed traits, whenever they change — so cluster segments are live, and rules can use
//! them (`in segment "Champions"`).
//!
//! The batch features map to live values as follows: `recency_days` ← `rfm_recency_days`,
//! `frequency` ← `rfm_frequency`, `monetary` ← `rfm_monetary`, `tenure_days` ←
//! `rfm_tenure_days`, `aov` ← monetary / frequency; the categorical features of a
//! k-prototypes model are read from the profile's traits of the same name. A profile without
//! an order is in no cluster, as it is in no batch RFM table.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use strata_core::FeatureMatrix;
use strata_ml::{MISSING_CATEGORY, SegmentationModel};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    Computed(&'static str),
    /// Average order value: monetary / frequency.
    Aov,
}

/// The batch features a live profile has, and where each comes from.
const LIVE_FEATURES: [(&str, Source); 5] = [
    ("recency_days", Source::Computed("rfm_recency_days")),
    ("frequency", Source::Computed("rfm_frequency")),
    ("monetary", Source::Computed("rfm_monetary")),
    ("tenure_days", Source::Computed("rfm_tenure_days")),
    ("aov", Source::Aov),
];

/// A saved model, ready to assign live profiles.
#[derive(Debug, Clone)]
pub struct LiveModel {
    model: SegmentationModel,
    sources: Vec<Source>,
    origin: String,
}

impl LiveModel {
    /// Checks that every feature of the model can be computed on a live profile.
    pub fn new(model: SegmentationModel, origin: &str) -> Result<Self, String> {
        let sources = model
            .features
            .iter()
            .map(|f| {
                LIVE_FEATURES
                    .iter()
                    .find(|(name, _)| name == f)
                    .map(|(_, s)| *s)
                    .ok_or_else(|| {
                        format!(
                            "{origin}: the model's feature `{f}` has no live value; live assignment knows {}",
                            LIVE_FEATURES.map(|(n, _)| n).join(", ")
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if model.segment_names.len() != model.k {
            return Err(format!(
                "{origin}: the model names {} segments for k = {}",
                model.segment_names.len(),
                model.k
            ));
        }
        Ok(Self {
            model,
            sources,
            origin: origin.to_string(),
        })
    }

    /// Reads `model.json` (any version `strata assign` reads) and checks it.
    pub fn load(path: &Path) -> Result<Self, String> {
        let model = SegmentationModel::load(path).map_err(|e| e.to_string())?;
        Self::new(model, &path.display().to_string())
    }

    /// The model's segment names: the cluster segments.
    pub fn segments(&self) -> &[String] {
        &self.model.segment_names
    }

    /// Where the model came from, for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The model's algorithm and features, for the API.
    pub fn describe(&self) -> Value {
        serde_json::json!({
            "origin": self.origin,
            "algorithm": self.model.algorithm,
            "features": self.model.features,
            "categorical": self.model.assigner.categorical(),
            "segments": self.model.segment_names,
            "trained_rows": self.model.trained_rows,
            "strata_version": self.model.strata_version,
        })
    }

    /// The segment of a profile with these traits and computed traits (read at the instant
    /// of assignment); `None` for a profile without an order.
    pub fn assign(
        &self,
        traits: &Map<String, Value>,
        computed: &BTreeMap<String, Value>,
    ) -> Option<&str> {
        let number = |name: &str| computed.get(name).and_then(Value::as_f64);
        let frequency = number("rfm_frequency")?;
        if frequency < 1.0 {
            return None;
        }
        let row = self
            .sources
            .iter()
            .map(|s| match s {
                Source::Computed(name) => number(name),
                Source::Aov => number("rfm_monetary").map(|m| m / frequency),
            })
            .collect::<Option<Vec<f64>>>()?;
        let categories: Vec<String> = self
            .model
            .assigner
            .categorical()
            .iter()
            .map(|f| category(traits.get(f)))
            .collect();
        let x = FeatureMatrix::new(vec![String::new()], self.model.features.clone(), row).ok()?;
        let a = self.model.assign_mixed(&x, &categories).ok()?;
        let label = *a.labels.first()?;
        self.model
            .segment_names
            .get(label as usize)
            .map(String::as_str)
    }
}

/// A trait as a category, the way the batch run reads a customers field: trimmed text,
/// numbers and booleans as written, anything else missing.
fn category(v: Option<&Value>) -> String {
    let text = match v {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    };
    if text.is_empty() {
        MISSING_CATEGORY.to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use strata_ml::{Scaler, ScalerKind};

    fn model(features: &[&str]) -> SegmentationModel {
        let d = features.len();
        SegmentationModel::new(
            "kmeans",
            features.iter().map(|f| f.to_string()).collect(),
            Scaler {
                kinds: vec![ScalerKind::ZScore; d],
                mean: vec![0.0; d],
                std: vec![1.0; d],
            },
            2,
            [vec![0.0; d], vec![100.0; d]].concat(),
            vec!["Low".into(), "High".into()],
            7,
            10,
        )
    }

    #[test]
    fn assigns_from_computed_traits_and_refuses_unknown_features() {
        let m = LiveModel::new(model(&["monetary", "aov"]), "m.json").unwrap();
        let computed = |f: f64, m: f64| {
            BTreeMap::from([
                ("rfm_frequency".to_string(), json!(f)),
                ("rfm_monetary".to_string(), json!(m)),
            ])
        };
        let traits = Map::new();
        assert_eq!(m.assign(&traits, &computed(1.0, 10.0)), Some("Low"));
        // monetary 180, aov 90: nearer (100, 100).
        assert_eq!(m.assign(&traits, &computed(2.0, 180.0)), Some("High"));
        // No order: no cluster.
        assert_eq!(m.assign(&traits, &computed(0.0, 0.0)), None);
        assert_eq!(m.assign(&traits, &BTreeMap::new()), None);
        let e = LiveModel::new(model(&["monetary", "clv"]), "m.json").unwrap_err();
        assert!(e.contains("`clv` has no live value"), "{e}");
    }
}
