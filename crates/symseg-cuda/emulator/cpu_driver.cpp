// A CUDA driver on the CPU: the part of libcuda's API that cudarc and
// symseg's backend call, built as a shared library named libcuda.so, so that
// the backend's own host code (context, streams, allocations, the scratch
// words and their copies, every launch's argument list) runs in CI, where
// there is no GPU, against the CPU backend.
//
// A launch runs the kernel's emulator (cuda_on_cpu.h + the kernel's source +
// kernel_entry.cpp, one shared library per entry point, next to this one).
// The device is one "SM" of compute capability 9.0 holding two blocks, so
// every grid is small and each block strides over many tile pairs.
//
// Streams are asynchronous, as on a GPU, and late on purpose. A created
// stream runs its work on a thread of its own and holds each operation
// STREAM_LAG before running it. The default (null) stream runs its work at
// once, on the calling thread, after the blocking streams' work, as the
// legacy default stream does. So work that reads what another stream writes,
// ordered by nothing but luck (a missing event wait), reads it before it is
// written, and the tests see wrong values instead of right ones by chance.
// Events record a point in a stream; cuStreamWaitEvent holds a stream (or, for
// the null stream, the caller) until that point is reached.
//
// What it checks besides the kernels' values: every copy and memset lies
// inside one live allocation (CUDA_ERROR_INVALID_VALUE otherwise), every
// pointer a kernel is launched with is null or points into one, a module
// holds the entry point asked of it (its PTX names it), a launch has the
// block shape the kernels need, and a freed pointer is not freed again.

#include <dlfcn.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;

constexpr CUresult OK = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, INVALID_DEVICE = 101, INVALID_IMAGE = 200,
                   INVALID_HANDLE = 400, NOT_FOUND = 500, NOT_READY = 600, LAUNCH_FAILED = 719,
                   NOT_SUPPORTED = 801;

// How long a created stream holds each operation before it runs it.
constexpr auto STREAM_LAG = std::chrono::milliseconds(3);
constexpr unsigned STREAM_NON_BLOCKING = 1;

constexpr int SMS = 1, BLOCKS_PER_SM = 2, CC_MAJOR = 9, CC_MINOR = 0;
constexpr int ATTR_MAX_THREADS_PER_BLOCK = 1, ATTR_WARP_SIZE = 10, ATTR_MULTIPROCESSOR_COUNT = 16,
              ATTR_CC_MAJOR = 75, ATTR_CC_MINOR = 76, ATTR_MEMORY_POOLS_SUPPORTED = 115;

struct Context {
    int device = 0;
};
using Clock = std::chrono::steady_clock;

// A created stream: a queue of work and the thread that runs it, in order.
struct Stream {
    explicit Stream(unsigned f) : flags(f), worker([this] { run(); }) {}
    ~Stream() {
        {
            std::lock_guard<std::mutex> g(m);
            stop = true;
        }
        cv.notify_all();
        worker.join();  // after the queue is done: run() leaves only when it is empty
    }
    void push(std::function<void()> work) {
        {
            std::lock_guard<std::mutex> g(m);
            queue.push_back(std::move(work));
        }
        cv.notify_all();
    }
    void drain() {
        std::unique_lock<std::mutex> l(m);
        cv.wait(l, [&] { return queue.empty() && !busy; });
    }
    bool idle() {
        std::lock_guard<std::mutex> g(m);
        return queue.empty() && !busy;
    }

    const unsigned flags;

   private:
    void run() {
        std::unique_lock<std::mutex> l(m);
        for (;;) {
            cv.wait(l, [&] { return stop || !queue.empty(); });
            if (queue.empty()) {
                return;
            }
            std::function<void()> work = std::move(queue.front());
            queue.pop_front();
            busy = true;
            l.unlock();
            std::this_thread::sleep_for(STREAM_LAG);
            work();
            l.lock();
            busy = false;
            cv.notify_all();
        }
    }

    std::mutex m;
    std::condition_variable cv;
    std::deque<std::function<void()>> queue;
    bool busy = false, stop = false;
    std::thread worker;  // last: starts once the rest is built
};

