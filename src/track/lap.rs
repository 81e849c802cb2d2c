//! Optimal linear assignment (rectangular, dense) with two ways of handling "no match".
//!
//! * [`LapSolver::solve_limited`] is the cost-limited assignment ByteTrack uses
//!   (`lap.lapjv(cost, extend_cost=True, cost_limit=limit)`): every row and column may stay
//!   unmatched at a price of `limit / 2` each, so a pair is matched only where that lowers the
//!   total, and the result is the minimum of `sum(matched costs) + limit/2 * (unmatched rows + cols)`.
//! * [`LapSolver::solve_max_cardinality`] is what py-motmetrics does with forbidden pairs (NaN):
//!   first as many valid pairs as possible, then the minimum total cost among those.
//!
//! Both split the bipartite graph of admissible pairs into connected components (most cost
//! matrices in tracking are very sparse) and solve each component with the shortest augmenting
//! path method of Jonker–Volgenant as described by Crouse (2016), which is exact. The solver keeps
//! its scratch buffers between calls, so steady-state use does not allocate.

/// The result of an assignment: matched `(row, col)` pairs in ascending row order, and the rows
/// and columns left unmatched (ascending).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    pub matches: Vec<(usize, usize)>,
    pub unmatched_rows: Vec<usize>,
    pub unmatched_cols: Vec<usize>,
}

impl Assignment {
    fn clear(&mut self) {
        self.matches.clear();
        self.unmatched_rows.clear();
        self.unmatched_cols.clear();
    }
}

const NONE: usize = usize::MAX;

/// Reusable linear assignment solver (holds scratch memory only).
#[derive(Debug, Default, Clone)]
pub struct LapSolver {
    parent: Vec<usize>,
    comp_rows: Vec<Vec<usize>>,
    comp_cols: Vec<Vec<usize>>,
    comp_of_root: Vec<usize>,
    sub: Vec<f64>,
    col4row: Vec<usize>,
    assign: Vec<usize>,
    // augmenting-path state
    u: Vec<f64>,
    v: Vec<f64>,
    shortest: Vec<f64>,
    path: Vec<usize>,
    row4col: Vec<usize>,
    sr: Vec<bool>,
    sc: Vec<bool>,
    remaining: Vec<usize>,
}

