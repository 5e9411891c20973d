//! k-means: greedy k-means++ (or random) initialisation, restarts, and Lloyd iterations —
//! computed directly, or with Hamerly's distance bounds (the same iterations; by default from
//! 17 features on, where they pay).
//!
//! Our own kernel rather than linfa's: linfa 0.8 updates centroids row by row on one thread,
//! and this loop is 2.1× faster for the same iterations and inertia (`benches/kmeans.rs`,
//! figures in BENCHMARKS.md). Rows are processed in fixed-size chunks whose partial sums are
//! reduced in chunk order, so results are bit-identical for any number of threads.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use strata_core::{FeatureMatrix, Fit, ParamError, Predict};

const CHUNK_ROWS: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KMeansInit {
    /// Greedy k-means++ with `2 + ln k` candidate centres per step.
    KMeansPlusPlus,
    /// `k` distinct rows drawn uniformly.
    Random,
}

/// How Lloyd's iterations are computed. Every choice gives the same centres and labels (up
/// to which of two exactly equidistant centres a row keeps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KMeansAlgorithm {
    /// Every row against every centre, every iteration.
    Lloyd,
    /// Hamerly's bounds: per row an upper bound on the distance to its centre and a lower
    /// bound on the distance to any other; a row whose bounds prove it cannot move is not
    /// looked at, and centre sums are updated only for the rows that move. While more than
    /// an eighth of the rows move, an iteration is a complete pass instead (cheaper then).
    Hamerly,
    /// The default: Lloyd up to [`HAMERLY_FROM_DIMS`] − 1 features, Hamerly from there. At
    /// 1M rows, k = 8 on 2 cores (`cluster_bench kmeans`, AMD EPYC): d = 8 Lloyd 6.7–7.6 ms
    /// vs Hamerly 8.6–9.4 ms per iteration, d = 16 a tie (9.7 vs 9.3 ms), d = 24 Lloyd
    /// 15 ms vs Hamerly 12 ms, d = 32 Lloyd 17–18 ms vs Hamerly 13–14 ms — the bounds cost a
    /// fixed amount per row, the distances they save grow with d.
    #[default]
    Auto,
}

/// Features from which [`KMeansAlgorithm::Auto`] uses Hamerly's bounds.
pub const HAMERLY_FROM_DIMS: usize = 17;

/// Unchecked k-means parameters; call [`KMeansParams::check`] before fitting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansParams {
    pub k: usize,
    /// Independent runs; the one with the lowest inertia wins.
    pub n_init: usize,
    pub max_iter: usize,
    /// Convergence when the squared centre shift is below `tol` times the mean feature
    /// variance (scikit-learn's definition).
    pub tol: f64,
    pub seed: u64,
    pub init: KMeansInit,
    #[serde(default)]
    pub algorithm: KMeansAlgorithm,
}

impl KMeansParams {
    pub fn new(k: usize) -> Self {
        Self {
            k,
            n_init: 10,
            max_iter: 300,
            tol: 1e-4,
            seed: 0,
            init: KMeansInit::KMeansPlusPlus,
            algorithm: KMeansAlgorithm::Auto,
        }
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn n_init(mut self, n_init: usize) -> Self {
        self.n_init = n_init;
        self
    }

    pub fn max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }

    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    pub fn init(mut self, init: KMeansInit) -> Self {
        self.init = init;
        self
    }

