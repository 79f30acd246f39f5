// The test's side of one emulated launch: read the grid, the kernel's scalar
// arguments and input buffers from stdin (little-endian, in the kernel's
// parameter order), launch it, and write its output buffers to stdout.
// Buffers are exactly their tensors' size, so AddressSanitizer sees any index
// past them; their storage is 16-byte aligned, as cudaMalloc's is (more), so
// UBSan's alignment check sees a wide access the layout does not allow.
// Exactly one EMU_* macro selects the kernel.
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace emu {

template <typename T>
T get() {
    T v;
    if (std::fread(&v, sizeof v, 1, stdin) != 1) {
        std::fprintf(stderr, "emulator: short input\n");
        std::exit(2);
    }
    return v;
}

template <typename T>
std::vector<T> get_vec(size_t n) {
    std::vector<T> v(n);
    if (n && std::fread(v.data(), sizeof(T), n, stdin) != n) {
        std::fprintf(stderr, "emulator: short input\n");
        std::exit(2);
    }
    return v;
}

template <typename T>
void put(const std::vector<T>& v) {
    if (!v.empty()) {
        std::fwrite(v.data(), sizeof(T), v.size(), stdout);
    }
}

template <typename T>
T* or_null(std::vector<T>& v, bool present) {
    return present ? v.data() : nullptr;
}

}  // namespace emu

