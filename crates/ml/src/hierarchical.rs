//! Agglomerative hierarchical clustering — Ward, complete, average and single linkage — with
//! the dendrogram in SciPy's linkage convention, and cuts into k clusters.
//!
//! - **Ward** runs the nearest-neighbour chain on cluster centroids and sizes: the Ward
//!   distance of two clusters is a function of those alone, so memory is O(n·d), not the
//!   O(n²) distance matrix (scikit-learn: about 3 GB at 20,000 rows). Each neighbour search is
//!   a parallel scan over the active clusters.
//! - **Complete** and **average** run the same chain on a condensed distance matrix updated by
//!   the Lance-Williams formulas (n(n−1)/2 values: refused above `MAX_MATRIX_ROWS` rows).
//! - **Single** linkage is the minimum spanning tree (Prim, O(n) memory), its edges sorted.
//!
//! Heights: Euclidean for single/complete/average; for Ward √(2·|A||B|/(|A|+|B|))·‖c_A − c_B‖,
//! which is SciPy's. Ties are broken by the smallest cluster index, so the tree does not
//! depend on the thread count.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use strata_core::{DisjointSets, FeatureMatrix};

/// Largest row count for complete and average linkage (their distance matrix is
/// n(n−1)/2 × 8 bytes: 1.6 GB at 20,000 rows).
pub const MAX_MATRIX_ROWS: usize = 25_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Linkage {
    Ward,
    Complete,
    Average,
    Single,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HierarchicalError {
    #[error("hierarchical clustering needs at least 2 rows, got {0}")]
    TooFewRows(usize),
    #[error(
        "{linkage:?} linkage keeps all pairwise distances: {n} rows is more than {max}; use ward or single linkage, or a sample"
    )]
    TooManyRows {
        linkage: Linkage,
        n: usize,
        max: usize,
    },
    #[error("cannot cut {n} rows into k = {k} clusters (1 ≤ k ≤ rows)")]
    BadK { k: usize, n: usize },
    #[error(transparent)]
    Data(#[from] strata_core::MatrixError),
}

/// One merge: clusters `a` < `b` (rows are 0..n, the cluster made by merge i is n + i), the
/// height, and the size of the new cluster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Merge {
    pub a: usize,
    pub b: usize,
    pub height: f64,
    pub size: usize,
}

/// The whole merge tree, merges in increasing height.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dendrogram {
    pub n: usize,
    pub linkage: Linkage,
    pub merges: Vec<Merge>,
}

/// A merge between two row-representative slots, before relabelling.
struct RawMerge {
    a: usize,
    b: usize,
    height: f64,
}

impl Dendrogram {
    pub fn fit(data: &FeatureMatrix, linkage: Linkage) -> Result<Self, HierarchicalError> {
        let n = data.n_rows();
        if n < 2 {
            return Err(HierarchicalError::TooFewRows(n));
        }
        data.check_varying()?;
        let raw = match linkage {
            Linkage::Ward => ward_chain(data),
            Linkage::Single => single_mst(data),
            Linkage::Complete | Linkage::Average => {
                if n > MAX_MATRIX_ROWS {
                    return Err(HierarchicalError::TooManyRows {
                        linkage,
                        n,
                        max: MAX_MATRIX_ROWS,
                    });
                }
                matrix_chain(data, linkage)
            }
        };
        Ok(Self {
            n,
            linkage,
            merges: relabel(n, raw),
        })
    }

    /// Labels of the k clusters left after the first n − k merges, numbered by their
    /// smallest row.
    pub fn cut(&self, k: usize) -> Result<Vec<u32>, HierarchicalError> {
        let n = self.n;
        if k == 0 || k > n {
            return Err(HierarchicalError::BadK { k, n });
        }
        // Cluster id → one of its rows.
        let mut row_of: Vec<usize> = (0..n).collect();
        let mut sets = DisjointSets::new(n);
        for m in &self.merges[..n - k] {
            let (ra, rb) = (row_of[m.a], row_of[m.b]);
            sets.union(ra, rb);
            row_of.push(ra.min(rb));
        }
        let mut id = vec![u32::MAX; n];
        let mut next = 0;
        Ok((0..n)
            .map(|i| {
                let r = sets.find(i);
                if id[r] == u32::MAX {
                    id[r] = next;
                    next += 1;
                }
                id[r]
            })
            .collect())
    }