    pub fn algorithm(mut self, algorithm: KMeansAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    pub fn check(self) -> Result<KMeansValidParams, ParamError> {
        if self.k == 0 {
            return Err(ParamError::new("k", "must be at least 1"));
        }
        if self.n_init == 0 {
            return Err(ParamError::new("n_init", "must be at least 1"));
        }
        if self.max_iter == 0 {
            return Err(ParamError::new("max_iter", "must be at least 1"));
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(ParamError::new("tol", "must be a finite number ≥ 0"));
        }
        Ok(KMeansValidParams(self))
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum KMeansError {
    #[error("k-means needs at least k = {k} rows, got {n}")]
    TooFewRows { k: usize, n: usize },
    #[error("initial centres have {got} values, expected k × d = {expected}")]
    InitShape { expected: usize, got: usize },
    #[error(transparent)]
    Data(#[from] strata_core::MatrixError),
}

/// Checked parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansValidParams(KMeansParams);

/// A fitted k-means model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeans {
    k: usize,
    d: usize,
    /// Row-major `k × d`.
    centroids: Vec<f64>,
    inertia: f64,
    n_iter: usize,
    #[serde(skip)]
    labels: Vec<u32>,
}

impl KMeans {
    pub fn k(&self) -> usize {
        self.k
    }

    pub fn centroids(&self) -> &[f64] {
        &self.centroids
    }

    pub fn centroid(&self, c: usize) -> &[f64] {
        &self.centroids[c * self.d..(c + 1) * self.d]
    }

    /// Sum of squared distances of the training rows to their centres.
    pub fn inertia(&self) -> f64 {
        self.inertia
    }

    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    /// Labels of the training rows (empty for a model loaded from disk).
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Builds a model from saved centres (for assignment only).
    pub fn from_centroids(k: usize, d: usize, centroids: Vec<f64>) -> Result<Self, KMeansError> {
        if centroids.len() != k * d {
            return Err(KMeansError::InitShape {
                expected: k * d,
                got: centroids.len(),
            });
        }
        Ok(Self {
            k,
            d,
            centroids,
            inertia: f64::NAN,
            n_iter: 0,
            labels: Vec::new(),
        })
    }

    /// Permutes cluster ids: new id `i` is old id `order[i]`.
    pub fn relabel(&mut self, order: &[usize]) {
        let d = self.d;
        self.centroids = order
            .iter()
            .flat_map(|&c| self.centroids[c * d..(c + 1) * d].to_vec())
            .collect();
        let mut inverse = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            inverse[old] = new as u32;
        }
        for l in &mut self.labels {
            *l = inverse[*l as usize];
        }
    }
}

impl Predict for KMeans {
    type Output = Vec<u32>;

    fn predict(&self, data: &FeatureMatrix) -> Vec<u32> {
        assign(data.data(), self.d, &self.centroids, self.k, false).labels
    }
}

#[inline(always)]
fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Centres in blocks of [`LANES`], transposed within a block: `ct[(b·d + j)·LANES + t]` is
/// coordinate j of centre b·LANES + t, padded with +∞ (never nearest). The distance loop then
/// keeps one block's accumulators in registers and vectorizes for any k and d (looping centre
/// by centre over a run-time d does not): a Lloyd iteration at 1M × 8, k = 8 went from
/// 27.6 ms to the figure in BENCHMARKS.md. Each distance still sums its d terms in order, as
/// `dist2` does, so results are unchanged.
const LANES: usize = 8;

fn transpose(centroids: &[f64], k: usize, d: usize) -> Vec<f64> {
    let blocks = k.div_ceil(LANES);
    let mut ct = vec![f64::INFINITY; blocks * d * LANES];
    for c in 0..k {
        let (b, t) = (c / LANES, c % LANES);
        for j in 0..d {
            ct[(b * d + j) * LANES + t] = centroids[c * d + j];
        }
    }
    ct
}

/// Squared distances from `row` to the [`LANES`] centres of one block of `ct` (from
/// [`transpose`]; padding centres are +∞ away).
#[inline(always)]
fn block_distances(row: &[f64], block: &[f64]) -> [f64; LANES] {
    let mut acc = [0.0f64; LANES];
    for (&xj, col) in row.iter().zip(block.chunks_exact(LANES)) {
        for (a, &c) in acc.iter_mut().zip(col) {
            let t = xj - c;
            *a += t * t;
        }
    }
    acc
}

/// The nearest centre (smallest index on ties) and its squared distance. The argmin runs on
/// each block's accumulators while they are still in registers.
#[inline(always)]
fn nearest(row: &[f64], ct: &[f64]) -> (u32, f64) {
    let d = row.len();
    let mut found = (0u32, f64::INFINITY);
    for (b, block) in ct.chunks_exact(d * LANES).enumerate() {
        keep_nearest(&mut found, b, &block_distances(row, block));
    }
    found
}

/// Folds one block's squared distances into (nearest index, its distance); the smallest
/// index wins ties. Selects, not branches: on overlapping clusters which centre wins is
/// unpredictable, and mispredicted branches here cost more than the distances themselves.
#[inline(always)]
fn keep_nearest((best, best_d): &mut (u32, f64), block: usize, distances: &[f64]) {
    for (t, &dd) in distances.iter().enumerate() {
        let closer = dd < *best_d;
        *best = if closer {
            (block * LANES + t) as u32
        } else {
            *best
        };
        *best_d = if closer { dd } else { *best_d };
    }
}

/// Rows whose distances [`nearest_group`] computes together.
const GROUP: usize = 4;

/// [`nearest`] for [`GROUP`] consecutive rows at once, with the dispatched vectors
/// (`S::F64_LANES` divides [`LANES`]). One row's distance to a block is a chain of d
/// dependent additions; interleaving four rows' chains lets them overlap instead of each
/// waiting on the previous add. Each distance still sums its terms in the same order, so the
/// results are identical to [`nearest`]'s. At 1M × 8, k = 8 on 2 cores (AVX2, AMD EPYC) this
/// took a Lloyd iteration from 8.3–8.5 to 6.6–6.9 ms. Tried there and dropped: AVX-512
/// vectors (pulp's `x86-v4`: a pass 9.2 vs 7.6 ms in a scratch harness), a vector
/// min-reduction instead of the per-lane selects (slower), groups of 2, 3 or 6 rows (4 was
/// best), and the same grouping for Hamerly's re-examined rows (no gain at d = 32, slower
/// at d = 8).
#[inline(always)]
fn nearest_group<S: pulp::Simd>(
    simd: S,
    rows: &[f64],
    d: usize,
    ct: &[f64],
) -> [(u32, f64); GROUP] {
    let parts = LANES / S::F64_LANES;
    let mut found = [(0u32, f64::INFINITY); GROUP];
    for (b, block) in ct.chunks_exact(d * LANES).enumerate() {
        let acc = group_distances(simd, block, |r, j| rows[r * d + j]);
        for (acc, found) in acc.iter().zip(found.iter_mut()) {
            keep_nearest(found, b, bytemuck::cast_slice(&acc[..parts]));
        }
    }
    found
}

/// Squared distances from each of [`GROUP`] rows to the [`LANES`] centres of one block of
/// `ct`, as `LANES / S::F64_LANES` vectors per row (only those are set), summed in the same
/// order as [`block_distances`]. `x(r, j)` is coordinate j of the group's row r.
#[inline(always)]
fn group_distances<S: pulp::Simd>(
    simd: S,
    block: &[f64],
    x: impl Fn(usize, usize) -> f64,
) -> [[S::f64s; LANES]; GROUP] {
    let parts = LANES / S::F64_LANES;
    let mut acc = [[simd.splat_f64s(0.0); LANES]; GROUP];
    for (j, col) in block.chunks_exact(LANES).enumerate() {
        let (cols, _) = S::as_simd_f64s(col);
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = simd.splat_f64s(x(r, j));
            for (a, &c) in acc[..parts].iter_mut().zip(cols) {
                let t = simd.sub_f64s(x, c);
                *a = simd.add_f64s(*a, simd.mul_f64s(t, t));
            }
        }
    }
    acc
}

/// k-means++'s scoring of candidate centres over one chunk: per candidate, the sum over
/// rows (in row order) of min(D², squared distance to the candidate), through [`group_distances`]
/// with the candidates as the centres of `ct`.
struct ScoreCandidates<'a> {
    rows: &'a [f64],
    closest: &'a [f64],
    ct: &'a [f64],
    d: usize,
}

impl pulp::WithSimd for ScoreCandidates<'_> {
    type Output = Vec<f64>;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> Vec<f64> {
        let d = self.d;
        let parts = LANES / S::F64_LANES;
        let blocks = self.ct.len() / (d * LANES);
        let mut potentials = Vec::with_capacity(blocks * LANES);
        for block in self.ct.chunks_exact(d * LANES) {
            let mut sum = [simd.splat_f64s(0.0); LANES];
            let mut groups = self.rows.chunks_exact(GROUP * d);
            let mut closest = self.closest.chunks_exact(GROUP);
            for (group, close) in (&mut groups).zip(&mut closest) {
                let acc = group_distances(simd, block, |r, j| group[r * d + j]);
                for (acc, &c) in acc.iter().zip(close) {
                    let c = simd.splat_f64s(c);
                    for (s, &a) in sum[..parts].iter_mut().zip(acc) {
                        *s = simd.add_f64s(*s, simd.min_f64s(c, a));
                    }
                }
            }
            let sum: &mut [f64] = bytemuck::cast_slice_mut(&mut sum[..parts]);
            for (row, &c) in groups.remainder().chunks_exact(d).zip(closest.remainder()) {
                for (s, dd) in sum.iter_mut().zip(block_distances(row, block)) {
                    *s += c.min(dd);
                }
            }
            potentials.extend_from_slice(sum);
        }
        potentials
    }
}