// An event: how many times it has been recorded, and how many of those
// points its streams have reached (each record is one point).
struct Event {
    void reach(uint64_t point) {
        {
            std::lock_guard<std::mutex> g(m);
            if (point > reached) {
                reached = point;
                at = Clock::now();
            }
        }
        cv.notify_all();
    }
    void wait(uint64_t point) {
        std::unique_lock<std::mutex> l(m);
        cv.wait(l, [&] { return reached >= point; });
    }
    uint64_t record() {
        std::lock_guard<std::mutex> g(m);
        return ++recorded;
    }
    uint64_t last() {
        std::lock_guard<std::mutex> g(m);
        return recorded;
    }
    // The time the last record was reached, or nothing while it is pending
    // (or the event was never recorded).
    bool done_at(Clock::time_point* t) {
        std::lock_guard<std::mutex> g(m);
        *t = at;
        return recorded > 0 && reached >= recorded;
    }
    bool done() {
        std::lock_guard<std::mutex> g(m);
        return reached >= recorded;
    }

   private:
    std::mutex m;
    std::condition_variable cv;
    uint64_t recorded = 0, reached = 0;
    Clock::time_point at{};
};
struct Module {
    std::string ptx;
};
using IsDevice = int (*)(unsigned long long address);
using Capture = void* (*)(unsigned grid, unsigned block, void** params, IsDevice is_device, char* why,
                          size_t why_len);
using Run = void (*)(void* captured);
struct Function {
    Capture capture = nullptr;
    Run run = nullptr;
    std::string name;
};

Context primary;
int primary_refs = 0;
thread_local Context* current = nullptr;

std::mutex allocations_lock;
std::map<uintptr_t, size_t> allocations;  // start -> bytes

std::mutex streams_lock;
std::set<Stream*> streams;  // the live created streams

// Events stay alive while queued work refers to them, even once destroyed.
std::mutex events_lock;
std::map<void*, std::shared_ptr<Event>> events;

std::shared_ptr<Event> event_of(void* e) {
    std::lock_guard<std::mutex> g(events_lock);
    auto it = events.find(e);
    return it == events.end() ? nullptr : it->second;
}

// The null handle and CU_STREAM_LEGACY (1) name the legacy default stream,
// CU_STREAM_PER_THREAD (2) the per-thread one: both run their work at once.
bool is_default(void* s) { return reinterpret_cast<uintptr_t>(s) <= 2; }

Stream* stream_of(void* s) {
    std::lock_guard<std::mutex> g(streams_lock);
    auto* st = static_cast<Stream*>(s);
    return streams.count(st) != 0 ? st : nullptr;
}

// Waits for every created stream's work (all of them, or the blocking ones).
void drain_streams(bool blocking_only) {
    std::vector<Stream*> live;
    {
        std::lock_guard<std::mutex> g(streams_lock);
        live.assign(streams.begin(), streams.end());
    }
    for (Stream* st : live) {
        if (!blocking_only || (st->flags & STREAM_NON_BLOCKING) == 0) {
            st->drain();
        }
    }
}

// Queues `work` on stream `s`: on a created stream, behind its earlier work;
// on the default stream, now, after the blocking streams' work.
CUresult enqueue(void* s, std::function<void()> work) {
    if (is_default(s)) {
        drain_streams(true);
        work();
        return OK;
    }
    Stream* st = stream_of(s);
    if (st == nullptr) {
        return INVALID_HANDLE;
    }
    st->push(std::move(work));
    return OK;
}

// Queues `work` on `s` and waits for it (a copy into pageable host memory
// returns once it is done).
CUresult run_in_order(void* s, std::function<void()> work) {
    if (is_default(s)) {
        return enqueue(s, std::move(work));
    }
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> finished = done->get_future();
    const CUresult r = enqueue(s, [work = std::move(work), done] {
        work();
        done->set_value();
    });
    if (r == OK) {
        finished.wait();
    }
    return r;
}

// Where this library lies: the kernels' libraries are beside it.
std::string own_dir() {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&own_dir), &info) == 0 || info.dli_fname == nullptr) {
        return ".";
    }
    std::string path = info.dli_fname;
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

// Whether [p, p + len) lies inside one live allocation.
bool inside(CUdeviceptr p, size_t len) {
    std::lock_guard<std::mutex> g(allocations_lock);
    auto it = allocations.upper_bound(static_cast<uintptr_t>(p));
    if (it == allocations.begin()) {
        return false;
    }
    --it;
    return p >= it->first && p + len <= it->first + it->second;
}

