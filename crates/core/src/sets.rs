//! Disjoint sets (union-find) whose roots are the smallest member of each set, so the
//! partition and its representatives do not depend on the order of unions — what the
//! deduplicator and DBSCAN need for thread-count-independent results.

/// Union-find over `0..n` with path halving.
#[derive(Debug, Clone)]
pub struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    pub fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// The smallest member of `x`'s set.
    pub fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    /// Joins the sets of `a` and `b`; false when they were already one.
    pub fn union(&mut self, a: usize, b: usize) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[hi] = lo;
        true
    }

    /// Adds every union of `other` (over the same `n`).
    pub fn merge(&mut self, other: &mut Self) {
        for i in 0..other.len() {
            let r = other.find(i);
            if r != i {
                self.union(i, r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_the_smallest_member_whatever_the_order() {
        let mut a = DisjointSets::new(6);
        assert!(a.union(5, 3));
        assert!(a.union(3, 4));
        assert!(!a.union(4, 5));
        a.union(1, 2);
        let mut b = DisjointSets::new(6);
        b.union(4, 3);
        b.union(2, 1);
        b.union(5, 4);
        for i in 0..6 {
            assert_eq!(a.find(i), b.find(i));
        }
        assert_eq!(a.find(5), 3);
        let mut c = DisjointSets::new(6);
        c.union(0, 5);
        c.merge(&mut a);
        assert_eq!(c.find(4), 0);
        assert_eq!(c.find(2), 1);
    }
}