/// Result of one assignment pass.
struct Assignment {
    labels: Vec<u32>,
    distances: Vec<f64>,
    inertia: f64,
}

/// One chunk of the assignment pass. Run through `pulp::Arch::dispatch`, so the loops are
/// compiled once more with AVX2 and chosen at run time on CPUs that have it (the portable
/// build targets SSE2 only); no FMA is used, so both versions give identical results.
/// Without `labels` and `dists` (Lloyd's iterations need only the sums) the pass only reads
/// the data: writing 12 bytes per row into vectors allocated afresh each iteration cost a
/// Lloyd iteration at 1M × 8 about a quarter of its time (11.6–12.4 → 9.0 ms).
struct AssignRows<'a> {
    rows: &'a [f64],
    labels: Option<&'a mut [u32]>,
    dists: Option<&'a mut [f64]>,
    ct: &'a [f64],
    k: usize,
    d: usize,
}

impl pulp::WithSimd for AssignRows<'_> {
    type Output = (Vec<f64>, Vec<u64>, f64);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> Self::Output {
        let (k, d) = (self.k, self.d);
        let mut sums = vec![0.0; k * d];
        let mut counts = vec![0u64; k];
        let mut inertia = 0.0;
        let (mut labels, mut dists) = (self.labels, self.dists);
        let mut record = |i: usize, row: &[f64], c: u32, dd: f64| {
            if let Some(l) = labels.as_deref_mut() {
                l[i] = c;
            }
            if let Some(t) = dists.as_deref_mut() {
                t[i] = dd;
            }
            inertia += dd;
            counts[c as usize] += 1;
            for (s, x) in sums[c as usize * d..(c as usize + 1) * d]
                .iter_mut()
                .zip(row)
            {
                *s += x;
            }
        };
        let mut groups = self.rows.chunks_exact(GROUP * d);
        let mut i = 0;
        for group in &mut groups {
            let found = nearest_group(simd, group, d, self.ct);
            for (row, (c, dd)) in group.chunks_exact(d).zip(found) {
                record(i, row, c, dd);
                i += 1;
            }
        }
        for row in groups.remainder().chunks_exact(d) {
            let (c, dd) = nearest(row, self.ct);
            record(i, row, c, dd);
            i += 1;
        }
        (sums, counts, inertia)
    }
}

/// Assigns every row to its nearest centre and accumulates per-cluster sums; with
/// `distances`, also keeps each row's squared distance to its centre (else empty).
fn assign(data: &[f64], d: usize, centroids: &[f64], k: usize, distances: bool) -> Assignment {
    let n = data.len() / d;
    let mut labels = vec![0u32; n];
    let mut distances = vec![0.0; if distances { n } else { 0 }];
    let ct = transpose(centroids, k, d);
    let arch = pulp::Arch::new();
    let run = |rows: &[f64], labels: &mut [u32], dists: Option<&mut [f64]>| {
        arch.dispatch(AssignRows {
            rows,
            labels: Some(labels),
            dists,
            ct: &ct,
            k,
            d,
        })
    };
    let chunks = data
        .par_chunks(CHUNK_ROWS * d)
        .zip(labels.par_chunks_mut(CHUNK_ROWS));
    let partials: Vec<(Vec<f64>, Vec<u64>, f64)> = if distances.is_empty() {
        chunks
            .map(|(rows, labels)| run(rows, labels, None))
            .collect()
    } else {
        chunks
            .zip(distances.par_chunks_mut(CHUNK_ROWS))
            .map(|((rows, labels), dists)| run(rows, labels, Some(dists)))
            .collect()
    };
    let (_, _, inertia) = reduce_partials(partials, k, d);
    Assignment {
        labels,
        distances,
        inertia,
    }
}

/// One Lloyd step's statistics (sums, counts, inertia) without labelling the rows.
fn assign_stats(data: &[f64], d: usize, centroids: &[f64], k: usize) -> (Vec<f64>, Vec<u64>, f64) {
    let ct = transpose(centroids, k, d);
    let arch = pulp::Arch::new();
    let partials: Vec<(Vec<f64>, Vec<u64>, f64)> = data
        .par_chunks(CHUNK_ROWS * d)
        .map(|rows| {
            arch.dispatch(AssignRows {
                rows,
                labels: None,
                dists: None,
                ct: &ct,
                k,
                d,
            })
        })
        .collect();
    reduce_partials(partials, k, d)
}

/// Adds one chunk's per-cluster sums and counts (or their changes) to the totals.
fn add_into<C: Copy + std::ops::AddAssign>(sums: &mut [f64], counts: &mut [C], s: &[f64], c: &[C]) {
    sums.iter_mut().zip(s).for_each(|(a, b)| *a += b);
    counts.iter_mut().zip(c).for_each(|(a, &b)| *a += b);
}

/// Chunk partials summed in chunk order (the same result on any number of threads).
fn reduce_partials(
    partials: Vec<(Vec<f64>, Vec<u64>, f64)>,
    k: usize,
    d: usize,
) -> (Vec<f64>, Vec<u64>, f64) {
    let mut sums = vec![0.0; k * d];
    let mut counts = vec![0u64; k];
    let mut inertia = 0.0;
    for (s, c, i) in partials {
        add_into(&mut sums, &mut counts, &s, &c);
        inertia += i;
    }
    (sums, counts, inertia)
}

/// Sum over rows of `f(row_index, row)`, reduced in a thread-count independent order.
fn ordered_sum(data: &[f64], d: usize, f: impl Fn(usize, &[f64]) -> f64 + Sync) -> f64 {
    let parts: Vec<f64> = data
        .par_chunks(CHUNK_ROWS * d)
        .enumerate()
        .map(|(chunk, rows)| {
            rows.chunks_exact(d)
                .enumerate()
                .map(|(i, r)| f(chunk * CHUNK_ROWS + i, r))
                .sum()
        })
        .collect();
    parts.iter().sum()
}