void complain(const char* what) { std::fprintf(stderr, "symseg CPU driver: %s\n", what); }

CUresult free_now(CUdeviceptr p) {
    std::lock_guard<std::mutex> g(allocations_lock);
    auto it = allocations.find(static_cast<uintptr_t>(p));
    if (it == allocations.end()) {
        complain("cuMemFree of a pointer that is not a live allocation");
        return INVALID_VALUE;
    }
    allocations.erase(it);
    std::free(reinterpret_cast<void*>(p));
    return OK;
}

// Page-locked host memory (cuMemHostAlloc): start -> bytes. Copies between
// it and the device are asynchronous, as a GPU's are: a host-to-device copy
// reads it when its stream reaches the copy, not when the copy is queued,
// and a device-to-host copy returns at once and writes it in stream order,
// so a caller that touches it before waiting reads or overwrites the wrong
// words here too.
std::mutex pinned_lock;
std::map<uintptr_t, size_t> pinned;

bool is_pinned(const void* p, size_t len) {
    const auto a = reinterpret_cast<uintptr_t>(p);
    std::lock_guard<std::mutex> g(pinned_lock);
    auto it = pinned.upper_bound(a);
    if (it == pinned.begin()) {
        return false;
    }
    --it;
    return a >= it->first && a + len <= it->first + it->second;
}

// Whether a copy or memset of `len` bytes at `p` may go ahead (saying why not).
bool may_touch(CUdeviceptr p, size_t len, const char* what) {
    if (len == 0 || inside(p, len)) {
        return true;
    }
    std::fprintf(stderr, "symseg CPU driver: %s outside every allocation\n", what);
    return false;
}

}  // namespace

extern "C" {

CUresult cuInit(unsigned) { return OK; }

CUresult cuDriverGetVersion(int* v) {
    *v = 13000;
    return OK;
}

CUresult cuGetErrorName(CUresult e, const char** s) {
    switch (e) {
        case OK: *s = "CUDA_SUCCESS"; break;
        case INVALID_VALUE: *s = "CUDA_ERROR_INVALID_VALUE"; break;
        case OUT_OF_MEMORY: *s = "CUDA_ERROR_OUT_OF_MEMORY"; break;
        case INVALID_DEVICE: *s = "CUDA_ERROR_INVALID_DEVICE"; break;
        case INVALID_IMAGE: *s = "CUDA_ERROR_INVALID_IMAGE"; break;
        case INVALID_HANDLE: *s = "CUDA_ERROR_INVALID_HANDLE"; break;
        case NOT_FOUND: *s = "CUDA_ERROR_NOT_FOUND"; break;
        case LAUNCH_FAILED: *s = "CUDA_ERROR_LAUNCH_FAILED"; break;
        case NOT_SUPPORTED: *s = "CUDA_ERROR_NOT_SUPPORTED"; break;
        default: *s = "CUDA_ERROR_UNKNOWN"; return INVALID_VALUE;
    }
    return OK;
}

CUresult cuGetErrorString(CUresult e, const char** s) { return cuGetErrorName(e, s); }

CUresult cuDeviceGetCount(int* n) {
    *n = 1;
    return OK;
}

CUresult cuDeviceGet(CUdevice* d, int ordinal) {
    if (ordinal != 0) {
        return INVALID_DEVICE;
    }
    *d = 0;
    return OK;
}

CUresult cuDeviceGetName(char* name, int len, CUdevice d) {
    if (d != 0 || len <= 0) {
        return INVALID_VALUE;
    }
    std::snprintf(name, static_cast<size_t>(len), "symseg CPU driver (emulated sm_90)");
    return OK;
}

CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice) {
    *bytes = size_t{1} << 34;
    return OK;
}

CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
    *free_bytes = *total = size_t{1} << 34;
    return OK;
}

