//! Segment profiles: size, share, per-feature mean and median, the features that set each
//! segment apart, and an automatic human-readable name.

use serde::{Deserialize, Serialize};
use strata_core::FeatureMatrix;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    pub name: String,
    pub mean: f64,
    pub median: f64,
    /// Mean of the scaled feature in this segment: standard deviations from the whole
    /// population's mean (in the scaled space the model sees).
    pub z: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentProfile {
    pub id: usize,
    pub name: String,
    pub size: usize,
    pub share: f64,
    pub features: Vec<FeatureStats>,
    /// The features that most distinguish the segment, strongest first, e.g.
    /// "frequency high (+1.8σ)".
    pub distinguishing: Vec<String>,
    /// Means of per-customer model outputs (CLV, P(alive), propensity) over the segment's
    /// customers, when those models ran with the segmentation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predictions: Vec<PredictionMean>,
    /// Soft memberships (mixtures, fuzzy c-means) summarized for the segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<MembershipSummary>,
}

/// How soft a segment is, from per-customer membership degrees (or probabilities).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipSummary {
    /// Every customer's membership in this segment, summed, over all customers: the
    /// segment's share counted softly.
    pub soft_share: f64,
    /// Mean membership of the segment's own members in it.
    pub mean_membership: f64,
    /// Share of its members whose membership in it is at least 0.8.
    pub confident_share: f64,
    /// Its members' membership in it, in ten bins [0, 0.1), …, [0.9, 1].
    pub histogram: Vec<u64>,
}

/// Summaries per segment from `n × k` memberships (rows summing to 1) and hard labels.
pub fn membership_summaries(
    memberships: &[f64],
    labels: &[u32],
    k: usize,
) -> Vec<MembershipSummary> {
    let n = labels.len();
    let mut total = vec![0.0; k];
    let mut own = vec![0.0; k];
    let mut members = vec![0u64; k];
    let mut confident = vec![0u64; k];
    let mut histogram = vec![vec![0u64; 10]; k];
    for (row, &l) in memberships.chunks(k.max(1)).zip(labels) {
        for (t, v) in total.iter_mut().zip(row) {
            *t += v;
        }
        let l = l as usize;
        let v = row[l];
        own[l] += v;
        members[l] += 1;
        confident[l] += u64::from(v >= 0.8);
        histogram[l][((v * 10.0) as usize).min(9)] += 1;
    }
    (0..k)
        .map(|c| {
            let m = members[c].max(1) as f64;
            MembershipSummary {
                soft_share: total[c] / n.max(1) as f64,
                mean_membership: own[c] / m,
                confident_share: confident[c] as f64 / m,
                histogram: std::mem::take(&mut histogram[c]),
            }
        })
        .collect()
}

/// The mean of one per-customer prediction over a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionMean {
    pub name: String,
    pub mean: f64,
    /// Customers of the segment that have the prediction.
    pub customers: usize,
}

impl SegmentProfile {
    pub fn z(&self, feature: &str) -> Option<f64> {
        self.features
            .iter()
            .find(|f| f.name == feature)
            .map(|f| f.z)
    }

    pub fn median(&self, feature: &str) -> Option<f64> {
        self.features
            .iter()
            .find(|f| f.name == feature)
            .map(|f| f.median)
    }
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let m = values.len() / 2;
    if values.len() % 2 == 1 {
        values[m]
    } else {
        (values[m - 1] + values[m]) / 2.0
    }
}

/// Profiles `k` segments from raw (unscaled) and scaled features of the same rows.
pub fn profile_segments(
    raw: &FeatureMatrix,
    scaled: &FeatureMatrix,
    labels: &[u32],
    k: usize,
) -> Vec<SegmentProfile> {
    let n = raw.n_rows().max(1);
    let d = raw.n_cols();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, &l) in labels.iter().enumerate() {
        members[l as usize].push(i);
    }
    let mut profiles: Vec<SegmentProfile> = members
        .iter()
        .enumerate()
        .map(|(id, rows)| {
            let features: Vec<FeatureStats> = (0..d)
                .map(|j| {
                    let mut values: Vec<f64> = rows.iter().map(|&i| raw.row(i)[j]).collect();
                    let count = values.len().max(1) as f64;
                    let mean = values.iter().sum::<f64>() / count;
                    let z = rows.iter().map(|&i| scaled.row(i)[j]).sum::<f64>() / count;
                    FeatureStats {
                        name: raw.names()[j].clone(),
                        mean,
                        median: median(&mut values),
                        z,
                    }
                })
                .collect();
            let mut strongest: Vec<&FeatureStats> =
                features.iter().filter(|f| f.z.abs() >= 0.25).collect();
            strongest.sort_by(|a, b| b.z.abs().total_cmp(&a.z.abs()));
            let distinguishing = strongest
                .iter()
                .take(3)
                .map(|f| {
                    format!(
                        "{} {} ({:+.1}σ)",
                        f.name,
                        if f.z > 0.0 { "high" } else { "low" },
                        f.z
                    )
                })
                .collect();
            SegmentProfile {
                id,
                name: String::new(),
                size: rows.len(),
                share: rows.len() as f64 / n as f64,
                features,
                distinguishing,
                predictions: Vec::new(),
                membership: None,
            }
        })
        .collect();
    name_segments(&mut profiles);
    profiles
}

