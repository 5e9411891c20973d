//! Internal and external clustering validity indices with scikit-learn's definitions:
//! Calinski-Harabasz and Davies-Bouldin (from the data and one labelling), and mutual-information
//! agreement between two labellings — mutual information, adjusted (AMI, arithmetic
//! normalization) and normalized (NMI) variants, homogeneity, completeness and V-measure.
//! Parity with scikit-learn is tested on a committed fixture.

use statrs::function::gamma::ln_gamma;
use std::collections::HashMap;
use strata_core::FeatureMatrix;

/// Labels renumbered 0..k in order of first appearance, with k.
fn compact<T: Eq + std::hash::Hash>(labels: &[T]) -> (Vec<usize>, usize) {
    let mut ids: HashMap<&T, usize> = HashMap::new();
    let out = labels
        .iter()
        .map(|l| {
            let next = ids.len();
            *ids.entry(l).or_insert(next)
        })
        .collect();
    (out, ids.len())
}

/// Per-cluster means and sizes.
fn centroids(data: &FeatureMatrix, labels: &[usize], k: usize) -> (Vec<f64>, Vec<usize>) {
    let d = data.n_cols();
    let mut sums = vec![0.0; k * d];
    let mut counts = vec![0usize; k];
    for (i, &l) in labels.iter().enumerate() {
        counts[l] += 1;
        for (s, x) in sums[l * d..(l + 1) * d].iter_mut().zip(data.row(i)) {
            *s += x;
        }
    }
    for (c, &n) in counts.iter().enumerate() {
        sums[c * d..(c + 1) * d]
            .iter_mut()
            .for_each(|s| *s /= n as f64);
    }
    (sums, counts)
}

fn check_labels(n: usize, k: usize) -> Result<(), String> {
    if k < 2 || k >= n {
        return Err(format!(
            "{k} clusters among {n} rows: a validity index needs 2 ≤ clusters < rows"
        ));
    }
    Ok(())
}

/// A labelling prepared for the internal indices: compact labels, centroids and sizes.
struct Clustered {
    labels: Vec<usize>,
    k: usize,
    cent: Vec<f64>,
    counts: Vec<usize>,
}

fn clustered<L: Eq + std::hash::Hash>(
    data: &FeatureMatrix,
    labels: &[L],
) -> Result<Clustered, String> {
    let (labels, k) = compact(labels);
    check_labels(data.n_rows(), k)?;
    let (cent, counts) = centroids(data, &labels, k);
    Ok(Clustered {
        labels,
        k,
        cent,
        counts,
    })
}

/// Calinski-Harabasz index: between-cluster over within-cluster dispersion, each divided
/// by its degrees of freedom. Higher is better.
pub fn calinski_harabasz<L: Eq + std::hash::Hash>(
    data: &FeatureMatrix,
    labels: &[L],
) -> Result<f64, String> {
    Ok(ch(data, &clustered(data, labels)?))
}

/// Davies-Bouldin index: the mean over clusters of the worst ratio of summed within-cluster
/// scatter to centroid distance. Lower is better; 0 when every cluster is a point.
pub fn davies_bouldin<L: Eq + std::hash::Hash>(
    data: &FeatureMatrix,
    labels: &[L],
) -> Result<f64, String> {
    Ok(db(data, &clustered(data, labels)?))
}

/// Calinski-Harabasz and Davies-Bouldin of one labelling, sharing one pass for the centroids
/// (model selection scores every candidate with both).
pub fn internal_indices<L: Eq + std::hash::Hash>(
    data: &FeatureMatrix,
    labels: &[L],
) -> Result<(f64, f64), String> {
    let c = clustered(data, labels)?;
    Ok((ch(data, &c), db(data, &c)))
}

fn ch(data: &FeatureMatrix, c: &Clustered) -> f64 {
    let Clustered {
        labels,
        k,
        cent,
        counts,
    } = c;
    let (n, k) = (data.n_rows(), *k);
    let d = data.n_cols();
    let mut mean = vec![0.0; d];
    for i in 0..n {
        mean.iter_mut().zip(data.row(i)).for_each(|(m, x)| *m += x);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let extra: f64 = (0..k)
        .map(|c| {
            counts[c] as f64
                * cent[c * d..(c + 1) * d]
                    .iter()
                    .zip(&mean)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
        })
        .sum();
    let intra: f64 = labels
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            data.row(i)
                .iter()
                .zip(&cent[c * d..(c + 1) * d])
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
        })
        .sum();
    if intra == 0.0 {
        1.0
    } else {
        extra * (n - k) as f64 / (intra * (k - 1) as f64)
    }
}

