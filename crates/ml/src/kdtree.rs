//! A k-d tree over the rows of a matrix with a run-time number of dimensions, for radius
//! queries that visit (or count) neighbours without allocating, and k-th-neighbour distances.
//!
//! Written here rather than taken from a crate: `kiddo` fixes the dimension at compile time,
//! and linfa-nn's tree (the `kdtree` crate) collects and sorts every radius query's result on
//! the heap, which is most of DBSCAN's time when neighbourhoods hold thousands of points
//! (`cargo run --release -p strata-ml --example cluster_bench kdtree` measures it).

/// Rows per leaf.
const LEAF: usize = 32;

#[derive(Debug, Clone)]
struct Node {
    /// Range of `order` held by this node.
    start: usize,
    end: usize,
    /// Children (0: a leaf).
    left: usize,
    right: usize,
}

/// The tree; points are copied in tree order for locality.
#[derive(Debug, Clone)]
pub struct KdTree {
    d: usize,
    points: Vec<f64>,
    /// Tree position → original row.
    order: Vec<usize>,
    nodes: Vec<Node>,
    /// Per node: d minimums then d maximums.
    bounds: Vec<f64>,
}

impl KdTree {
    /// Builds over `data` (row-major, `d` columns).
    pub fn new(data: &[f64], d: usize) -> Self {
        let n = data.len().checked_div(d).unwrap_or(0);
        let mut order: Vec<usize> = (0..n).collect();
        let mut tree = Self {
            d,
            points: Vec::new(),
            order: Vec::new(),
            nodes: Vec::new(),
            bounds: Vec::new(),
        };
        if n > 0 {
            tree.build(data, &mut order, 0, n);
        }
        tree.points = order
            .iter()
            .flat_map(|&i| data[i * d..(i + 1) * d].iter().copied())
            .collect();
        tree.order = order;
        tree
    }

