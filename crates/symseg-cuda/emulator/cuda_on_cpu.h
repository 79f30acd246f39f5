// Just enough of CUDA C to run symseg's kernels on the CPU, for the tests
// (no GPU in CI): each launch runs its blocks one after another, each block
// as THREADS real threads that meet at a real barrier in __syncthreads,
// so shared-memory staging, barriers and block reductions execute as
// written. Built with AddressSanitizer, an index outside a buffer fails the
// test; built with ThreadSanitizer, so does a missing __syncthreads. What this
// cannot check: warp-level timing, races between blocks (blocks never overlap
// here), and the GPU's own math library (expf and log1pf here are the host's,
// within an ulp or two of CUDA's).


#include <math.h>

#include <atomic>
#include <barrier>
#include <cmath>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x = 0, y = 0, z = 0;
};

// CUDA's vector types, as the kernels' wide loads and stores use them.
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(4) uchar4 {
    unsigned char x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

// One block runs at a time, so the grid, the block index and __shared__
// arrays are process-wide; each emulated thread has its own thread index.
static dim3 gridDim;
static dim3 blockIdx;
static thread_local dim3 threadIdx;
static std::barrier<>* emu_block_barrier = nullptr;

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(threads, blocks)
#define __shared__ static

using std::isfinite;

inline void __syncthreads() { emu_block_barrier->arrive_and_wait(); }

inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
    std::atomic_ref<unsigned long long> a(*p);
    unsigned long long old = a.load();
    while (v < old && !a.compare_exchange_weak(old, v)) {
    }
    return old;
}

inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return std::atomic_ref<unsigned long long>(*p).fetch_add(v);
}

// Runs `kernel()` on a grid of grid_x x grid_y blocks of block_x x block_y
// threads. One team of threads serves every block: a barrier opens each block
// (after thread 0 has set blockIdx) and another closes it.
template <typename Kernel>
void emu_launch(unsigned grid_x, unsigned grid_y, unsigned block_x, unsigned block_y, Kernel kernel) {
    const unsigned threads = block_x * block_y;
    gridDim = dim3{grid_x, grid_y, 1};
    std::barrier<> block_barrier(threads);
    std::barrier<> step(threads);
    emu_block_barrier = &block_barrier;
    std::vector<std::thread> team;
    for (unsigned t = 0; t < threads; ++t) {
        team.emplace_back([&, t] {
            threadIdx = dim3{t % block_x, t / block_x, 0};
            for (unsigned by = 0; by < grid_y; ++by) {
                for (unsigned bx = 0; bx < grid_x; ++bx) {
                    if (t == 0) {
                        blockIdx = dim3{bx, by, 0};
                    }
                    step.arrive_and_wait();
                    kernel();
                    step.arrive_and_wait();
                }
            }
        });
    }
    for (auto& th : team) {
        th.join();
    }
    emu_block_barrier = nullptr;
}