impl LapSolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cost-limited assignment on a row-major `rows x cols` matrix (see the module docs).
    /// Pairs with `cost >= limit` (or NaN) are never matched.
    pub fn solve_limited(&mut self, cost: &[f64], rows: usize, cols: usize, limit: f64, out: &mut Assignment) {
        assert_eq!(cost.len(), rows * cols, "cost matrix size");
        let admissible = |c: f64| c < limit;
        // Within a component, a pair's cost relative to leaving both ends unmatched is
        // `cost - limit` (< 0 when admissible); inadmissible pairs get 0, i.e. "no match".
        self.solve_components(
            cost,
            rows,
            cols,
            out,
            admissible,
            |c| if c < limit { c - limit } else { 0.0 },
            |c| c < limit,
        );
    }

    /// Maximum-cardinality minimum-cost assignment: pairs with a non-finite cost are forbidden;
    /// among the assignments with the most valid pairs, the one of least total cost is returned.
    pub fn solve_max_cardinality(&mut self, cost: &[f64], rows: usize, cols: usize, out: &mut Assignment) {
        assert_eq!(cost.len(), rows * cols, "cost matrix size");
        let maxabs = cost.iter().filter(|c| c.is_finite()).fold(0.0f64, |m, c| m.max(c.abs())) + 1.0;
        let big = 2.0 * (rows.min(cols) as f64) * maxabs + 1.0;
        self.solve_components(
            cost,
            rows,
            cols,
            out,
            |c| c.is_finite(),
            |c| if c.is_finite() { c } else { big },
            |c| c.is_finite(),
        );
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn solve_components(
        &mut self,
        cost: &[f64],
        rows: usize,
        cols: usize,
        out: &mut Assignment,
        admissible: impl Fn(f64) -> bool,
        transform: impl Fn(f64) -> f64,
        keep: impl Fn(f64) -> bool,
    ) {
        out.clear();
        // Union-find over rows (0..rows) and columns (rows..rows+cols).
        self.parent.clear();
        self.parent.extend(0..rows + cols);
        for i in 0..rows {
            for j in 0..cols {
                if admissible(cost[i * cols + j]) {
                    let (a, b) = (self.find(i), self.find(rows + j));
                    if a != b {
                        self.parent[a] = b;
                    }
                }
            }
        }
        self.comp_of_root.clear();
        self.comp_of_root.resize(rows + cols, NONE);
        let mut ncomp = 0;
        for x in 0..rows + cols {
            let r = self.find(x);
            if self.comp_of_root[r] == NONE {
                self.comp_of_root[r] = ncomp;
                ncomp += 1;
            }
        }
        if self.comp_rows.len() < ncomp {
            self.comp_rows.resize_with(ncomp, Vec::new);
            self.comp_cols.resize_with(ncomp, Vec::new);
        }
        for c in 0..ncomp {
            self.comp_rows[c].clear();
            self.comp_cols[c].clear();
        }
        for x in 0..rows + cols {
            let r = self.find(x);
            let c = self.comp_of_root[r];
            if x < rows {
                self.comp_rows[c].push(x);
            } else {
                self.comp_cols[c].push(x - rows);
            }
        }
        let mut row_match = std::mem::take(&mut self.col4row);
        row_match.clear();
        row_match.resize(rows, NONE);
        for c in 0..ncomp {
            let (nr, nc) = (self.comp_rows[c].len(), self.comp_cols[c].len());
            if nr == 0 || nc == 0 {
                continue;
            }
            // Build the component's sub-matrix, transposed when it has more rows than columns.
            let transpose = nr > nc;
            let (sr, sc) = if transpose { (nc, nr) } else { (nr, nc) };
            let mut sub = std::mem::take(&mut self.sub);
            sub.clear();
            sub.resize(sr * sc, 0.0);
            for (a, &i) in self.comp_rows[c].iter().enumerate() {
                for (b, &j) in self.comp_cols[c].iter().enumerate() {
                    let v = transform(cost[i * cols + j]);
                    if transpose {
                        sub[b * sc + a] = v;
                    } else {
                        sub[a * sc + b] = v;
                    }
                }
            }
            self.lsap(&sub, sr, sc);
            self.sub = sub;
            for k in 0..sr {
                let l = self.u_col4row(k);
                if l == NONE {
                    continue;
                }
                let (a, b) = if transpose { (l, k) } else { (k, l) };
                let (i, j) = (self.comp_rows[c][a], self.comp_cols[c][b]);
                if keep(cost[i * cols + j]) {
                    row_match[i] = j;
                }
            }
        }
        let mut col_used = std::mem::take(&mut self.sc);
        col_used.clear();
        col_used.resize(cols, false);
        for (i, &j) in row_match.iter().enumerate() {
            if j == NONE {
                out.unmatched_rows.push(i);
            } else {
                out.matches.push((i, j));
                col_used[j] = true;
            }
        }
        out.unmatched_cols.extend((0..cols).filter(|&j| !col_used[j]));
        self.sc = col_used;
        self.col4row = row_match;
    }

    #[inline]
    fn u_col4row(&self, k: usize) -> usize {
        self.assign[k]
    }

    /// Dense rectangular minimum-cost assignment (`nr <= nc`, all costs finite), every row
    /// matched. Result in `self.assign` (column of each row).
    fn lsap(&mut self, cost: &[f64], nr: usize, nc: usize) {
        debug_assert!(nr <= nc);
        self.u.clear();
        self.u.resize(nr, 0.0);
        self.v.clear();
        self.v.resize(nc, 0.0);
        self.shortest.clear();
        self.shortest.resize(nc, f64::INFINITY);
        self.path.clear();
        self.path.resize(nc, NONE);
        self.assign.clear();
        self.assign.resize(nr, NONE);
        self.row4col.clear();
        self.row4col.resize(nc, NONE);
        self.sr.clear();
        self.sr.resize(nr, false);
        self.sc.clear();
        self.sc.resize(nc, false);
        self.remaining.clear();
        self.remaining.resize(nc, 0);
        for cur_row in 0..nr {
            // Dijkstra-like search for the shortest augmenting path from `cur_row`.
            let mut min_val = 0.0f64;
            let mut num_remaining = nc;
            for it in 0..nc {
                self.remaining[it] = nc - it - 1;
            }
            self.sr.iter_mut().for_each(|x| *x = false);
            self.sc.iter_mut().for_each(|x| *x = false);
            self.shortest.iter_mut().for_each(|x| *x = f64::INFINITY);
            let mut sink = NONE;
            let mut i = cur_row;
            while sink == NONE {
                let mut index = NONE;
                let mut lowest = f64::INFINITY;
                self.sr[i] = true;
                let row = &cost[i * nc..(i + 1) * nc];
                for it in 0..num_remaining {
                    let j = self.remaining[it];
                    let r = min_val + row[j] - self.u[i] - self.v[j];
                    if r < self.shortest[j] {
                        self.path[j] = i;
                        self.shortest[j] = r;
                    }
                    if self.shortest[j] < lowest || (self.shortest[j] == lowest && self.row4col[j] == NONE) {
                        lowest = self.shortest[j];
                        index = it;
                    }
                }
                min_val = lowest;
                if index == NONE || !min_val.is_finite() {
                    // Cannot happen with finite costs; leave the row unmatched defensively.
                    break;
                }
                let j = self.remaining[index];
                if self.row4col[j] == NONE {
                    sink = j;
                } else {
                    i = self.row4col[j];
                }
                self.sc[j] = true;
                num_remaining -= 1;
                self.remaining[index] = self.remaining[num_remaining];
            }
            if sink == NONE {
                continue;
            }
            // Update the dual variables.
            self.u[cur_row] += min_val;
            for i in 0..nr {
                if self.sr[i] && i != cur_row {
                    self.u[i] += min_val - self.shortest[self.assign[i]];
                }
            }
            for j in 0..nc {
                if self.sc[j] {
                    self.v[j] -= min_val - self.shortest[j];
                }
            }
            // Augment along the path.
            let mut j = sink;
            loop {
                let i = self.path[j];
                self.row4col[j] = i;
                std::mem::swap(&mut self.assign[i], &mut j);
                if i == cur_row {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// All partial matchings by brute force: returns the minimum of `objective`.
    fn brute(rows: usize, cols: usize, objective: &dyn Fn(&[usize]) -> f64) -> f64 {
        fn rec(
            i: usize,
            rows: usize,
            cols: usize,
            cur: &mut Vec<usize>,
            used: &mut Vec<bool>,
            f: &dyn Fn(&[usize]) -> f64,
            best: &mut f64,
        ) {
            if i == rows {
                *best = best.min(f(cur));
                return;
            }
            cur.push(NONE);
            rec(i + 1, rows, cols, cur, used, f, best);
            cur.pop();
            for j in 0..cols {
                if !used[j] {
                    used[j] = true;
                    cur.push(j);
                    rec(i + 1, rows, cols, cur, used, f, best);
                    cur.pop();
                    used[j] = false;
                }
            }
        }
        let mut best = f64::INFINITY;
        rec(0, rows, cols, &mut Vec::new(), &mut vec![false; cols], objective, &mut best);
        best
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn check_consistent(a: &Assignment, rows: usize, cols: usize) {
        let mut r = vec![false; rows];
        let mut c = vec![false; cols];
        for &(i, j) in &a.matches {
            assert!(!r[i] && !c[j], "row or column matched twice");
            r[i] = true;
            c[j] = true;
        }
        assert_eq!(a.unmatched_rows, (0..rows).filter(|&i| !r[i]).collect::<Vec<_>>());
        assert_eq!(a.unmatched_cols, (0..cols).filter(|&j| !c[j]).collect::<Vec<_>>());
    }

    #[test]
    fn limited_matches_brute_force() {
        let mut rng = Rng(0x9e3779b97f4a7c15);
        let mut solver = LapSolver::new();
        let mut out = Assignment::default();
        for case in 0..400 {
            let rows = 1 + (rng.next() * 6.0) as usize;
            let cols = 1 + (rng.next() * 6.0) as usize;
            let sparse = case % 2 == 0;
            let cost: Vec<f64> =
                (0..rows * cols).map(|_| if sparse && rng.next() < 0.5 { 1.0 } else { rng.next() }).collect();
            let limit = 0.3 + rng.next() * 0.6;
            solver.solve_limited(&cost, rows, cols, limit, &mut out);
            check_consistent(&out, rows, cols);
            let objective = |m: &[usize]| {
                let mut t = 0.0;
                let mut matched = 0;
                for (i, &j) in m.iter().enumerate() {
                    if j != NONE {
                        t += cost[i * cols + j];
                        matched += 1;
                    }
                }
                t + limit / 2.0 * ((rows - matched) + (cols - matched)) as f64
            };
            let want = brute(rows, cols, &objective);
            let mut m = vec![NONE; rows];
            for &(i, j) in &out.matches {
                assert!(cost[i * cols + j] < limit);
                m[i] = j;
            }
            let got = objective(&m);
            assert!((got - want).abs() < 1e-9, "case {case}: got {got}, brute force {want}");
        }
    }

    #[test]
    fn max_cardinality_matches_brute_force() {
        let mut rng = Rng(12345);
        let mut solver = LapSolver::new();
        let mut out = Assignment::default();
        for case in 0..400 {
            let rows = 1 + (rng.next() * 6.0) as usize;
            let cols = 1 + (rng.next() * 6.0) as usize;
            let cost: Vec<f64> =
                (0..rows * cols).map(|_| if rng.next() < 0.5 { f64::NAN } else { rng.next() * 0.5 }).collect();
            solver.solve_max_cardinality(&cost, rows, cols, &mut out);
            check_consistent(&out, rows, cols);
            // Lexicographic objective: -(number of matches) first, then total cost.
            let objective = |m: &[usize]| {
                let mut t = 0.0;
                for (i, &j) in m.iter().enumerate() {
                    if j != NONE {
                        let c = cost[i * cols + j];
                        if !c.is_finite() {
                            return f64::INFINITY;
                        }
                        t += c - 1000.0;
                    }
                }
                t
            };
            let want = brute(rows, cols, &objective);
            let mut m = vec![NONE; rows];
            for &(i, j) in &out.matches {
                m[i] = j;
            }
            let got = objective(&m);
            assert!((got - want).abs() < 1e-9, "case {case}: got {got}, brute force {want}");
        }
    }

    #[test]
    fn empty_and_degenerate() {
        let mut solver = LapSolver::new();
        let mut out = Assignment::default();
        solver.solve_limited(&[], 0, 3, 0.8, &mut out);
        assert_eq!(out.unmatched_cols, vec![0, 1, 2]);
        solver.solve_limited(&[], 2, 0, 0.8, &mut out);
        assert_eq!(out.unmatched_rows, vec![0, 1]);
        // A cost equal to the limit is not matched; just below is.
        solver.solve_limited(&[0.8, 0.79], 1, 2, 0.8, &mut out);
        assert_eq!(out.matches, vec![(0, 1)]);
        solver.solve_limited(&[f64::NAN], 1, 1, 0.8, &mut out);
        assert!(out.matches.is_empty());
    }
}