/// Names from the RFM vocabulary when those features are present, else from the strongest
/// distinguishing features. Repeated names get a spend tier so every name is unique.
fn name_segments(profiles: &mut [SegmentProfile]) {
    for p in profiles.iter_mut() {
        p.name = rfm_name(p).unwrap_or_else(|| generic_name(p));
    }
    let mut seen: Vec<String> = Vec::new();
    let mut order: Vec<usize> = (0..profiles.len()).collect();
    let spend = |p: &SegmentProfile| p.z("monetary").unwrap_or(0.0);
    order.sort_by(|&a, &b| {
        spend(&profiles[b])
            .total_cmp(&spend(&profiles[a]))
            .then(a.cmp(&b))
    });
    for i in order {
        let base = profiles[i].name.clone();
        let tier = seen.iter().filter(|s| **s == base).count();
        seen.push(base.clone());
        if tier > 0 {
            profiles[i].name = format!("{base} (tier {})", tier + 1);
        }
    }
}

fn rfm_name(p: &SegmentProfile) -> Option<String> {
    let r = p.z("recency_days")?;
    let f = p.z("frequency")?;
    let m = p.z("monetary")?;
    let t = p.z("tenure_days").unwrap_or(0.0);
    let a = p.z("aov").unwrap_or(0.0);
    let one_timers = p.median("frequency").is_some_and(|x| x <= 1.0);
    let name = if r > 0.8 && (f > 0.3 || m > 0.3) {
        "At risk high-value"
    } else if r > 0.8 {
        if one_timers {
            "Lapsed one-timers"
        } else {
            "Lapsed"
        }
    } else if t < -0.8 && r < 0.0 {
        "New customers"
    } else if f > 0.5 && m > 0.5 && a > 0.3 {
        "Loyal high-value"
    } else if f > 0.5 && a < -0.5 {
        "Bargain hunters"
    } else if f > 0.2 && m > 0.3 && r < 0.0 {
        "Loyal regulars"
    } else if a > 0.5 {
        "Big-ticket occasional"
    } else if r > 0.3 {
        if one_timers {
            "Fading one-timers"
        } else {
            "Fading"
        }
    } else if r < -0.3 {
        "Active occasional"
    } else {
        "Average customers"
    };
    Some(name.to_string())
}

fn generic_name(p: &SegmentProfile) -> String {
    let mut parts: Vec<&FeatureStats> = p.features.iter().filter(|f| f.z.abs() >= 0.25).collect();
    parts.sort_by(|a, b| b.z.abs().total_cmp(&a.z.abs()));
    if parts.is_empty() {
        return "Typical customers".to_string();
    }
    let words: Vec<String> = parts
        .iter()
        .take(2)
        .map(|f| {
            format!(
                "{} {}",
                if f.z > 0.0 { "high" } else { "low" },
                f.name.replace('_', " ")
            )
        })
        .collect();
    let mut name = words.join(", ");
    if let Some(first) = name.get(..1) {
        name = first.to_uppercase() + &name[1..];
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(zs: &[(&str, f64)], freq_median: f64) -> SegmentProfile {
        SegmentProfile {
            id: 0,
            name: String::new(),
            size: 1,
            share: 1.0,
            features: zs
                .iter()
                .map(|(n, z)| FeatureStats {
                    name: n.to_string(),
                    mean: 0.0,
                    median: if *n == "frequency" { freq_median } else { 0.0 },
                    z: *z,
                })
                .collect(),
            distinguishing: vec![],
            predictions: Vec::new(),
            membership: None,
        }
    }

    fn rfm(r: f64, f: f64, m: f64, t: f64, a: f64, fm: f64) -> SegmentProfile {
        profile(
            &[
                ("recency_days", r),
                ("frequency", f),
                ("monetary", m),
                ("tenure_days", t),
                ("aov", a),
            ],
            fm,
        )
    }

    #[test]
    fn names_follow_the_rfm_vocabulary() {
        assert_eq!(
            rfm_name(&rfm(-0.8, 1.5, 1.8, 0.4, 1.0, 20.0)).unwrap(),
            "Loyal high-value"
        );
        assert_eq!(
            rfm_name(&rfm(-0.6, 1.2, 0.2, 0.4, -1.3, 15.0)).unwrap(),
            "Bargain hunters"
        );
        assert_eq!(
            rfm_name(&rfm(-1.0, -0.5, -0.6, -1.9, 0.0, 1.0)).unwrap(),
            "New customers"
        );
        assert_eq!(
            rfm_name(&rfm(1.3, -0.7, -0.6, 0.4, 0.0, 1.0)).unwrap(),
            "Lapsed one-timers"
        );
        assert_eq!(
            rfm_name(&rfm(1.1, 0.9, 1.0, 0.5, 0.2, 6.0)).unwrap(),
            "At risk high-value"
        );
        assert_eq!(rfm_name(&profile(&[("age", 1.0)], 0.0)), None);
        assert_eq!(
            generic_name(&profile(&[("age", 1.0), ("basket_size", -0.5)], 0.0)),
            "High age, low basket size"
        );
    }

    #[test]
    fn profiles_count_and_name_uniquely() {
        let raw = FeatureMatrix::new(
            (0..4).map(|i| i.to_string()).collect(),
            vec!["age".into()],
            vec![20.0, 22.0, 60.0, 64.0],
        )
        .unwrap();
        let scaled = raw.with_data(vec![-1.0, -0.9, 0.9, 1.0]).unwrap();
        let p = profile_segments(&raw, &scaled, &[0, 0, 1, 1], 2);
        assert_eq!(p[0].size, 2);
        assert_eq!(p[1].features[0].median, 62.0);
        assert_eq!(p[0].name, "Low age");
        assert_eq!(p[1].name, "High age");
        let mut same = vec![p[0].clone(), p[0].clone()];
        name_segments(&mut same);
        assert_ne!(same[0].name, same[1].name);
    }
}
