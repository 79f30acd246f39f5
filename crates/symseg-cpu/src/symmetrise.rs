//! SPEC §5's symmetrised prediction, tile pair by tile pair.

use symseg_core::{Dims, SymMode};

use crate::par::map_tasks;
use crate::tiles::{self, SharedMut};

/// Writes `z = sym(x)` for every sample; `x` and `out` have `dims.len()`
/// elements. Tile pairs run on rayon if `parallel`.
pub(crate) fn symmetrise(x: &[f32], dims: Dims, mode: SymMode, out: &mut [f32], parallel: bool) {
    if mode == SymMode::None {
        out.copy_from_slice(x);
        return;
    }
    let n = dims.n;
    let shared = SharedMut::new(out);
    let tasks = tiles::tasks(dims.batch, |_| n);
    map_tasks(
        parallel,
        tasks.len(),
        || (),
        |_, k| {
            let t = &tasks[k];
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
        },
    );
}
