//! SPEC §5's symmetrised prediction, tile pair by tile pair.

use rayon::prelude::*;
use symseg_core::{Dims, SymMode};

use crate::tiles::{self, SharedMut};

/// Writes `z = sym(x)` for every sample; `x` and `out` have `dims.len()` elements.
pub(crate) fn symmetrise(x: &[f32], dims: Dims, mode: SymMode, out: &mut [f32]) {
    if mode == SymMode::None {
        out.copy_from_slice(x);
        return;
    }
    let n = dims.n;
    let shared = SharedMut::new(out);
    tiles::tasks(dims.batch, |_| n).par_iter().for_each(|t| {
        let base = t.sample * dims.map_len();
        for i in t.rows.clone() {
            for j in t.cols.start.max(i)..t.cols.end {
                let (kij, kji) = (base + i * n + j, base + j * n + i);
                let (a, b) = (x[kij], x[kji]);
                let (zij, zji) = match mode {
                    SymMode::Average => {
                        let s = 0.5 * a + 0.5 * b;
                        (s, s)
                    }
                    SymMode::Upper => (a, a),
                    SymMode::Lower | SymMode::None => (b, b),
                };
                // SAFETY: the task owns (i, j) and (j, i) of its unordered pairs (`tiles::tasks`).
                unsafe {
                    shared.write(kij, zij);
                    shared.write(kji, zji);
                }
            }
        }
    });
}
