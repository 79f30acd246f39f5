// A CUDA driver on the CPU: the part of libcuda's API that cudarc and
// symseg's backend call, built as a shared library named libcuda.so, so that
// the backend's own host code (context, streams, allocations, the scratch
// words and their copies, every launch's argument list) runs in CI, where
// there is no GPU, against the CPU backend.
//
// A launch runs the kernel's emulator (cuda_on_cpu.h + the kernel's source +
// kernel_entry.cpp, one shared library per entry point, next to this one) at
// once, on the calling thread: every stream is always idle, which is a legal
// (if strict) schedule of CUDA's stream semantics. The device is one "SM" of
// compute capability 9.0 holding two blocks, so every grid is small and each
// block strides over many tile pairs.
//
// What it checks besides the kernels' values: every copy and memset lies
// inside one live allocation (CUDA_ERROR_INVALID_VALUE otherwise), a module
// holds the entry point asked of it (its PTX names it), a launch has the
// block shape the kernels need, and a freed pointer is not freed again.

#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

namespace {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;

constexpr CUresult OK = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, INVALID_DEVICE = 101, INVALID_IMAGE = 200,
                   INVALID_HANDLE = 400, NOT_FOUND = 500, LAUNCH_FAILED = 719, NOT_SUPPORTED = 801;

constexpr int SMS = 1, BLOCKS_PER_SM = 2, CC_MAJOR = 9, CC_MINOR = 0;
constexpr int ATTR_MAX_THREADS_PER_BLOCK = 1, ATTR_WARP_SIZE = 10, ATTR_MULTIPROCESSOR_COUNT = 16,
              ATTR_CC_MAJOR = 75, ATTR_CC_MINOR = 76, ATTR_MEMORY_POOLS_SUPPORTED = 115;

struct Context {
    int device = 0;
};
struct Stream {
    unsigned flags = 0;
};
struct Event {
    unsigned flags = 0;
};
struct Module {
    std::string ptx;
};
using Entry = int (*)(unsigned grid, unsigned block, void** params, char* why, size_t why_len);
struct Function {
    Entry entry = nullptr;
    std::string name;
};

Context primary;
int primary_refs = 0;
thread_local Context* current = nullptr;

std::mutex allocations_lock;
std::map<uintptr_t, size_t> allocations;  // start -> bytes

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

CUresult cuCtxSynchronize() { return OK; }

CUresult cuStreamCreate(void** s, unsigned flags) {
    *s = new Stream{flags};
    return OK;
}

CUresult cuStreamDestroy_v2(void* s) {
    delete static_cast<Stream*>(s);
    return OK;
}

CUresult cuStreamSynchronize(void*) { return OK; }
CUresult cuStreamQuery(void*) { return OK; }
CUresult cuStreamWaitEvent(void*, void* e, unsigned) { return e == nullptr ? INVALID_HANDLE : OK; }

CUresult cuEventCreate(void** e, unsigned flags) {
    *e = new Event{flags};
    return OK;
}

CUresult cuEventDestroy_v2(void* e) {
    delete static_cast<Event*>(e);
    return OK;
}

CUresult cuEventRecord(void* e, void*) { return e == nullptr ? INVALID_HANDLE : OK; }
CUresult cuEventSynchronize(void* e) { return e == nullptr ? INVALID_HANDLE : OK; }
CUresult cuEventQuery(void* e) { return e == nullptr ? INVALID_HANDLE : OK; }

CUresult cuEventElapsedTime(float* ms, void*, void*) {
    *ms = 0.0f;  // no clock: every stream is idle when an event is recorded
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

CUresult cuMemAllocAsync(CUdeviceptr* p, size_t bytes, void*) { return cuMemAlloc_v2(p, bytes); }
CUresult cuMemFreeAsync(CUdeviceptr p, void*) { return cuMemFree_v2(p); }

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t bytes) {
    if (!may_touch(dst, bytes, "a host-to-device copy")) {
        return INVALID_VALUE;
    }
    std::memcpy(reinterpret_cast<void*>(dst), src, bytes);
    return OK;
}

CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t bytes) {
    if (!may_touch(src, bytes, "a device-to-host copy")) {
        return INVALID_VALUE;
    }
    std::memcpy(dst, reinterpret_cast<const void*>(src), bytes);
    return OK;
}

CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
    if (!may_touch(dst, bytes, "a device-to-device copy") || !may_touch(src, bytes, "a device-to-device copy")) {
        return INVALID_VALUE;
    }
    std::memmove(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), bytes);
    return OK;
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t bytes, void*) {
    return cuMemcpyHtoD_v2(dst, src, bytes);
}
CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t bytes, void*) {
    return cuMemcpyDtoH_v2(dst, src, bytes);
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes, void*) {
    return cuMemcpyDtoD_v2(dst, src, bytes);
}

CUresult cuMemsetD8_v2(CUdeviceptr p, unsigned char v, size_t n) {
    if (!may_touch(p, n, "a memset")) {
        return INVALID_VALUE;
    }
    std::memset(reinterpret_cast<void*>(p), v, n);
    return OK;
}

CUresult cuMemsetD8Async(CUdeviceptr p, unsigned char v, size_t n, void*) { return cuMemsetD8_v2(p, v, n); }

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
    auto entry = reinterpret_cast<Entry>(dlsym(lib, "emu_entry"));
    if (entry == nullptr) {
        return NOT_FOUND;
    }
    *f = new Function{entry, name};
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
                        unsigned shared_bytes, void*, void** params, void** extra) {
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
    // One launch at a time: a kernel's emulator keeps its grid, block index
    // and __shared__ arrays process-wide, and test threads launch at once.
    static std::mutex launch_lock;
    std::lock_guard<std::mutex> one_at_a_time(launch_lock);
    char why[256] = {0};
    if (fn->entry(gx, bx, params, why, sizeof why) != 0) {
        std::fprintf(stderr, "symseg CPU driver: %s: %s\n", fn->name.c_str(), why);
        return LAUNCH_FAILED;
    }
    return OK;
}

}  // extern "C"