int main() {
    using namespace emu;
    const unsigned blocks = get<unsigned>();
    const long long batch = get<long long>(), n = get<long long>();
    const int wide = get<int>();
    const size_t samples = (size_t)batch, len = samples * (size_t)n * (size_t)n;
    const auto launch = [&](auto kernel) { emu_launch(blocks, 1, THREADS, 1, kernel); };
#if defined(EMU_SCAN)
    const long long sep = get<long long>();
    const int require_symmetric = get<int>(), has_mask = get<int>();
    auto y = get_vec<u8>(len);
    auto mask = get_vec<u8>(has_mask ? len : 0);
    auto lengths = get_vec<long long>(samples);
    std::vector<u64> counts(2 * (size_t)samples, 0), violation(1, ~0ull);
    launch([&] {
        symseg_scan(y.data(), or_null(mask, has_mask), lengths.data(), batch, n, sep, wide, require_symmetric,
                    counts.data(), violation.data());
    });
    put(counts);
    put(violation);
#elif defined(EMU_SCAN_ROWS)
    const long long sep = get<long long>();
    const int require_symmetric = get<int>(), band = get<int>();
    auto y = get_vec<u8>(len);
    auto lengths = get_vec<long long>(samples);
    std::vector<u64> counts(2 * (size_t)samples, 0), violation(1, ~0ull), tally(2, 0);
    launch([&] {
        symseg_scan_rows(y.data(), lengths.data(), batch, n, sep, wide, require_symmetric, band, counts.data(),
                         violation.data(), tally.data());
    });
    put(counts);
    put(violation);
    put(tally);
#elif defined(EMU_LOSS) || defined(EMU_LOSS_ROWS)
    const long long sep = get<long long>();
    const int strategy = get<int>();
    const float w_pos = get<float>(), w_neg = get<float>(), gamma = get<float>();
    const int kind = get<int>(), pen_kind = get<int>(), pen_probs = get<int>();
    const float delta = get<float>();
    const int has_mask = get<int>(), has_grad = get<int>();
    auto x = get_vec<float>(len);
    auto y = get_vec<u8>(len);
    auto mask = get_vec<u8>(has_mask ? len : 0);
    auto lengths = get_vec<long long>(samples);
    auto r = get_vec<double>(samples);
    auto wp = get_vec<double>(samples);
    std::vector<u64> violation(1, get<u64>());
    // A value no kernel writes, so the test sees any gradient element left unwritten.
    std::vector<float> grad(has_grad ? len : 0, 1234.5f);
    std::vector<double> partial(2 * (size_t)blocks, NAN);
    std::vector<u64> bad(1, ~0ull);
#ifdef EMU_LOSS_ROWS
    auto* kernel = &symseg_loss_rows;  // the same parameters as symseg_loss
#else
    auto* kernel = &symseg_loss;
#endif
    launch([&] {
        kernel(x.data(), y.data(), or_null(mask, has_mask), or_null(grad, has_grad), lengths.data(), batch, n,
               sep, wide, strategy, w_pos, w_neg, gamma, kind, pen_kind, pen_probs, delta, r.data(), wp.data(),
               violation.data(), partial.data(), bad.data());
    });
    put(grad);
    put(partial);
    put(bad);
#elif defined(EMU_LOSS_ROWS_CHECKED)
    const long long sep = get<long long>();
    const int strategy = get<int>();
    const float w_pos = get<float>(), w_neg = get<float>(), gamma = get<float>();
    const int kind = get<int>(), require_symmetric = get<int>(), has_grad = get<int>();
    auto x = get_vec<float>(len);
    auto y = get_vec<u8>(len);
    auto lengths = get_vec<long long>(samples);
    auto r = get_vec<double>(samples);
    std::vector<float> grad(has_grad ? len : 0, 1234.5f);
    std::vector<u64> ignored(2 * (size_t)samples, 0), violation(1, ~0ull), tally(2, 0), bad(1, ~0ull);
    std::vector<double> partial(2 * (size_t)blocks, NAN);
    launch([&] {
        symseg_loss_rows_checked(x.data(), y.data(), or_null(grad, has_grad), lengths.data(), batch, n, sep, wide,
                                 strategy, w_pos, w_neg, gamma, kind, require_symmetric, r.data(), ignored.data(),
                                 violation.data(), tally.data(), partial.data(), bad.data());
    });
    put(grad);
    put(partial);
    put(bad);
    put(ignored);
    put(violation);
    put(tally);
#elif defined(EMU_LOSS_CHECKED)
    const long long sep = get<long long>();
    const int strategy = get<int>();
    const float w_pos = get<float>(), w_neg = get<float>(), gamma = get<float>();
    const int kind = get<int>(), pen_kind = get<int>(), pen_probs = get<int>();
    const float delta = get<float>();
    const int require_symmetric = get<int>(), has_grad = get<int>();
    auto x = get_vec<float>(len);
    auto y = get_vec<u8>(len);
    auto lengths = get_vec<long long>(samples);
    auto r = get_vec<double>(samples);
    auto wp = get_vec<double>(samples);
    std::vector<float> grad(has_grad ? len : 0, 1234.5f);
    std::vector<u64> ignored(2 * (size_t)samples, 0), violation(1, ~0ull), bad(1, ~0ull);
    std::vector<double> partial(2 * (size_t)blocks, NAN);
    launch([&] {
        symseg_loss_checked(x.data(), y.data(), or_null(grad, has_grad), lengths.data(), batch, n, sep, wide,
                            strategy, w_pos, w_neg, gamma, kind, pen_kind, pen_probs, delta, require_symmetric,
                            r.data(), wp.data(), ignored.data(), violation.data(), partial.data(), bad.data());
    });
    put(grad);
    put(partial);
    put(bad);
    put(ignored);
    put(violation);
#elif defined(EMU_STATS)
    const long long sep = get<long long>();
    const int mode = get<int>();
    const double z_star = get<double>();
    const int has_mask = get<int>();
    std::vector<u64> violation(1, ~0ull);
    auto x = get_vec<float>(len);
    auto y = get_vec<u8>(len);
    auto mask = get_vec<u8>(has_mask ? len : 0);
    auto lengths = get_vec<long long>(samples);
    std::vector<u64> confusion(5 * (size_t)samples, 0), bad(1, ~0ull);
    // Zeros, as the backend allocates it: a block with no item of a sample writes no slot.
    std::vector<double> asym((size_t)blocks * samples, 0.0);
    launch([&] {
        symseg_stats(x.data(), y.data(), or_null(mask, has_mask), lengths.data(), batch, n, sep, wide, mode,
                     z_star, violation.data(), confusion.data(), asym.data(), bad.data());
    });
    put(confusion);
    put(asym);
    put(bad);
#elif defined(EMU_FACTORS)
    const int triangle = get<int>(), reduction = get<int>();
    const double lambda = get<double>();
    auto counts = get_vec<u64>(2 * samples);
    std::vector<double> r(samples, NAN), wp(samples, NAN);
    launch([&] { symseg_factors(counts.data(), batch, triangle, reduction, lambda, r.data(), wp.data()); });
    put(r);
    put(wp);
#elif defined(EMU_SYMMETRISE)
    const int mode = get<int>();
    auto x = get_vec<float>(len);
    std::vector<float> out(len, 1234.5f);
    launch([&] { symseg_symmetrise(x.data(), batch, n, wide, mode, out.data()); });
    put(out);
#else
#error "define one of EMU_SCAN, EMU_SCAN_ROWS, EMU_FACTORS, EMU_LOSS, EMU_LOSS_CHECKED, EMU_LOSS_ROWS, EMU_LOSS_ROWS_CHECKED, EMU_STATS, EMU_SYMMETRISE"
#endif
    return std::fflush(stdout) == 0 ? 0 : 3;
}