fn init_plus_plus(data: &[f64], d: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let n = data.len() / d;
    let row = |i: usize| &data[i * d..(i + 1) * d];
    let trials = 2 + (k as f64).ln().floor() as usize;
    let arch = pulp::Arch::new();
    let first = rng.random_range(0..n);
    let mut centroids = row(first).to_vec();
    let mut closest = vec![0.0; n];
    // D² of every row to its nearest chosen centre, and its sum per chunk of rows (in row
    // order): one parallel pass per chosen centre. Sampling proportional to D² finds the
    // chunk from the chunk sums, then the row inside it, so no n-long cumulative array is
    // built (sequentially) at every step.
    let update = |closest: &mut [f64], centre: &[f64], first: bool| -> Vec<f64> {
        closest
            .par_chunks_mut(CHUNK_ROWS)
            .zip(data.par_chunks(CHUNK_ROWS * d))
            .map(|(close, rows)| {
                let mut sum = 0.0;
                for (c, r) in close.iter_mut().zip(rows.chunks_exact(d)) {
                    let t = dist2(r, centre);
                    *c = if first { t } else { c.min(t) };
                    sum += *c;
                }
                sum
            })
            .collect()
    };
    let mut chunk_sums = update(&mut closest, row(first), true);
    for _ in 1..k {
        let mut prefix = Vec::with_capacity(chunk_sums.len());
        let mut total = 0.0;
        for &s in &chunk_sums {
            total += s;
            prefix.push(total);
        }
        // Draw every trial's candidate first (the same random stream as drawing them one by
        // one), then score all of them in one pass: per chunk of rows, each candidate's
        // potential summed in row order, chunks summed in order — the same sums as scoring
        // them one at a time, in a quarter of the passes over the data.
        let candidates: Vec<usize> = (0..trials)
            .map(|_| {
                if total > 0.0 {
                    let target = rng.random::<f64>() * total;
                    sample_row(&closest, &prefix, target)
                } else {
                    rng.random_range(0..n)
                }
            })
            .collect();
        let chosen: Vec<f64> = candidates.iter().flat_map(|&c| row(c).to_vec()).collect();
        let ct = transpose(&chosen, trials, d);
        let parts: Vec<Vec<f64>> = data
            .par_chunks(CHUNK_ROWS * d)
            .zip(closest.par_chunks(CHUNK_ROWS))
            .map(|(rows, closest)| {
                arch.dispatch(ScoreCandidates {
                    rows,
                    closest,
                    ct: &ct,
                    d,
                })
            })
            .collect();
        let potentials: Vec<f64> = (0..trials)
            .map(|t| parts.iter().map(|p| p[t]).sum::<f64>())
            .collect();
        let mut best = 0;
        for t in 1..trials {
            if potentials[t] < potentials[best] {
                best = t;
            }
        }
        let centre = row(candidates[best]);
        chunk_sums = update(&mut closest, centre, false);
        centroids.extend_from_slice(centre);
    }
    centroids
}

/// The row where the running sum of `weights` first exceeds `target` (inverse-CDF
/// sampling), found through the chunks' running totals `prefix`.
fn sample_row(weights: &[f64], prefix: &[f64], target: f64) -> usize {
    let n = weights.len();
    let chunk = prefix
        .partition_point(|&c| c <= target)
        .min(prefix.len() - 1);
    let start = chunk * CHUNK_ROWS;
    let mut acc = if chunk == 0 { 0.0 } else { prefix[chunk - 1] };
    let rows = &weights[start..(start + CHUNK_ROWS).min(n)];
    for (i, &w) in rows.iter().enumerate() {
        acc += w;
        if acc > target {
            return start + i;
        }
    }
    // Rounding left the target past the chunk's last row: the last row with weight up to
    // here (a zero-weight row is a chosen centre, or a copy of one).
    weights[..start + rows.len()]
        .iter()
        .rposition(|&w| w > 0.0)
        .unwrap_or(n - 1)
}

fn init_random(data: &[f64], d: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let n = data.len() / d;
    rand::seq::index::sample(rng, n, k)
        .into_iter()
        .flat_map(|i| data[i * d..(i + 1) * d].to_vec())
        .collect()
}

impl Fit for KMeansValidParams {
    type Model = KMeans;
    type Error = KMeansError;

    fn fit(&self, data: &FeatureMatrix) -> Result<KMeans, KMeansError> {
        KMeansValidParams::fit(self, data)
    }
}

impl KMeansValidParams {
    pub fn params(&self) -> &KMeansParams {
        &self.0
    }

    /// Fits with `n_init` seeded restarts and keeps the lowest inertia.
    pub fn fit(&self, data: &FeatureMatrix) -> Result<KMeans, KMeansError> {
        let p = &self.0;
        let (n, d) = (data.n_rows(), data.n_cols());
        if n < p.k {
            return Err(KMeansError::TooFewRows { k: p.k, n });
        }
        data.check_varying()?;
        // The tolerance depends on the data only: once for every restart.
        let tol = self.absolute_tol(data);
        let mut best: Option<KMeans> = None;
        for run in 0..p.n_init {
            let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
            rng.set_stream(run as u64);
            let init = match p.init {
                KMeansInit::KMeansPlusPlus => init_plus_plus(data.data(), d, p.k, &mut rng),
                KMeansInit::Random => init_random(data.data(), d, p.k, &mut rng),
            };
            let model = self.run_from(data, init, tol)?;
            if best.as_ref().is_none_or(|b| model.inertia < b.inertia) {
                best = Some(model);
            }
        }
        best.ok_or(KMeansError::TooFewRows { k: p.k, n })
    }

    /// Mini-batch k-means (Sculley 2010) for very large n: centres start from k-means++ on
    /// a seeded sample of up to 10·`batch` rows, then `max_iter` batches of `batch` rows
    /// (drawn with the seed) each move their centres by 1/(rows seen so far) of the way to
    /// each row. The final labels and inertia come from a full assignment. One run, no
    /// restarts: `n_init` is ignored. Deterministic for a seed on any number of threads.
    pub fn fit_mini_batch(
        &self,
        data: &FeatureMatrix,
        batch: usize,
    ) -> Result<KMeans, KMeansError> {
        let p = &self.0;
        let (n, d, k) = (data.n_rows(), data.n_cols(), p.k);
        if n < k {
            return Err(KMeansError::TooFewRows { k, n });
        }
        data.check_varying()?;
        let batch = batch.clamp(1, n);
        let x = data.data();
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let sample_rows = (10 * batch).clamp(k, n);
        let mut sample = rand::seq::index::sample(&mut rng, n, sample_rows).into_vec();
        sample.sort_unstable();
        let sample_x: Vec<f64> = sample
            .iter()
            .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
            .collect();
        let mut centroids = match p.init {
            KMeansInit::KMeansPlusPlus => init_plus_plus(&sample_x, d, k, &mut rng),
            KMeansInit::Random => init_random(&sample_x, d, k, &mut rng),
        };
        let mut seen = vec![0u64; k];
        let arch = pulp::Arch::new();
        for _ in 0..p.max_iter {
            let rows: Vec<usize> = (0..batch).map(|_| rng.random_range(0..n)).collect();
            let ct = transpose(&centroids, k, d);
            // Assign the batch in parallel, then update in batch order.
            let nearest_of: Vec<u32> = rows
                .par_chunks(256)
                .flat_map_iter(|chunk| {
                    arch.dispatch(NearestOf {
                        x,
                        d,
                        rows: chunk,
                        ct: &ct,
                    })
                })
                .collect();
            for (&i, &c) in rows.iter().zip(&nearest_of) {
                let c = c as usize;
                seen[c] += 1;
                let rate = 1.0 / seen[c] as f64;
                for (m, v) in centroids[c * d..(c + 1) * d]
                    .iter_mut()
                    .zip(&x[i * d..(i + 1) * d])
                {
                    *m += rate * (v - *m);
                }
            }
        }
        let last = assign(x, d, &centroids, k, false);
        Ok(KMeans {
            k,
            d,
            centroids,
            inertia: last.inertia,
            n_iter: p.max_iter,
            labels: last.labels,
        })
    }