fn db(data: &FeatureMatrix, c: &Clustered) -> f64 {
    let Clustered {
        labels,
        k,
        cent,
        counts,
    } = c;
    let k = *k;
    let d = data.n_cols();
    let dist = |a: &[f64], b: &[f64]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut scatter = vec![0.0; k];
    for (i, &c) in labels.iter().enumerate() {
        scatter[c] += dist(data.row(i), &cent[c * d..(c + 1) * d]);
    }
    for (s, &m) in scatter.iter_mut().zip(counts) {
        *s /= m as f64;
    }
    let centre = |c: usize| &cent[c * d..(c + 1) * d];
    let all_close = |v: &[f64]| v.iter().all(|x| x.abs() <= 1e-8);
    let mut pair = Vec::with_capacity(k * k);
    for a in 0..k {
        for b in 0..k {
            pair.push(dist(centre(a), centre(b)));
        }
    }
    if all_close(&scatter) || all_close(&pair) {
        return 0.0;
    }
    let total: f64 = (0..k)
        .map(|a| {
            (0..k)
                .filter(|&b| b != a)
                .map(|b| {
                    let m = pair[a * k + b];
                    if m == 0.0 {
                        0.0
                    } else {
                        (scatter[a] + scatter[b]) / m
                    }
                })
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .sum();
    total / k as f64
}

/// The contingency table of two labellings: cell counts (sparse), row and column sums.
pub(crate) struct Contingency {
    n: usize,
    cells: Vec<usize>,
    cell_rows: Vec<usize>,
    cell_cols: Vec<usize>,
    rows: Vec<usize>,
    cols: Vec<usize>,
}

impl Contingency {
    pub(crate) fn new<A: Eq + std::hash::Hash, B: Eq + std::hash::Hash>(
        a: &[A],
        b: &[B],
    ) -> Result<Self, String> {
        if a.len() != b.len() {
            return Err(format!(
                "the labellings cover {} and {} rows",
                a.len(),
                b.len()
            ));
        }
        let (la, ka) = compact(a);
        let (lb, kb) = compact(b);
        let mut cell: HashMap<(usize, usize), usize> = HashMap::new();
        let mut rows = vec![0; ka];
        let mut cols = vec![0; kb];
        for (&x, &y) in la.iter().zip(&lb) {
            *cell.entry((x, y)).or_default() += 1;
            rows[x] += 1;
            cols[y] += 1;
        }
        let mut entries: Vec<((usize, usize), usize)> = cell.into_iter().collect();
        entries.sort_unstable();
        Ok(Self {
            n: a.len(),
            cells: entries.iter().map(|e| e.1).collect(),
            cell_rows: entries.iter().map(|e| e.0.0).collect(),
            cell_cols: entries.iter().map(|e| e.0.1).collect(),
            rows,
            cols,
        })
    }

    /// Adjusted Rand index from the pair counts of cells, rows and columns.
    pub(crate) fn adjusted_rand(&self) -> f64 {
        let comb2 = |c: usize| (c as f64) * (c as f64 - 1.0) / 2.0;
        let index: f64 = self.cells.iter().map(|&c| comb2(c)).sum();
        let sum_a: f64 = self.rows.iter().map(|&c| comb2(c)).sum();
        let sum_b: f64 = self.cols.iter().map(|&c| comb2(c)).sum();
        let total = comb2(self.n);
        if total == 0.0 {
            return 1.0;
        }
        let expected = sum_a * sum_b / total;
        let max = (sum_a + sum_b) / 2.0;
        if (max - expected).abs() < f64::EPSILON {
            return 1.0;
        }
        (index - expected) / (max - expected)
    }

    fn mutual_information(&self) -> f64 {
        if self.rows.len() == 1 || self.cols.len() == 1 {
            return 0.0;
        }
        let n = self.n as f64;
        let mi: f64 = self
            .cells
            .iter()
            .zip(self.cell_rows.iter().zip(&self.cell_cols))
            .map(|(&c, (&r, &k))| {
                let p = c as f64 / n;
                let outer = (self.rows[r] as f64) * (self.cols[k] as f64);
                let v = p * ((c as f64).ln() - n.ln()) + p * (-outer.ln() + n.ln() + n.ln());
                if v.abs() < f64::EPSILON { 0.0 } else { v }
            })
            .sum();
        mi.max(0.0)
    }

    /// E[MI] under the permutation model with fixed marginals (hypergeometric cells).
    fn expected_mutual_information(&self) -> f64 {
        if self.rows.len() == 1 || self.cols.len() == 1 {
            return 0.0;
        }
        let n = self.n as f64;
        let ln_n1 = ln_gamma(n + 1.0);
        let mut emi = 0.0;
        for &a in &self.rows {
            let af = a as f64;
            let gln_a = ln_gamma(af + 1.0) + ln_gamma(n - af + 1.0);
            for &b in &self.cols {
                let bf = b as f64;
                let gln_ab = gln_a + ln_gamma(bf + 1.0) + ln_gamma(n - bf + 1.0) - ln_n1;
                let start = (a + b).saturating_sub(self.n).max(1);
                for nij in start..=a.min(b) {
                    let x = nij as f64;
                    let term2 = n.ln() + x.ln() - af.ln() - bf.ln();
                    let gln = gln_ab
                        - ln_gamma(x + 1.0)
                        - ln_gamma(af - x + 1.0)
                        - ln_gamma(bf - x + 1.0)
                        - ln_gamma(n - af - bf + x + 1.0);
                    emi += x / n * term2 * gln.exp();
                }
            }
        }
        emi
    }
}

fn entropy(counts: &[usize]) -> f64 {
    let nz: Vec<f64> = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| c as f64)
        .collect();
    if nz.len() <= 1 {
        return 0.0;
    }
    let total: f64 = nz.iter().sum();
    -nz.iter()
        .map(|&c| (c / total) * (c.ln() - total.ln()))
        .sum::<f64>()
}

/// Agreement between a reference labelling and a clustering.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Agreement {
    pub adjusted_rand: f64,
    pub mutual_information: f64,
    /// Adjusted for chance, arithmetic-mean normalization.
    pub adjusted_mutual_information: f64,
    /// Arithmetic-mean normalization.
    pub normalized_mutual_information: f64,
    pub homogeneity: f64,
    pub completeness: f64,
    pub v_measure: f64,
}