CUresult cuDeviceGetAttribute(int* v, int attr, CUdevice d) {
    if (d != 0) {
        return INVALID_DEVICE;
    }
    switch (attr) {
        case ATTR_MAX_THREADS_PER_BLOCK: *v = 1024; break;
        case ATTR_WARP_SIZE: *v = 32; break;
        case ATTR_MULTIPROCESSOR_COUNT: *v = SMS; break;
        case ATTR_CC_MAJOR: *v = CC_MAJOR; break;
        case ATTR_CC_MINOR: *v = CC_MINOR; break;
        case ATTR_MEMORY_POOLS_SUPPORTED: *v = 0; break;  // cudarc then allocates with cuMemAlloc
        default: *v = 0;
    }
    return OK;
}

CUresult cuDevicePrimaryCtxRetain(void** ctx, CUdevice d) {
    if (d != 0) {
        return INVALID_DEVICE;
    }
    ++primary_refs;
    *ctx = &primary;
    return OK;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) {
    if (d != 0 || primary_refs == 0) {
        return INVALID_VALUE;
    }
    --primary_refs;
    return OK;
}

CUresult cuCtxGetCurrent(void** ctx) {
    *ctx = current;
    return OK;
}

CUresult cuCtxSetCurrent(void* ctx) {
    if (ctx != nullptr && ctx != &primary) {
        return INVALID_HANDLE;
    }
    current = static_cast<Context*>(ctx);
    return OK;
}

CUresult cuCtxGetDevice(CUdevice* d) {
    *d = 0;
    return OK;
}

CUresult cuCtxSynchronize() {
    drain_streams(false);
    return OK;
}

CUresult cuStreamCreate(void** s, unsigned flags) {
    auto* st = new Stream(flags);
    std::lock_guard<std::mutex> g(streams_lock);
    streams.insert(st);
    *s = st;
    return OK;
}

CUresult cuStreamDestroy_v2(void* s) {
    Stream* st = stream_of(s);
    if (st == nullptr) {
        return INVALID_HANDLE;
    }
    {
        std::lock_guard<std::mutex> g(streams_lock);
        streams.erase(st);
    }
    delete st;  // runs what is queued first, as CUDA does
    return OK;
}

CUresult cuStreamSynchronize(void* s) {
    if (is_default(s)) {
        drain_streams(true);
        return OK;
    }
    Stream* st = stream_of(s);
    if (st == nullptr) {
        return INVALID_HANDLE;
    }
    st->drain();
    return OK;
}

CUresult cuStreamQuery(void* s) {
    if (is_default(s)) {
        return OK;
    }
    Stream* st = stream_of(s);
    if (st == nullptr) {
        return INVALID_HANDLE;
    }
    return st->idle() ? OK : NOT_READY;
}

CUresult cuStreamWaitEvent(void* s, void* e, unsigned) {
    auto ev = event_of(e);
    if (ev == nullptr) {
        return INVALID_HANDLE;
    }
    // The event's latest record at the time of the call, as CUDA waits for.
    const uint64_t point = ev->last();
    return enqueue(s, [ev, point] { ev->wait(point); });
}

CUresult cuEventCreate(void** e, unsigned) {
    auto ev = std::make_shared<Event>();
    std::lock_guard<std::mutex> g(events_lock);
    events[ev.get()] = ev;
    *e = ev.get();
    return OK;
}

CUresult cuEventDestroy_v2(void* e) {
    std::lock_guard<std::mutex> g(events_lock);
    return events.erase(e) == 1 ? OK : INVALID_HANDLE;
}

CUresult cuEventRecord(void* e, void* s) {
    auto ev = event_of(e);
    if (ev == nullptr) {
        return INVALID_HANDLE;
    }
    const uint64_t point = ev->record();
    return enqueue(s, [ev, point] { ev->reach(point); });
}

CUresult cuEventSynchronize(void* e) {
    auto ev = event_of(e);
    if (ev == nullptr) {
        return INVALID_HANDLE;
    }
    ev->wait(ev->last());
    return OK;
}

CUresult cuEventQuery(void* e) {
    auto ev = event_of(e);
    if (ev == nullptr) {
        return INVALID_HANDLE;
    }
    return ev->done() ? OK : NOT_READY;
}

CUresult cuEventElapsedTime(float* ms, void* a, void* b) {
    auto start = event_of(a), end = event_of(b);
    if (start == nullptr || end == nullptr) {
        return INVALID_HANDLE;
    }
    Clock::time_point t0, t1;
    if (!start->done_at(&t0) || !end->done_at(&t1)) {
        return NOT_READY;
    }
    *ms = std::chrono::duration<float, std::milli>(t1 - t0).count();
    return OK;
}

