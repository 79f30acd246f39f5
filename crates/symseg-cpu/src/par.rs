//! The task loops of every pass, on rayon or on the calling thread.
//!
//! A small input costs less on the caller's thread than the wake-ups and
//! scheduling of a parallel loop (a quarter of a 1×128² call on one worker).
//! Both forms return the tasks' results in task order, and the passes combine
//! them in that order, so the choice never changes a bit of any result.

use rayon::prelude::*;

/// Inputs with fewer elements than this run on the calling thread by default.
/// Measured with `cargo xtask bench --shape 1xN` (2 cores, AVX-512): below
/// about 128² elements, two workers gain nothing on `plain` and lose on the
/// tile path, whose few tile pairs do not balance.
pub(crate) const SEQUENTIAL_BELOW: usize = 128 * 128;

/// `f(state, task)` for every task in `0..count`, in task order; `init` makes
/// one `state` (scratch buffers) per worker.
pub(crate) fn map_tasks<S, T, I, F>(parallel: bool, count: usize, init: I, f: F) -> Vec<T>
where
    T: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, usize) -> T + Sync + Send,
{
    if parallel {
        (0..count).into_par_iter().map_init(init, f).collect()
    } else {
        let mut state = init();
        (0..count).map(|t| f(&mut state, t)).collect()
    }
}

/// `f(c, chunk)` for each `chunk`-long piece `c` of `buf` (the last may be
/// shorter), in order.
pub(crate) fn map_chunks_mut<E, T, F>(parallel: bool, buf: &mut [E], chunk: usize, f: F) -> Vec<T>
where
    E: Send,
    T: Send,
    F: Fn(usize, &mut [E]) -> T + Sync + Send,
{
    if parallel {
        buf.par_chunks_mut(chunk).enumerate().map(|(c, piece)| f(c, piece)).collect()
    } else {
        buf.chunks_mut(chunk).enumerate().map(|(c, piece)| f(c, piece)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_give_the_same_results_in_task_order() {
        for parallel in [false, true] {
            let squares = map_tasks(
                parallel,
                1000,
                || 0usize,
                |calls, t| {
                    *calls += 1;
                    t * t
                },
            );
            assert_eq!(squares, (0..1000).map(|t| t * t).collect::<Vec<_>>());
            let mut buf: Vec<u32> = (0..1003).collect();
            let sums = map_chunks_mut(parallel, &mut buf, 10, |c, piece| {
                piece.iter_mut().for_each(|v| *v += 1);
                (c, piece.iter().sum::<u32>())
            });
            assert_eq!(sums.len(), 101);
            assert_eq!(sums[100], (100, 1001 + 1002 + 1003));
            assert!(sums.iter().enumerate().all(|(i, &(c, _))| i == c));
            assert_eq!(buf, (1..1004).collect::<Vec<_>>());
        }
    }
}
