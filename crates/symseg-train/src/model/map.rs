//! Channels-last maps: a pixel's channels in blocks of [`LANES`] floats, so one
//! block is one vector register. Their buffers come from a small per-thread pool:
//! a training step allocates and frees the same few dozen maps every sample, and
//! fresh multi-megabyte allocations cost a page fault per 4 KiB each time.

use std::cell::RefCell;

/// Floats per channel block: one AVX-512 register, two AVX2 registers.
pub const LANES: usize = 16;

/// One channel block of one pixel.
pub type Block = [f32; LANES];

/// Buffers kept per thread for reuse.
const POOL_SIZE: usize = 48;

thread_local! {
    static POOL: RefCell<Vec<Vec<Block>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` blocks with unspecified (but initialised) contents: the
/// smallest pooled one that is long enough, or a new one.
fn take(len: usize) -> Vec<Block> {
    let reused = POOL.with_borrow_mut(|pool| {
        let best = pool
            .iter()
            .enumerate()
            .filter(|(_, v)| v.len() >= len)
            .min_by_key(|(_, v)| v.len())
            .map(|(i, _)| i);
        best.map(|i| pool.swap_remove(i))
    });
    match reused {
        Some(mut v) => {
            v.truncate(len);
            v
        }
        None => vec![[0.0; LANES]; len],
    }
}

/// A channels-last `n x n` map: pixel `p`, channel `c` is `data[p * blocks + c / LANES][c % LANES]`;
/// channels `channels..blocks * LANES` are zero.
#[derive(Debug, PartialEq)]
pub struct Map {
    /// Side.
    pub n: usize,
    /// Meaningful channels.
    pub channels: usize,
    /// Channel blocks per pixel.
    pub blocks: usize,
    /// `n * n * blocks` blocks.
    pub data: Vec<Block>,
}

impl Map {
    /// A zero map.
    pub fn zeros(n: usize, channels: usize) -> Map {
        let mut m = Map::scratch(n, channels);
        m.data.fill([0.0; LANES]);
        m
    }

    /// A map whose blocks hold stale values: the caller writes every block
    /// (padding lanes included, as zeros).
    pub fn scratch(n: usize, channels: usize) -> Map {
        let blocks = channels.div_ceil(LANES).max(1);
        Map { n, channels, blocks, data: take(n * n * blocks) }
    }

    /// The channels-last copy of a channels-first `C x n x n` array.
    pub fn from_chw(x: ndarray::ArrayView3<'_, f32>) -> Map {
        let (c, n) = (x.shape()[0], x.shape()[1]);
        let mut m = Map::zeros(n, c);
        let blocks = m.blocks;
        for (ch, plane) in x.outer_iter().enumerate() {
            let (b, l) = (ch / LANES, ch % LANES);
            for (px, &v) in m.data.chunks_exact_mut(blocks).zip(plane.iter()) {
                px[b][l] = v;
            }
        }
        m
    }

    /// Channel `c` of every pixel, row-major.
    pub fn channel(&self, c: usize) -> Vec<f32> {
        self.data.iter().skip(c / LANES).step_by(self.blocks).map(|b| b[c % LANES]).collect()
    }

    /// The flat float view (`n * n * blocks * LANES`).
    pub(crate) fn flat(&self) -> &[f32] {
        self.data.as_flattened()
    }
}

impl Clone for Map {
    fn clone(&self) -> Map {
        let mut m = Map::scratch(self.n, self.channels);
        m.data.copy_from_slice(&self.data);
        m
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        if data.is_empty() {
            return;
        }
        POOL.with_borrow_mut(|pool| {
            if pool.len() < POOL_SIZE {
                pool.push(data);
            }
        });
    }
}