    /// `tol` times the mean feature variance (0 without computing it when `tol` is 0: then
    /// only an exact standstill stops).
    fn absolute_tol(&self, data: &FeatureMatrix) -> f64 {
        if self.0.tol == 0.0 {
            0.0
        } else {
            self.0.tol * mean_variance(data.data(), data.n_cols())
        }
    }

    /// One Lloyd run from the given initial centres (row-major `k × d`).
    pub fn fit_from(&self, data: &FeatureMatrix, init: Vec<f64>) -> Result<KMeans, KMeansError> {
        data.check_varying()?;
        self.run_from(data, init, self.absolute_tol(data))
    }

    fn run_from(
        &self,
        data: &FeatureMatrix,
        init: Vec<f64>,
        tol: f64,
    ) -> Result<KMeans, KMeansError> {
        let p = &self.0;
        let (n, d, k) = (data.n_rows(), data.n_cols(), p.k);
        if init.len() != k * d {
            return Err(KMeansError::InitShape {
                expected: k * d,
                got: init.len(),
            });
        }
        if n < k {
            return Err(KMeansError::TooFewRows { k, n });
        }
        let x = data.data();
        let algorithm = match p.algorithm {
            KMeansAlgorithm::Auto if d >= HAMERLY_FROM_DIMS => KMeansAlgorithm::Hamerly,
            KMeansAlgorithm::Auto => KMeansAlgorithm::Lloyd,
            chosen => chosen,
        };
        let (centroids, n_iter, labels) = match algorithm {
            KMeansAlgorithm::Auto | KMeansAlgorithm::Lloyd => {
                let (c, it) = lloyd(x, d, k, init, p.max_iter, tol);
                (c, it, None)
            }
            KMeansAlgorithm::Hamerly => hamerly(x, d, k, init, p.max_iter, tol),
        };
        let (labels, inertia) = match labels {
            // Hamerly's last pass already labelled the rows for the final centres.
            Some(labels) => {
                let c = &centroids;
                let inertia = ordered_sum(x, d, |i, r| {
                    let l = labels[i] as usize;
                    dist2(r, &c[l * d..(l + 1) * d])
                });
                (labels, inertia)
            }
            None => {
                let last = assign(x, d, &centroids, k, false);
                (last.labels, last.inertia)
            }
        };
        Ok(KMeans {
            k,
            d,
            centroids,
            inertia,
            n_iter,
            labels,
        })
    }
}

/// Mean over columns of each column's variance, in two row-wise parallel passes (means,
/// then squared deviations) over fixed chunks reduced in order: thread-count independent.
fn mean_variance(x: &[f64], d: usize) -> f64 {
    let n = (x.len() / d).max(1) as f64;
    let column_sums = |f: &(dyn Fn(usize, f64) -> f64 + Sync)| -> Vec<f64> {
        let parts: Vec<Vec<f64>> = x
            .par_chunks(CHUNK_ROWS * d)
            .map(|rows| {
                let mut s = vec![0.0; d];
                for row in rows.chunks_exact(d) {
                    for (j, (a, &v)) in s.iter_mut().zip(row).enumerate() {
                        *a += f(j, v);
                    }
                }
                s
            })
            .collect();
        parts.iter().fold(vec![0.0; d], |mut acc, p| {
            acc.iter_mut().zip(p).for_each(|(a, b)| *a += b);
            acc
        })
    };
    let means: Vec<f64> = column_sums(&|_, v| v).iter().map(|s| s / n).collect();
    let squares = column_sums(&|j, v| (v - means[j]) * (v - means[j]));
    squares.iter().map(|s| s / n).sum::<f64>() / d as f64
}

/// Lloyd's iterations from `centroids`; returns the final centres and the iterations run.
fn lloyd(
    x: &[f64],
    d: usize,
    k: usize,
    mut centroids: Vec<f64>,
    max_iter: usize,
    tol: f64,
) -> (Vec<f64>, usize) {
    let n = x.len() / d;
    let mut n_iter = 0;
    for _ in 0..max_iter {
        n_iter += 1;
        let (mut next, counts, _) = assign_stats(x, d, &centroids, k);
        // Distances are needed only when a cluster empties (rare): one more pass then.
        let distances = counts
            .contains(&0)
            .then(|| assign(x, d, &centroids, k, true).distances);
        let mut taken: Vec<usize> = Vec::new();
        for c in 0..k {
            if counts[c] == 0 {
                let distances = distances.as_deref().unwrap_or_default();
                // An empty cluster restarts at the worst-served row not already taken.
                let far = (0..n)
                    .filter(|i| !taken.contains(i))
                    .max_by(|&a, &b| distances[a].total_cmp(&distances[b]).then(b.cmp(&a)))
                    .unwrap_or(0);
                taken.push(far);
                next[c * d..(c + 1) * d].copy_from_slice(&x[far * d..(far + 1) * d]);
            } else {
                let inv = 1.0 / counts[c] as f64;
                next[c * d..(c + 1) * d].iter_mut().for_each(|v| *v *= inv);
            }
        }
        let shift = dist2(&centroids, &next);
        centroids = next;
        if shift <= tol {
            break;
        }
    }
    (centroids, n_iter)
}

/// The two nearest centres of `row`: (index, distance) of the nearest and the distance of
/// the second (Euclidean, not squared). Like [`nearest`], on the accumulators in registers
/// and with selects instead of branches.
#[inline(always)]
fn two_nearest(row: &[f64], ct: &[f64]) -> (u32, f64, f64) {
    let d = row.len();
    let mut found = (0u32, f64::INFINITY, f64::INFINITY);
    for (b, block) in ct.chunks_exact(d * LANES).enumerate() {
        keep_two_nearest(&mut found, b, &block_distances(row, block));
    }
    (found.0, found.1.sqrt(), found.2.sqrt())
}