    fn build(&mut self, data: &[f64], order: &mut [usize], start: usize, end: usize) -> usize {
        let d = self.d;
        let id = self.nodes.len();
        self.nodes.push(Node {
            start,
            end,
            left: 0,
            right: 0,
        });
        let mut lo = vec![f64::INFINITY; d];
        let mut hi = vec![f64::NEG_INFINITY; d];
        for &i in &order[start..end] {
            for (j, &v) in data[i * d..(i + 1) * d].iter().enumerate() {
                lo[j] = lo[j].min(v);
                hi[j] = hi[j].max(v);
            }
        }
        self.bounds.extend_from_slice(&lo);
        self.bounds.extend_from_slice(&hi);
        if end - start <= LEAF {
            return id;
        }
        // Split the widest dimension at the median.
        let dim = (0..d)
            .max_by(|&a, &b| (hi[a] - lo[a]).total_cmp(&(hi[b] - lo[b])))
            .unwrap_or(0);
        if hi[dim] <= lo[dim] {
            return id; // all points equal: keep a (large) leaf
        }
        let mid = start + (end - start) / 2;
        order[start..end].select_nth_unstable_by(mid - start, |&a, &b| {
            data[a * d + dim]
                .total_cmp(&data[b * d + dim])
                .then(a.cmp(&b))
        });
        let left = self.build(data, order, start, mid);
        let right = self.build(data, order, mid, end);
        self.nodes[id].left = left;
        self.nodes[id].right = right;
        id
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Squared distance from `q` to the node's bounding box (branch-free per dimension).
    fn box_distance2(&self, node: usize, q: &[f64]) -> f64 {
        let d = self.d;
        let b = &self.bounds[node * 2 * d..(node + 1) * 2 * d];
        let (lo, hi) = b.split_at(d);
        let mut s = 0.0;
        for ((&v, &l), &h) in q.iter().zip(lo).zip(hi) {
            let gap = (l - v).max(v - h).max(0.0);
            s += gap * gap;
        }
        s
    }

    /// Squared distance from `q` to the farthest corner of the node's bounding box.
    fn box_far_distance2(&self, node: usize, q: &[f64]) -> f64 {
        let d = self.d;
        let b = &self.bounds[node * 2 * d..(node + 1) * 2 * d];
        let (lo, hi) = b.split_at(d);
        let mut s = 0.0;
        for ((&v, &l), &h) in q.iter().zip(lo).zip(hi) {
            let gap = (v - l).abs().max((h - v).abs());
            s += gap * gap;
        }
        s
    }

    /// Calls `visit(row, squared distance)` for every row within `radius` of `q` (inclusive).
    pub fn for_each_within(&self, q: &[f64], radius: f64, visit: impl FnMut(usize, f64)) {
        self.walk(q, radius, true, visit);
    }

    /// Calls `visit(row)` for every row within `radius` of `q` (inclusive); whole nodes that
    /// lie inside the ball are visited without computing distances.
    pub fn for_each_index_within(&self, q: &[f64], radius: f64, mut visit: impl FnMut(usize)) {
        self.walk(q, radius, false, |i, _| visit(i));
    }

    fn walk(&self, q: &[f64], radius: f64, distances: bool, mut visit: impl FnMut(usize, f64)) {
        if self.nodes.is_empty() {
            return;
        }
        let r2 = radius * radius;
        let d = self.d;
        let mut stack = vec![0usize];
        while let Some(node) = stack.pop() {
            if self.box_distance2(node, q) > r2 {
                continue;
            }
            let n = &self.nodes[node];
            if !distances && self.box_far_distance2(node, q) <= r2 {
                for p in n.start..n.end {
                    visit(self.order[p], f64::NAN);
                }
                continue;
            }
            if n.left == 0 {
                for p in n.start..n.end {
                    let x = &self.points[p * d..(p + 1) * d];
                    let mut s = 0.0;
                    for j in 0..d {
                        let t = x[j] - q[j];
                        s += t * t;
                    }
                    if s <= r2 {
                        visit(self.order[p], s);
                    }
                }
            } else {
                stack.push(n.right);
                stack.push(n.left);
            }
        }
    }

    /// Rows within `radius` of `q`, `q`'s own row included when it is in the tree. Nodes
    /// inside the ball count whole; the count stops growing once it reaches `enough`.
    pub fn count_within(&self, q: &[f64], radius: f64, enough: usize) -> usize {
        if self.nodes.is_empty() {
            return 0;
        }
        let r2 = radius * radius;
        let d = self.d;
        let mut count = 0;
        let mut stack = vec![0usize];
        while let Some(node) = stack.pop() {
            if count >= enough {
                break;
            }
            if self.box_distance2(node, q) > r2 {
                continue;
            }
            let n = &self.nodes[node];
            if self.box_far_distance2(node, q) <= r2 {
                count += n.end - n.start;
            } else if n.left == 0 {
                for p in n.start..n.end {
                    let x = &self.points[p * d..(p + 1) * d];
                    let s: f64 = x.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum();
                    count += usize::from(s <= r2);
                }
            } else {
                stack.push(n.right);
                stack.push(n.left);
            }
        }
        count
    }

    /// Pushes a node's children so that the one nearer `q` is popped (searched) first.
    fn push_nearer_last(&self, stack: &mut Vec<usize>, n: &Node, q: &[f64]) {
        let (a, b) = (n.left, n.right);
        if self.box_distance2(a, q) <= self.box_distance2(b, q) {
            stack.push(b);
            stack.push(a);
        } else {
            stack.push(a);
            stack.push(b);
        }
    }

    /// Best-first search: visits leaf rows nearest-subtree first, skipping subtrees farther
    /// than the bound that `visit(row, squared distance)` returns after each row.
    fn best_first(&self, q: &[f64], mut visit: impl FnMut(usize, f64) -> f64) {
        if self.nodes.is_empty() {
            return;
        }
        let d = self.d;
        let mut bound = f64::INFINITY;
        let mut stack = vec![0usize];
        while let Some(node) = stack.pop() {
            if self.box_distance2(node, q) > bound {
                continue;
            }
            let n = &self.nodes[node];
            if n.left == 0 {
                for p in n.start..n.end {
                    let x = &self.points[p * d..(p + 1) * d];
                    let s: f64 = x.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum();
                    bound = visit(self.order[p], s);
                }
            } else {
                self.push_nearer_last(&mut stack, n, q);
            }
        }
    }

    /// The nearest row to `q` and its squared distance (ties: the smaller row); `None` for an
    /// empty tree.
    pub fn nearest(&self, q: &[f64]) -> Option<(usize, f64)> {
        let mut best: Option<(usize, f64)> = None;
        self.best_first(q, |row, s| {
            if best.is_none_or(|(r, b)| s < b || (s == b && row < r)) {
                best = Some((row, s));
            }
            best.map_or(f64::INFINITY, |b| b.1)
        });
        best
    }

    /// Distance from `q` to its `k`-th nearest row (k ≥ 1; a row of the tree counts itself
    /// as its first neighbour at distance 0). `None` when the tree has fewer than k rows.
    pub fn kth_distance(&self, q: &[f64], k: usize) -> Option<f64> {
        if k == 0 || k > self.len() {
            return None;
        }
        // The k smallest squared distances so far, as a max-heap.
        let mut best: std::collections::BinaryHeap<Ordered> = std::collections::BinaryHeap::new();
        self.best_first(q, |_, s| {
            if best.len() < k {
                best.push(Ordered(s));
            } else if best.peek().is_some_and(|o| s < o.0) {
                best.pop();
                best.push(Ordered(s));
            }
            if best.len() < k {
                f64::INFINITY
            } else {
                best.peek().map_or(f64::INFINITY, |o| o.0)
            }
        });
        best.peek().map(|o| o.0.sqrt())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Ordered(f64);
impl Eq for Ordered {}
impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn radius_and_knn_queries_equal_brute_force() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (n, d) = (700, 3);
        // Clumped values with many exact ties.
        let data: Vec<f64> = (0..n * d)
            .map(|_| f64::from(rng.random_range(0..20u8)) / 4.0)
            .collect();
        let tree = KdTree::new(&data, d);
        let dist = |a: usize, b: usize| -> f64 {
            (0..d)
                .map(|j| (data[a * d + j] - data[b * d + j]).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        for q in (0..n).step_by(37) {
            let row = &data[q * d..(q + 1) * d];
            for r in [0.0, 0.5, 1.0, 2.5] {
                let mut got = Vec::new();
                tree.for_each_within(row, r, |i, _| got.push(i));
                got.sort_unstable();
                let want: Vec<usize> = (0..n).filter(|&i| dist(q, i) <= r).collect();
                assert_eq!(got, want, "q {q} r {r}");
                assert_eq!(tree.count_within(row, r, usize::MAX), want.len());
                // Stopping early: at least `enough` when there are that many, never more
                // than there are.
                let c = tree.count_within(row, r, 3);
                if want.len() >= 3 {
                    assert!((3..=want.len()).contains(&c), "{c} of {}", want.len());
                } else {
                    assert_eq!(c, want.len());
                }
                let mut fast = Vec::new();
                tree.for_each_index_within(row, r, |i| fast.push(i));
                fast.sort_unstable();
                assert_eq!(fast, want);
            }
            let mut all: Vec<f64> = (0..n).map(|i| dist(q, i)).collect();
            all.sort_by(f64::total_cmp);
            for k in [1, 2, 5, 40] {
                let got = tree.kth_distance(row, k).unwrap();
                assert!(
                    (got - all[k - 1]).abs() < 1e-12,
                    "k {k}: {got} vs {}",
                    all[k - 1]
                );
            }
        }
        // Nearest row to points off the data (with exact ties: the smaller row wins).
        for t in 0..50 {
            let q: Vec<f64> = (0..d)
                .map(|j| f64::from((t * 7 + j * 3) as u8 % 20) / 4.0 + 0.125)
                .collect();
            let d2 = |i: usize| {
                (0..d)
                    .map(|j| (data[i * d + j] - q[j]).powi(2))
                    .sum::<f64>()
            };
            let want = (0..n).fold(
                (0, f64::INFINITY),
                |b, i| if d2(i) < b.1 { (i, d2(i)) } else { b },
            );
            assert_eq!(tree.nearest(&q), Some(want), "query {t}");
        }
        assert!(tree.kth_distance(&data[..d], n + 1).is_none());
        assert!(KdTree::new(&[], 2).is_empty());
        assert!(KdTree::new(&[], 2).nearest(&[0.0, 0.0]).is_none());
    }
}
