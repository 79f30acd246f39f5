// One kernel as the CPU driver (cpu_driver.cpp) launches it: appended to
// cuda_on_cpu.h and the kernel's NVRTC source, with EMU_ENTRY naming its
// entry point. The arguments come as cuLaunchKernel's array of pointers, one
// per parameter; each is read as the type the kernel's own declaration
// gives, as the GPU reads it, so a host argument of the wrong width or order
// reads wrong here too.
//
// A launch is captured when it is queued (the argument values copied, as
// cuLaunchKernel does: the caller may reuse them once it returns) and run
// when its stream reaches it. Every pointer parameter must be null or point
// into a live allocation of the driver's (`is_device` says which).
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

using IsDevice = int (*)(unsigned long long address);

// The index of the first pointer argument that is neither null nor device
// memory, or -1.
template <typename... A, size_t... I>
int stray_pointer(const std::tuple<A...>& args, IsDevice is_device, std::index_sequence<I...>) {
    int found = -1;
    auto check = [&](int index, const auto& v) {
        if constexpr (std::is_pointer_v<std::decay_t<decltype(v)>>) {
            if (found < 0 && v != nullptr && !is_device(reinterpret_cast<unsigned long long>(v))) {
                found = index;
            }
        }
    };
    (check(static_cast<int>(I), std::get<I>(args)), ...);
    return found;
}

template <typename... A, size_t... I>
Launch* emu_capture_args(void (*kernel)(A...), unsigned grid, void** params, IsDevice is_device, char* why,
                         size_t why_len, std::index_sequence<I...> seq) {
    std::tuple<std::remove_cv_t<A>...> args(*static_cast<std::remove_cv_t<A>*>(params[I])...);
    const int stray = stray_pointer(args, is_device, seq);
    if (stray >= 0) {
        std::snprintf(why, why_len, "parameter %d is a pointer outside every allocation", stray);
        return nullptr;
    }
    return new Launch{grid, [kernel, args] { std::apply(kernel, args); }};
}

template <typename... A>
Launch* emu_capture_all(void (*kernel)(A...), unsigned grid, void** params, IsDevice is_device, char* why,
                        size_t why_len) {
    return emu_capture_args(kernel, grid, params, is_device, why, why_len, std::index_sequence_for<A...>{});
}

}  // namespace

// The launch of `grid` blocks with `params`, to run later with emu_run; null
// (saying why) when the kernel cannot be launched so.
extern "C" void* emu_capture(unsigned grid, unsigned block, void** params, IsDevice is_device, char* why,
                             size_t why_len) {
    if (block != THREADS) {
        std::snprintf(why, why_len, "a block of %u threads; the kernel is written for %u", block, (unsigned)THREADS);
        return nullptr;
    }
    return emu_capture_all(&EMU_ENTRY, grid, params, is_device, why, why_len);
}

// Runs a captured launch and frees it.
extern "C" void emu_run(void* captured) {
    auto* launch = static_cast<Launch*>(captured);
    emu_launch(launch->grid, 1, THREADS, 1, launch->body);
    delete launch;
}
