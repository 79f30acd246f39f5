// One kernel as the CPU driver (cpu_driver.cpp) launches it: appended to
// cuda_on_cpu.h and the kernel's NVRTC source, with EMU_ENTRY naming its
// entry point. The arguments come as cuLaunchKernel's array of pointers, one
// per parameter; each is read as the type the kernel's own declaration
// gives, as the GPU reads it, so a host argument of the wrong width or order
// reads wrong here too.
#include <cstdio>
#include <type_traits>
#include <utility>

template <typename... A, size_t... I>
void emu_call(void (*kernel)(A...), void** params, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<A>*>(params[I])...);
}

template <typename... A>
void emu_call_all(void (*kernel)(A...), void** params) {
    emu_call(kernel, params, std::index_sequence_for<A...>{});
}

extern "C" int emu_entry(unsigned grid, unsigned block, void** params, char* why, size_t why_len) {
    if (block != THREADS) {
        std::snprintf(why, why_len, "a block of %u threads; the kernel is written for %u", block, (unsigned)THREADS);
        return 1;
    }
    emu_launch(grid, 1, block, 1, [&] { emu_call_all(&EMU_ENTRY, params); });
    return 0;
}