    pub fn heights(&self) -> Vec<f64> {
        self.merges.iter().map(|m| m.height).collect()
    }
}

/// Sorts merges by height (stable: equal heights keep the order they were found in) and
/// renames slots to SciPy's cluster ids.
fn relabel(n: usize, mut raw: Vec<RawMerge>) -> Vec<Merge> {
    raw.sort_by(|x, y| x.height.total_cmp(&y.height));
    let mut sets = DisjointSets::new(n);
    // Current cluster id and size of each set, by its root.
    let mut cluster = (0..n).collect::<Vec<usize>>();
    let mut size = vec![1usize; n];
    raw.iter()
        .enumerate()
        .map(|(i, m)| {
            let (ra, rb) = (sets.find(m.a), sets.find(m.b));
            let (ca, cb) = (cluster[ra], cluster[rb]);
            let s = size[ra] + size[rb];
            sets.union(ra, rb);
            let root = sets.find(ra);
            cluster[root] = n + i;
            size[root] = s;
            Merge {
                a: ca.min(cb),
                b: ca.max(cb),
                height: m.height,
                size: s,
            }
        })
        .collect()
}

/// The nearest active cluster to `a` by `dist`, ties to the smallest slot — except that the
/// chain's previous cluster wins a tie (the chain must not cycle).
fn nearest(
    active: &[usize],
    a: usize,
    previous: Option<usize>,
    dist: impl Fn(usize) -> f64 + Sync,
) -> (usize, f64) {
    let best = active
        .par_chunks(2048)
        .map(|chunk| {
            let mut best = (f64::INFINITY, usize::MAX);
            for &b in chunk {
                if b != a {
                    let v = dist(b);
                    if v < best.0 || (v == best.0 && b < best.1) {
                        best = (v, b);
                    }
                }
            }
            best
        })
        .reduce(
            || (f64::INFINITY, usize::MAX),
            |x, y| {
                if y.0 < x.0 || (y.0 == x.0 && y.1 < x.1) {
                    y
                } else {
                    x
                }
            },
        );
    match previous {
        Some(p) if dist(p) <= best.0 => (p, dist(p)),
        _ => (best.1, best.0),
    }
}

/// Ward by the nearest-neighbour chain on centroids.
fn ward_chain(data: &FeatureMatrix) -> Vec<RawMerge> {
    let (n, d) = (data.n_rows(), data.n_cols());
    let mut centroid = data.data().to_vec();
    let mut size = vec![1.0f64; n];
    let mut active: Vec<usize> = (0..n).collect();
    let mut position: Vec<usize> = (0..n).collect();
    let mut chain: Vec<usize> = Vec::new();
    let mut merges = Vec::with_capacity(n - 1);
    // Δ(A, B) = |A||B|/(|A|+|B|)·‖c_A − c_B‖²: the increase in within-cluster sum of squares.
    let delta = |centroid: &[f64], size: &[f64], a: usize, b: usize| -> f64 {
        let (ca, cb) = (&centroid[a * d..(a + 1) * d], &centroid[b * d..(b + 1) * d]);
        let s: f64 = ca.iter().zip(cb).map(|(x, y)| (x - y) * (x - y)).sum();
        size[a] * size[b] / (size[a] + size[b]) * s
    };
    while active.len() > 1 {
        if chain.is_empty() {
            chain.push(*active.iter().min().unwrap_or(&0));
        }
        let a = chain[chain.len() - 1];
        let previous = (chain.len() >= 2).then(|| chain[chain.len() - 2]);
        let (b, dab) = nearest(&active, a, previous, |b| delta(&centroid, &size, a, b));
        if Some(b) == previous {
            chain.truncate(chain.len() - 2);
            let (keep, gone) = (a.min(b), a.max(b));
            merges.push(RawMerge {
                a,
                b,
                height: (2.0 * dab).sqrt(),
            });
            let total = size[keep] + size[gone];
            for j in 0..d {
                centroid[keep * d + j] = (size[keep] * centroid[keep * d + j]
                    + size[gone] * centroid[gone * d + j])
                    / total;
            }
            size[keep] = total;
            // Remove `gone` from the active list.
            let p = position[gone];
            active.swap_remove(p);
            if p < active.len() {
                position[active[p]] = p;
            }
        } else {
            chain.push(b);
        }
    }
    merges
}