/// Folds one block's squared distances into (nearest index, smallest, second smallest).
#[inline(always)]
fn keep_two_nearest(found: &mut (u32, f64, f64), block: usize, distances: &[f64]) {
    let (best, b1, b2) = found;
    for (t, &dd) in distances.iter().enumerate() {
        let (first, second) = (dd < *b1, dd < *b2);
        *b2 = if first {
            *b1
        } else if second {
            dd
        } else {
            *b2
        };
        *best = if first {
            (block * LANES + t) as u32
        } else {
            *best
        };
        *b1 = if first { dd } else { *b1 };
    }
}

/// [`two_nearest`] for [`GROUP`] rows at once (row r's coordinate j is `x(r, j)`), through
/// [`group_distances`]: the same values, with the rows' addition chains interleaved (as in
/// [`nearest_group`]).
#[inline(always)]
fn two_nearest_group<S: pulp::Simd>(
    simd: S,
    d: usize,
    ct: &[f64],
    x: impl Fn(usize, usize) -> f64 + Copy,
) -> [(u32, f64, f64); GROUP] {
    let parts = LANES / S::F64_LANES;
    let mut found = [(0u32, f64::INFINITY, f64::INFINITY); GROUP];
    for (b, block) in ct.chunks_exact(d * LANES).enumerate() {
        let acc = group_distances(simd, block, x);
        for (acc, found) in acc.iter().zip(found.iter_mut()) {
            keep_two_nearest(found, b, bytemuck::cast_slice(&acc[..parts]));
        }
    }
    found.map(|(c, b1, b2)| (c, b1.sqrt(), b2.sqrt()))
}

/// Nearest centres of some rows (mini-batch assignment), dispatched like [`AssignRows`].
struct NearestOf<'a> {
    x: &'a [f64],
    d: usize,
    rows: &'a [usize],
    ct: &'a [f64],
}

impl pulp::WithSimd for NearestOf<'_> {
    type Output = Vec<u32>;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Self::Output {
        let d = self.d;
        self.rows
            .iter()
            .map(|&i| nearest(&self.x[i * d..(i + 1) * d], self.ct).0)
            .collect()
    }
}

/// A complete Hamerly assignment of one chunk: every row against every centre, giving
/// labels, exact bounds and the sums from scratch, and how many labels changed. Used for the
/// first assignment and for the iterations where most rows' bounds fail anyway.
struct HamerlyFull<'a> {
    rows: &'a [f64],
    labels: &'a mut [u32],
    upper: &'a mut [f64],
    lower: &'a mut [f64],
    ct: &'a [f64],
    k: usize,
    d: usize,
}

impl pulp::WithSimd for HamerlyFull<'_> {
    type Output = (Vec<f64>, Vec<i64>, usize);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> Self::Output {
        let (k, d) = (self.k, self.d);
        let (mut sums, mut counts) = (vec![0.0; k * d], vec![0i64; k]);
        let mut changed = 0;
        let mut record = |row: &[f64], l: &mut u32, u: &mut f64, w: &mut f64, found| {
            let c;
            (c, *u, *w) = found;
            changed += usize::from(*l != c);
            *l = c;
            counts[c as usize] += 1;
            for (s, v) in sums[c as usize * d..(c as usize + 1) * d]
                .iter_mut()
                .zip(row)
            {
                *s += v;
            }
        };
        let mut groups = self.rows.chunks_exact(GROUP * d);
        let mut bounds = self
            .labels
            .iter_mut()
            .zip(self.upper.iter_mut())
            .zip(self.lower.iter_mut());
        for group in &mut groups {
            let found = two_nearest_group(simd, d, self.ct, |r, j| group[r * d + j]);
            for (row, found) in group.chunks_exact(d).zip(found) {
                if let Some(((l, u), w)) = bounds.next() {
                    record(row, l, u, w, found);
                }
            }
        }
        for (row, ((l, u), w)) in groups.remainder().chunks_exact(d).zip(bounds) {
            record(row, l, u, w, two_nearest(row, self.ct));
        }
        (sums, counts, changed)
    }
}

/// One Hamerly iteration over a chunk: bounds moved with the centres, rows whose bounds do
/// not prove them in place re-examined; the sums' changes for rows that moved.
struct HamerlyPass<'a> {
    rows: &'a [f64],
    labels: &'a mut [u32],
    upper: &'a mut [f64],
    lower: &'a mut [f64],
    ct: &'a [f64],
    centroids: &'a [f64],
    moved: &'a [f64],
    half: &'a [f64],
    /// The centre that moved most, its movement, and the second-largest movement.
    lower_drop: (usize, f64, f64),
    k: usize,
    d: usize,
}

/// The sums' and counts' changes of one chunk, if any of its rows moved.
type Delta = Option<(Vec<f64>, Vec<i64>)>;

impl pulp::WithSimd for HamerlyPass<'_> {
    /// The sums' changes and how many rows were searched in full.
    type Output = (Delta, usize);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Self::Output {
        let (k, d) = (self.k, self.d);
        let (m1_idx, m1, m2) = self.lower_drop;
        let mut delta: Delta = None;
        let mut searched = 0;
        for (((row, l), u), w) in self
            .rows
            .chunks_exact(d)
            .zip(self.labels.iter_mut())
            .zip(self.upper.iter_mut())
            .zip(self.lower.iter_mut())
        {
            let a = *l as usize;
            *u += self.moved[a];
            *w -= if a == m1_idx { m2 } else { m1 };
            let bound = self.half[a].max(*w);
            if *u <= bound {
                continue;
            }
            *u = dist2(row, &self.centroids[a * d..(a + 1) * d]).sqrt();
            if *u <= bound {
                continue;
            }
            searched += 1;
            let (c, d1, d2) = two_nearest(row, self.ct);
            (*u, *w) = (d1, d2);
            if c as usize != a {
                let (s, n) = delta.get_or_insert_with(|| (vec![0.0; k * d], vec![0; k]));
                for (j, v) in row.iter().enumerate() {
                    s[a * d + j] -= v;
                    s[c as usize * d + j] += v;
                }
                n[a] -= 1;
                n[c as usize] += 1;
                *l = c;
            }
        }
        (delta, searched)
    }
}