CUresult cuEventElapsedTime_v2(float* ms, void* a, void* b) { return cuEventElapsedTime(ms, a, b); }

CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) {
    // 256-byte aligned, as cudaMalloc's memory is; a byte more so that no
    // two allocations (zero-sized included) share a start.
    void* m = std::aligned_alloc(256, (bytes + 256) / 256 * 256);
    if (m == nullptr) {
        return OUT_OF_MEMORY;
    }
    std::lock_guard<std::mutex> g(allocations_lock);
    allocations[reinterpret_cast<uintptr_t>(m)] = bytes;
    *p = reinterpret_cast<uintptr_t>(m);
    return OK;
}

CUresult cuMemFree_v2(CUdeviceptr p) {
    // cuMemFree waits for the device: work queued before may still use it.
    drain_streams(false);
    return free_now(p);
}

CUresult cuMemAllocAsync(CUdeviceptr* p, size_t bytes, void*) { return cuMemAlloc_v2(p, bytes); }
CUresult cuMemFreeAsync(CUdeviceptr p, void* s) {
    return enqueue(s, [p] { free_now(p); });
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t bytes) {
    drain_streams(true);  // on the legacy default stream
    if (!may_touch(dst, bytes, "a host-to-device copy")) {
        return INVALID_VALUE;
    }
    std::memcpy(reinterpret_cast<void*>(dst), src, bytes);
    return OK;
}

CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t bytes) {
    drain_streams(true);  // on the legacy default stream
    if (!may_touch(src, bytes, "a device-to-host copy")) {
        return INVALID_VALUE;
    }
    std::memcpy(dst, reinterpret_cast<const void*>(src), bytes);
    return OK;
}

CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
    drain_streams(true);  // on the legacy default stream
    if (!may_touch(dst, bytes, "a device-to-device copy") || !may_touch(src, bytes, "a device-to-device copy")) {
        return INVALID_VALUE;
    }
    std::memmove(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), bytes);
    return OK;
}

// From pageable host memory: the source is staged before the call returns
// (the caller may reuse it), the device written when the stream gets there.
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t bytes, void* s) {
    if (!may_touch(dst, bytes, "a host-to-device copy")) {
        return INVALID_VALUE;
    }
    if (is_pinned(src, bytes)) {
        return enqueue(s, [dst, src, bytes] { std::memcpy(reinterpret_cast<void*>(dst), src, bytes); });
    }
    // From pageable memory: staged now, so the caller may reuse it at once.
    const auto* from = static_cast<const unsigned char*>(src);
    auto staged = std::make_shared<std::vector<unsigned char>>(from, from + bytes);
    return enqueue(s, [dst, staged] { std::memcpy(reinterpret_cast<void*>(dst), staged->data(), staged->size()); });
}
// Into pageable host memory: returns once the copy, in stream order, is
// done; into page-locked memory, at once (see `pinned`).
CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t bytes, void* s) {
    if (!may_touch(src, bytes, "a device-to-host copy")) {
        return INVALID_VALUE;
    }
    auto copy = [dst, src, bytes] { std::memcpy(dst, reinterpret_cast<const void*>(src), bytes); };
    return is_pinned(dst, bytes) ? enqueue(s, copy) : run_in_order(s, copy);
}

CUresult cuMemHostAlloc(void** p, size_t bytes, unsigned) {
    void* m = std::aligned_alloc(256, (bytes + 256) / 256 * 256);
    if (m == nullptr) {
        return OUT_OF_MEMORY;
    }
    std::lock_guard<std::mutex> g(pinned_lock);
    pinned[reinterpret_cast<uintptr_t>(m)] = bytes;
    *p = m;
    return OK;
}

