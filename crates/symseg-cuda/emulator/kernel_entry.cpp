// One kernel as the CPU driver (cpu_driver.cpp) launches it: appended to
// cuda_on_cpu.h and the kernel's NVRTC source, with EMU_ENTRY naming its
// entry point. The arguments come as cuLaunchKernel's array of pointers, one
// per parameter; each is read as the type the kernel's own declaration
// gives, as the GPU reads it, so a host argument of the wrong width or order
// reads wrong here too.
//
// A launch is captured when it is queued (the argument values copied, as
// cuLaunchKernel does: the caller may reuse them once it returns) and run
// when its stream reaches it.
#include <cstdio>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace {

struct Launch {
    unsigned grid;
    std::function<void()> body;
};

template <typename... A, size_t... I>
Launch* emu_capture_args(void (*kernel)(A...), unsigned grid, void** params, std::index_sequence<I...>) {
    std::tuple<std::remove_cv_t<A>...> args(*static_cast<std::remove_cv_t<A>*>(params[I])...);
    return new Launch{grid, [kernel, args] { std::apply(kernel, args); }};
}

template <typename... A>
Launch* emu_capture_all(void (*kernel)(A...), unsigned grid, void** params) {
    return emu_capture_args(kernel, grid, params, std::index_sequence_for<A...>{});
}

}  // namespace

// The launch of `grid` blocks with `params`, to run later with emu_run; null
// (saying why) when the kernel cannot be launched so.
extern "C" void* emu_capture(unsigned grid, unsigned block, void** params, char* why, size_t why_len) {
    if (block != THREADS) {
        std::snprintf(why, why_len, "a block of %u threads; the kernel is written for %u", block, (unsigned)THREADS);
        return nullptr;
    }
    return emu_capture_all(&EMU_ENTRY, grid, params);
}

// Runs a captured launch and frees it.
extern "C" void emu_run(void* captured) {
    auto* launch = static_cast<Launch*>(captured);
    emu_launch(launch->grid, 1, THREADS, 1, launch->body);
    delete launch;
}