/// Lloyd's iterations with Hamerly's bounds (Hamerly 2010, "Making k-means even faster").
/// Falls back to [`lloyd`] for the remaining iterations when a cluster empties.
fn hamerly(
    x: &[f64],
    d: usize,
    k: usize,
    mut centroids: Vec<f64>,
    max_iter: usize,
    tol: f64,
) -> (Vec<f64>, usize, Option<Vec<u32>>) {
    let n = x.len() / d;
    if k < 2 {
        let (c, it) = lloyd(x, d, k, centroids, max_iter, tol);
        return (c, it, None);
    }
    let mut labels = vec![0u32; n];
    let mut upper = vec![0.0f64; n];
    let mut lower = vec![0.0f64; n];
    let arch = pulp::Arch::new();
    // A complete assignment: exact bounds, and the sums from scratch; the number of rows whose
    // label changed.
    let full_pass =
        |centroids: &[f64], labels: &mut [u32], upper: &mut [f64], lower: &mut [f64]| {
            let ct = transpose(centroids, k, d);
            let parts: Vec<(Vec<f64>, Vec<i64>, usize)> = bound_chunks(x, labels, upper, lower, d)
                .map(|(rows, labels, upper, lower)| {
                    arch.dispatch(HamerlyFull {
                        rows,
                        labels,
                        upper,
                        lower,
                        ct: &ct,
                        k,
                        d,
                    })
                })
                .collect();
            let (mut sums, mut counts, mut changed) = (vec![0.0; k * d], vec![0i64; k], 0);
            for (s, c, m) in &parts {
                add_into(&mut sums, &mut counts, s, c);
                changed += m;
            }
            (sums, counts, changed)
        };
    let (mut sums, mut counts, _) = full_pass(&centroids, &mut labels, &mut upper, &mut lower);
    // While many rows still move, their bounds fail anyway, and re-examining them one by one
    // costs more than a complete pass, whose four-row groups keep the cores busy (at 1M × 32,
    // k = 8: 30–42 ms against 18 ms). So an iteration is complete while the previous one
    // searched (or moved) more than an eighth of the rows, and uses the bounds after that.
    let mut dense = true;
    // Whether the latest pass moved any row.
    let mut moved_any = true;
    let mut n_iter = 0;
    while n_iter < max_iter {
        if counts.contains(&0) {
            // Lloyd's own handling of an empty cluster, from the same centres.
            let (c, more) = lloyd(x, d, k, centroids, max_iter - n_iter, tol);
            return (c, n_iter + more, None);
        }
        n_iter += 1;
        let mut next = sums.clone();
        for (c, &count) in counts.iter().enumerate() {
            let inv = 1.0 / count as f64;
            next[c * d..(c + 1) * d].iter_mut().for_each(|v| *v *= inv);
        }
        let shift = dist2(&centroids, &next);
        let moved: Vec<f64> = centroids
            .chunks_exact(d)
            .zip(next.chunks_exact(d))
            .map(|(a, b)| dist2(a, b).sqrt())
            .collect();
        centroids = next;
        // After the last update the pass below is the final labelling.
        let last = shift <= tol || n_iter == max_iter;
        // Complete passes need no bounds moved; the others need the centres' separations
        // and movements.
        if dense {
            let changed;
            (sums, counts, changed) = full_pass(&centroids, &mut labels, &mut upper, &mut lower);
            dense = changed > n / 8;
            moved_any = changed > 0;
        } else {
            // Half the distance from each centre to its nearest other centre.
            let half: Vec<f64> = (0..k)
                .map(|c| {
                    let cc = &centroids[c * d..(c + 1) * d];
                    0.5 * (0..k)
                        .filter(|&o| o != c)
                        .map(|o| dist2(cc, &centroids[o * d..(o + 1) * d]))
                        .fold(f64::INFINITY, f64::min)
                        .sqrt()
                })
                .collect();
            // The largest and second-largest movement, for the lower bounds.
            let (mut m1, mut m1_idx, mut m2) = (0.0f64, 0usize, 0.0f64);
            for (c, &m) in moved.iter().enumerate() {
                if m > m1 {
                    (m2, m1, m1_idx) = (m1, m, c);
                } else if m > m2 {
                    m2 = m;
                }
            }
            let centroids_ref = &centroids;
            let ct = transpose(&centroids, k, d);
            let deltas: Vec<(Delta, usize)> =
                bound_chunks(x, &mut labels, &mut upper, &mut lower, d)
                    .map(|(rows, labels, upper, lower)| {
                        arch.dispatch(HamerlyPass {
                            rows,
                            labels,
                            upper,
                            lower,
                            ct: &ct,
                            centroids: centroids_ref,
                            moved: &moved,
                            half: &half,
                            lower_drop: (m1_idx, m1, m2),
                            k,
                            d,
                        })
                    })
                    .collect();
            let mut searched = 0;
            for (delta, s) in &deltas {
                if let Some((s, c)) = delta {
                    add_into(&mut sums, &mut counts, s, c);
                }
                searched += s;
            }
            dense = searched > n / 8;
            moved_any = deltas.iter().any(|(delta, _)| delta.is_some());
        }
        if last {
            break;
        }
    }
    if !moved_any {
        // The last pass kept every label, so the centres are the means of these labels. The
        // running sums reached them through added and removed rows, which rounds
        // differently from summing each cluster's rows: summed afresh, in Lloyd's order,
        // they are Lloyd's centres to the bit (and restarts that reach the same partition
        // tie on inertia, as Lloyd's do).
        centroids = means(x, d, k, &labels);
    }
    (centroids, n_iter, Some(labels))
}

/// The rows in chunks, each with its rows' labels and bounds.
fn bound_chunks<'a>(
    x: &'a [f64],
    labels: &'a mut [u32],
    upper: &'a mut [f64],
    lower: &'a mut [f64],
    d: usize,
) -> impl IndexedParallelIterator<Item = (&'a [f64], &'a mut [u32], &'a mut [f64], &'a mut [f64])> {
    x.par_chunks(CHUNK_ROWS * d)
        .zip(labels.par_chunks_mut(CHUNK_ROWS))
        .zip(upper.par_chunks_mut(CHUNK_ROWS))
        .zip(lower.par_chunks_mut(CHUNK_ROWS))
        .map(|(((rows, labels), upper), lower)| (rows, labels, upper, lower))
}

