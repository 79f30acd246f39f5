// Just enough of CUDA C to run symseg's kernels on the CPU, for the tests
// (no GPU in CI): each launch runs its blocks one after another, and each
// block's THREADS threads meet at a real barrier in __syncthreads, so
// shared-memory staging, barriers and block reductions execute as written.
// The threads are OS threads (the emulated tests: under AddressSanitizer an
// index outside a buffer fails the test, under ThreadSanitizer so does a
// missing __syncthreads), or, with EMU_FIBERS (the CPU driver), fibers on
// the launching thread, many times faster. What this cannot check:
// warp-level timing, races between blocks (blocks never overlap here), and
// the GPU's own math (expf here is the host's, within an ulp or two of
// CUDA's; the hardware reciprocal `rcp.approx` is an exact division here).

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
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(4) uchar4 {
    unsigned char x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

// One block runs at a time, so the grid, the block index and __shared__
// arrays are process-wide.
static dim3 gridDim;
static dim3 blockIdx;

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(threads, blocks)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

using std::isfinite;

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

inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// A load cached in L2 only: on the CPU, a load.
template <class T>
inline T __ldcg(const T* p) { return *p; }

#if defined(EMU_FIBERS)
// A block's threads as fibers on the launching thread (the CPU driver's
// mode): __syncthreads switches to the next fiber, so a barrier costs a few
// context switches instead of waking THREADS OS threads. The scheduler runs
// every fiber up to its next barrier, then the next round; a round in which
// some threads wait at a barrier while others have returned is a divergent
// __syncthreads, which it reports (CUDA leaves it undefined).
#include <ucontext.h>

#include <cstdio>
#include <cstdlib>

static dim3 threadIdx;

struct EmuFibers {
    enum State { RUNNING, WAITING, DONE };
    ucontext_t scheduler;
    std::vector<ucontext_t> context;
    std::vector<std::vector<char>> stack;
    std::vector<State> state;
    unsigned current = 0;
    void (*call)(void*) = nullptr;
    void* kernel = nullptr;
};
static EmuFibers* emu_fibers = nullptr;

inline void __syncthreads() {
    EmuFibers& f = *emu_fibers;
    f.state[f.current] = EmuFibers::WAITING;
    swapcontext(&f.context[f.current], &f.scheduler);
}

inline void emu_fiber_main() {
    emu_fibers->call(emu_fibers->kernel);
    emu_fibers->state[emu_fibers->current] = EmuFibers::DONE;
    // Returning resumes uc_link, the scheduler.
}

template <typename Kernel>
void emu_launch(unsigned grid_x, unsigned grid_y, unsigned block_x, unsigned block_y, Kernel kernel) {
    const unsigned threads = block_x * block_y;
    gridDim = dim3{grid_x, grid_y, 1};
    EmuFibers f;
    f.context.resize(threads);
    f.stack.assign(threads, std::vector<char>(64 * 1024));
    f.call = [](void* k) { (*static_cast<Kernel*>(k))(); };
    f.kernel = &kernel;
    emu_fibers = &f;
    for (unsigned by = 0; by < grid_y; ++by) {
        for (unsigned bx = 0; bx < grid_x; ++bx) {
            blockIdx = dim3{bx, by, 0};
            f.state.assign(threads, EmuFibers::RUNNING);
            for (unsigned t = 0; t < threads; ++t) {
                getcontext(&f.context[t]);
                f.context[t].uc_stack.ss_sp = f.stack[t].data();
                f.context[t].uc_stack.ss_size = f.stack[t].size();
                f.context[t].uc_link = &f.scheduler;
                makecontext(&f.context[t], emu_fiber_main, 0);
            }
            for (;;) {
                unsigned waiting = 0, done = 0;
                for (unsigned t = 0; t < threads; ++t) {
                    if (f.state[t] == EmuFibers::DONE) {
                        ++done;
                        continue;
                    }
                    f.current = t;
                    f.state[t] = EmuFibers::RUNNING;
                    threadIdx = dim3{t % block_x, t / block_x, 0};
                    swapcontext(&f.scheduler, &f.context[t]);
                    ++(f.state[t] == EmuFibers::DONE ? done : waiting);
                }
                if (waiting == 0) {
                    break;
                }
                if (done != 0) {
                    std::fprintf(stderr, "emulator: block %u: %u threads wait at __syncthreads, %u have returned\n",
                                 bx, waiting, done);
                    std::abort();
                }
            }
        }
    }
    emu_fibers = nullptr;
}
#else
// Each emulated thread is an OS thread with its own thread index; blocks
// meet at a real barrier, which ThreadSanitizer understands.
static thread_local dim3 threadIdx;
static std::barrier<>* emu_block_barrier = nullptr;

inline void __syncthreads() { emu_block_barrier->arrive_and_wait(); }

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
#endif