/// Every agreement score between `truth` and `predicted` (labels of the same rows).
pub fn agreement<A: Eq + std::hash::Hash, B: Eq + std::hash::Hash>(
    truth: &[A],
    predicted: &[B],
) -> Result<Agreement, String> {
    let t = Contingency::new(truth, predicted)?;
    let mi = t.mutual_information();
    let (h_true, h_pred) = (entropy(&t.rows), entropy(&t.cols));
    let trivial = t.rows.len() == t.cols.len() && t.rows.len() <= 1;
    let mean = (h_true + h_pred) / 2.0;
    let ami = if trivial {
        1.0
    } else {
        let emi = t.expected_mutual_information();
        let mut denominator = mean - emi;
        denominator = if denominator < 0.0 {
            denominator.min(-f64::EPSILON)
        } else {
            denominator.max(f64::EPSILON)
        };
        (mi - emi) / denominator
    };
    let nmi = if trivial {
        1.0
    } else {
        mi / mean.max(f64::EPSILON)
    };
    let homogeneity = if h_true == 0.0 { 1.0 } else { mi / h_true };
    let completeness = if h_pred == 0.0 { 1.0 } else { mi / h_pred };
    let v_measure = if homogeneity + completeness == 0.0 {
        0.0
    } else {
        2.0 * homogeneity * completeness / (homogeneity + completeness)
    };
    Ok(Agreement {
        adjusted_rand: t.adjusted_rand(),
        mutual_information: mi,
        adjusted_mutual_information: ami,
        normalized_mutual_information: nmi,
        homogeneity,
        completeness,
        v_measure,
    })
}