CUresult cuMemFreeHost(void* p) {
    // Queued copies may still use it.
    drain_streams(false);
    std::lock_guard<std::mutex> g(pinned_lock);
    if (pinned.erase(reinterpret_cast<uintptr_t>(p)) == 0) {
        complain("cuMemFreeHost of a pointer that is not page-locked memory");
        return INVALID_VALUE;
    }
    std::free(p);
    return OK;
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes, void* s) {
    if (!may_touch(dst, bytes, "a device-to-device copy") || !may_touch(src, bytes, "a device-to-device copy")) {
        return INVALID_VALUE;
    }
    return enqueue(s, [dst, src, bytes] {
        std::memmove(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), bytes);
    });
}

CUresult cuMemsetD8_v2(CUdeviceptr p, unsigned char v, size_t n) {
    drain_streams(true);  // on the legacy default stream
    if (!may_touch(p, n, "a memset")) {
        return INVALID_VALUE;
    }
    std::memset(reinterpret_cast<void*>(p), v, n);
    return OK;
}

CUresult cuMemsetD8Async(CUdeviceptr p, unsigned char v, size_t n, void* s) {
    if (!may_touch(p, n, "a memset")) {
        return INVALID_VALUE;
    }
    return enqueue(s, [p, v, n] { std::memset(reinterpret_cast<void*>(p), v, n); });
}

CUresult cuModuleLoadData(void** m, const void* image) {
    if (image == nullptr) {
        return INVALID_IMAGE;
    }
    *m = new Module{static_cast<const char*>(image)};
    return OK;
}

CUresult cuModuleUnload(void* m) {
    delete static_cast<Module*>(m);
    return OK;
}

CUresult cuModuleGetFunction(void** f, void* m, const char* name) {
    const auto* module = static_cast<const Module*>(m);
    if (module == nullptr || name == nullptr) {
        return INVALID_HANDLE;
    }
    // The PTX NVRTC made must declare the entry point (`.entry name(`).
    if (module->ptx.find(".entry " + std::string(name) + "(") == std::string::npos) {
        complain("cuModuleGetFunction: the module's PTX has no such entry point");
        return NOT_FOUND;
    }
    const std::string path = own_dir() + "/" + name + ".so";
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
        complain(dlerror());
        return NOT_FOUND;
    }
    auto capture = reinterpret_cast<Capture>(dlsym(lib, "emu_capture"));
    auto run = reinterpret_cast<Run>(dlsym(lib, "emu_run"));
    if (capture == nullptr || run == nullptr) {
        return NOT_FOUND;
    }
    *f = new Function{capture, run, name};
    return OK;
}

CUresult cuFuncGetAttribute(int* v, int, void*) {
    *v = 0;
    return OK;
}

CUresult cuFuncSetAttribute(void*, int, int) { return OK; }

CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, void* f, int block_size, size_t) {
    if (f == nullptr || block_size <= 0) {
        return INVALID_VALUE;
    }
    *blocks = BLOCKS_PER_SM;
    return OK;
}

CUresult cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int* blocks, void* f, int block_size, size_t smem,
                                                               unsigned) {
    return cuOccupancyMaxActiveBlocksPerMultiprocessor(blocks, f, block_size, smem);
}

CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared_bytes, void* s, void** params, void** extra) {
    const auto* fn = static_cast<const Function*>(f);
    if (fn == nullptr) {
        return INVALID_HANDLE;
    }
    // symseg's kernels take 1-D grids and blocks, static shared memory only,
    // and their arguments as a parameter array.
    if (gy != 1 || gz != 1 || by != 1 || bz != 1 || shared_bytes != 0 || extra != nullptr || params == nullptr ||
        gx == 0) {
        complain("cuLaunchKernel: a launch shape symseg's kernels do not take");
        return INVALID_VALUE;
    }
    char why[256] = {0};
    const IsDevice is_device = [](unsigned long long p) { return inside(p, 1) ? 1 : 0; };
    void* launch = fn->capture(gx, bx, params, is_device, why, sizeof why);
    if (launch == nullptr) {
        std::fprintf(stderr, "symseg CPU driver: %s: %s\n", fn->name.c_str(), why);
        return INVALID_VALUE;
    }
    const Run run = fn->run;
    return enqueue(s, [run, launch] {
        // One launch at a time: a kernel's emulator keeps its grid, block
        // index and __shared__ arrays process-wide, and streams run at once.
        static std::mutex launch_lock;
        std::lock_guard<std::mutex> one_at_a_time(launch_lock);
        run(launch);
    });
}

}  // extern "C"