/// Each cluster's mean under `labels`: per-chunk sums reduced in chunk order, divided as
/// Lloyd's update divides.
fn means(x: &[f64], d: usize, k: usize, labels: &[u32]) -> Vec<f64> {
    let parts: Vec<(Vec<f64>, Vec<u64>, f64)> = x
        .par_chunks(CHUNK_ROWS * d)
        .zip(labels.par_chunks(CHUNK_ROWS))
        .map(|(rows, labels)| {
            let (mut sums, mut counts) = (vec![0.0; k * d], vec![0u64; k]);
            for (row, &c) in rows.chunks_exact(d).zip(labels) {
                let c = c as usize;
                counts[c] += 1;
                for (s, v) in sums[c * d..(c + 1) * d].iter_mut().zip(row) {
                    *s += v;
                }
            }
            (sums, counts, 0.0)
        })
        .collect();
    let (mut sums, counts, _) = reduce_partials(parts, k, d);
    for (c, &count) in counts.iter().enumerate() {
        let inv = 1.0 / count as f64;
        sums[c * d..(c + 1) * d].iter_mut().for_each(|v| *v *= inv);
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(n_per: usize, centres: &[[f64; 2]], seed: u64) -> FeatureMatrix {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut data = Vec::new();
        for c in centres {
            for _ in 0..n_per {
                data.push(c[0] + rng.random_range(-0.5..0.5));
                data.push(c[1] + rng.random_range(-0.5..0.5));
            }
        }
        let n = n_per * centres.len();
        FeatureMatrix::new(
            (0..n).map(|i| i.to_string()).collect(),
            vec!["x".into(), "y".into()],
            data,
        )
        .unwrap()
    }

    /// The textbook Lloyd step, one row at a time, to check the chunked kernel against.
    fn naive_step(x: &[f64], d: usize, centroids: &[f64]) -> (Vec<u32>, Vec<f64>) {
        let k = centroids.len() / d;
        let mut labels = Vec::new();
        let mut sums = vec![0.0; k * d];
        let mut counts = vec![0.0; k];
        for row in x.chunks(d) {
            let mut best = (0, f64::INFINITY);
            for c in 0..k {
                let dd: f64 = (0..d)
                    .map(|j| (row[j] - centroids[c * d + j]).powi(2))
                    .sum();
                if dd < best.1 {
                    best = (c, dd);
                }
            }
            labels.push(best.0 as u32);
            counts[best.0] += 1.0;
            for j in 0..d {
                sums[best.0 * d + j] += row[j];
            }
        }
        let means = sums
            .iter()
            .enumerate()
            .map(|(i, s)| s / counts[i / d])
            .collect();
        (labels, means)
    }

    #[test]
    fn recovers_well_separated_blobs() {
        let m = blobs(200, &[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], 1);
        let model = KMeansParams::new(3)
            .seed(7)
            .check()
            .unwrap()
            .fit(&m)
            .unwrap();
        let l = model.labels();
        for b in 0..3 {
            let first = l[b * 200];
            assert!(l[b * 200..(b + 1) * 200].iter().all(|&x| x == first));
        }
        assert!(model.inertia() < 600.0 * 0.2);
    }

    #[test]
    fn rejects_bad_params_and_too_few_rows() {
        assert!(KMeansParams::new(0).check().is_err());
        assert!(KMeansParams::new(2).n_init(0).check().is_err());
        assert!(KMeansParams::new(2).tol(f64::NAN).check().is_err());
        let m = blobs(1, &[[0.0, 0.0]], 1);
        let err = KMeansParams::new(2).check().unwrap().fit(&m).unwrap_err();
        assert_eq!(err, KMeansError::TooFewRows { k: 2, n: 1 });
    }

    #[test]
    fn identical_across_thread_counts() {
        let m = blobs(3000, &[[0.0, 0.0], [3.0, 1.0], [1.0, 4.0], [5.0, 5.0]], 3);
        let params = KMeansParams::new(4).seed(11).n_init(3).check().unwrap();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| params.fit(&m).unwrap());
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
            .install(|| params.fit(&m).unwrap());
        assert_eq!(one.labels(), two.labels());
        assert_eq!(one.centroids(), two.centroids());
        assert_eq!(one.inertia().to_bits(), two.inertia().to_bits());
    }

    /// Random rows (n × d) with values in a few units, some repeated (exact ties).
    fn random_rows(n: usize, d: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * d)
            .map(|_| f64::from(rng.random_range(-40i32..40)) / 8.0)
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// The grouped, vectorized kernels give bit for bit what one row at a time with
        /// `dist2` gives, for any n (groups and a remainder), d and k (one or more blocks).
        #[test]
        fn grouped_kernels_equal_row_by_row(
            seed in 0u64..1000, n in 1usize..70, d in 1usize..12, k in 1usize..20,
        ) {
            let x = random_rows(n, d, seed);
            let centres = random_rows(k, d, seed + 1);
            let step = assign(&x, d, &centres, k, true);
            for (i, row) in x.chunks_exact(d).enumerate() {
                let (mut best, mut best_d) = (0u32, f64::INFINITY);
                for c in 0..k {
                    let dd = dist2(row, &centres[c * d..(c + 1) * d]);
                    if dd < best_d {
                        (best, best_d) = (c as u32, dd);
                    }
                }
                proptest::prop_assert_eq!(step.labels[i], best, "row {}", i);
                proptest::prop_assert_eq!(step.distances[i].to_bits(), best_d.to_bits());
            }
            // k-means++'s candidate scores: per candidate, min(D², distance²) summed in row
            // order.
            let closest: Vec<f64> = (0..n).map(|i| x[i * d] * x[i * d]).collect();
            let candidates = &centres[..k.min(6) * d];
            let scored = pulp::Arch::new().dispatch(ScoreCandidates {
                rows: &x,
                closest: &closest,
                ct: &transpose(candidates, k.min(6), d),
                d,
            });
            for (t, cand) in candidates.chunks_exact(d).enumerate() {
                let want: f64 = x
                    .chunks_exact(d)
                    .zip(&closest)
                    .map(|(r, &c)| c.min(dist2(r, cand)))
                    .sum();
                proptest::prop_assert_eq!(scored[t].to_bits(), want.to_bits(), "candidate {}", t);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        #[test]
        fn one_lloyd_step_matches_naive(seed in 0u64..1000, k in 1usize..6) {
            let m = blobs(300, &[[0.0, 0.0], [2.0, 2.0], [4.0, 0.0]], seed);
            let init: Vec<f64> = m.data()[..k * 2].to_vec();
            let (labels, means) = naive_step(m.data(), 2, &init);
            let model = KMeansParams::new(k).max_iter(1).check().unwrap().fit_from(&m, init.clone()).unwrap();
            // After one iteration the centres are the naive means (no empty cluster here,
            // since every initial centre is a data row).
            for (a, b) in model.centroids().iter().zip(&means) {
                proptest::prop_assert!((a - b).abs() < 1e-9);
            }
            let step = assign(m.data(), 2, &init, k, false);
            proptest::prop_assert_eq!(step.labels, labels);
            // The label-free pass of the iterations gives the same sums.
            let (sums, counts, _) = assign_stats(m.data(), 2, &init, k);
            for (c, &count) in counts.iter().enumerate() {
                for j in 0..2 {
                    let mean = sums[c * 2 + j] / count as f64;
                    proptest::prop_assert!((mean - means[c * 2 + j]).abs() < 1e-9);
                }
            }
        }
    }
}