fn condensed(n: usize, i: usize, j: usize) -> usize {
    let (i, j) = if i < j { (i, j) } else { (j, i) };
    n * i - i * (i + 1) / 2 + (j - i - 1)
}

/// Complete or average linkage by the nearest-neighbour chain on a condensed matrix.
fn matrix_chain(data: &FeatureMatrix, linkage: Linkage) -> Vec<RawMerge> {
    let n = data.n_rows();
    let mut dist = vec![0.0f64; n * (n - 1) / 2];
    // Row i of the condensed matrix holds d(i, j) for j > i.
    let mut rows: Vec<(usize, &mut [f64])> = Vec::with_capacity(n);
    let mut rest = &mut dist[..];
    for i in 0..n - 1 {
        let (head, tail) = rest.split_at_mut(n - 1 - i);
        rows.push((i, head));
        rest = tail;
    }
    rows.into_par_iter().for_each(|(i, row)| {
        let x = data.row(i);
        for (t, v) in row.iter_mut().enumerate() {
            *v = x
                .iter()
                .zip(data.row(i + 1 + t))
                .map(|(p, q)| (p - q) * (p - q))
                .sum::<f64>()
                .sqrt();
        }
    });
    let mut size = vec![1.0f64; n];
    let mut active: Vec<usize> = (0..n).collect();
    let mut position: Vec<usize> = (0..n).collect();
    let mut chain: Vec<usize> = Vec::new();
    let mut merges = Vec::with_capacity(n - 1);
    while active.len() > 1 {
        if chain.is_empty() {
            chain.push(*active.iter().min().unwrap_or(&0));
        }
        let a = chain[chain.len() - 1];
        let previous = (chain.len() >= 2).then(|| chain[chain.len() - 2]);
        let (b, dab) = nearest(&active, a, previous, |b| dist[condensed(n, a, b)]);
        if Some(b) == previous {
            chain.truncate(chain.len() - 2);
            let (keep, gone) = (a.min(b), a.max(b));
            merges.push(RawMerge { a, b, height: dab });
            let p = position[gone];
            active.swap_remove(p);
            if p < active.len() {
                position[active[p]] = p;
            }
            let (sk, sg) = (size[keep], size[gone]);
            for &k in &active {
                if k != keep {
                    let (dk, dg) = (dist[condensed(n, k, keep)], dist[condensed(n, k, gone)]);
                    dist[condensed(n, k, keep)] = match linkage {
                        Linkage::Complete => dk.max(dg),
                        _ => (sk * dk + sg * dg) / (sk + sg),
                    };
                }
            }
            size[keep] = sk + sg;
        } else {
            chain.push(b);
        }
    }
    merges
}

/// Single linkage: Prim's minimum spanning tree over the rows.
fn single_mst(data: &FeatureMatrix) -> Vec<RawMerge> {
    let n = data.n_rows();
    let mut in_tree = vec![false; n];
    let mut best = vec![(f64::INFINITY, 0usize); n];
    let mut current = 0;
    in_tree[0] = true;
    let mut merges = Vec::with_capacity(n - 1);
    for _ in 1..n {
        let row = data.row(current);
        best.par_iter_mut().enumerate().for_each(|(j, b)| {
            if !in_tree[j] {
                let v = row
                    .iter()
                    .zip(data.row(j))
                    .map(|(x, y)| (x - y) * (x - y))
                    .sum::<f64>()
                    .sqrt();
                if v < b.0 {
                    *b = (v, current);
                }
            }
        });
        let (next, (h, from)) = best.iter().enumerate().filter(|(j, _)| !in_tree[*j]).fold(
            (usize::MAX, (f64::INFINITY, 0)),
            |acc, (j, &b)| {
                if b.0 < acc.1.0 { (j, b) } else { acc }
            },
        );
        in_tree[next] = true;
        merges.push(RawMerge {
            a: from,
            b: next,
            height: h,
        });
        current = next;
    }
    merges
}
