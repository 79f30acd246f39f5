#!/usr/bin/env bash
# Prepares `cargo xtask gpu-check` for a GPU machine that has no Rust toolchain
# and no network: builds the xtask binary and the `symseg` command line (with
# `--backend cuda`) here (x86-64, release), strips them and puts them in .gpu/
# (ignored by git) with the command line's cross-check, PyTorch's loss timing
# (run where the machine has torch) and a runner script that finds the
# machine's NVRTC 13 and runs them.
#
#   bash scripts/gpu-bundle.sh
#   # then, on the GPU machine, with .gpu carried along:
#   bash .gpu/run.sh            # same arguments as `cargo xtask gpu-check`
#   SYMSEG_PROFILE=1 bash .gpu/run.sh --cases 0 --seconds 0.05
#                               # then Nsight Compute on the scan and loss
#                               # kernels of plain and average at 8x2048^2
#
# SYMSEG_BASELINE=REV also builds the xtask of git revision REV (in a
# worktree under target/, with its own target directory) as
# .gpu/xtask-baseline; run.sh then times plain and average at 8x2048^2 with
# both binaries, one after the other on the same GPU, so that the gain since
# REV is measured directly rather than against figures from another card.
# (2d7b671 is the last revision whose kernels were all measured on a GPU.)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p xtask -p symseg-cli --features symseg-cli/cuda
rm -rf .gpu
mkdir -p .gpu
strip -o .gpu/xtask target/release/xtask
strip -o .gpu/symseg target/release/symseg
cp scripts/gpu_cli_check.py benches/pytorch/loss_speed.py .gpu/
if [ -n "${SYMSEG_BASELINE:-}" ]; then
    rev="$(git rev-parse --short "$SYMSEG_BASELINE^{commit}")"
    src="$PWD/target/baseline-src"
    git worktree remove --force "$src" 2>/dev/null || rm -rf "$src"
    git worktree prune
    git worktree add --detach "$src" "$rev"
    (cd "$src" && CARGO_TARGET_DIR="$PWD/../baseline" cargo build --release -p xtask)
    strip -o .gpu/xtask-baseline target/baseline/release/xtask
    echo "$rev" > .gpu/baseline-rev
    git worktree remove --force "$src"
fi
cat > .gpu/run.sh <<'RUN'
#!/usr/bin/env bash
# Runs the prepared gpu-check, then `symseg loss/metrics --backend cuda`
# against `--backend cpu`. Finds libnvrtc.so.13, preferring the CUDA
# toolkit's (it matches the driver; a newer NVRTC's PTX can be refused by
# an older driver), and puts its directory on LD_LIBRARY_PATH.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
nvrtc=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13.0/lib64; do
    if [ -e "$d/libnvrtc.so.13" ]; then nvrtc="$d/libnvrtc.so.13"; break; fi
done
if [ -z "$nvrtc" ]; then
    nvrtc="$(find / -xdev -name 'libnvrtc.so.13' 2>/dev/null | head -n 1)"
fi
if [ -n "$nvrtc" ]; then
    echo "NVRTC: $(readlink -f "$nvrtc")"
    export LD_LIBRARY_PATH="$(dirname "$nvrtc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$here/xtask" gpu-check "$@"
status=$?
# The same calls with a scan before the loss pass (plain checks its labels
# in the loss pass, average takes the row scan): the row scan, then the tile
# scan. The differences are what each step gained.
for scan in rows tiles; do
    echo "== plain and average at 8x2048^2 with SYMSEG_CUDA_SCAN=$scan"
    for s in plain average; do
        SYMSEG_CUDA_SCAN=$scan "$here/xtask" gpu-check --cases 0 --seconds 0.3 --only "$s" --shape 8x2048 2>&1 |
            grep -E "^$s |copy|labels checked|loss calls|fixed cost" || status=1
    done
done
if [ -x "$here/xtask-baseline" ]; then
    # The revision named when the bundle was made against this one, in
    # turn, twice, on the same GPU (its gpu-check may lack --only and
    # --shape, so it runs its whole benchmark).
    base="$(cat "$here/baseline-rev" 2>/dev/null || echo baseline)"
    for round in 1 2; do
        echo "== plain and average at 8x2048^2: $base (baseline), round $round"
        "$here/xtask-baseline" gpu-check --cases 0 --seconds 0.2 2>&1 |
            grep -E "^(plain|average) +none +8x2048x2048|copy" || status=1
        echo "== plain and average at 8x2048^2: this revision, round $round"
        for s in plain average; do
            "$here/xtask" gpu-check --cases 0 --seconds 0.3 --only "$s" --shape 8x2048 2>&1 |
                grep -E "^$s +none +8x2048x2048|copy" || status=1
        done
    done
fi
echo "== command line: symseg loss/metrics --backend cuda against --backend cpu"
python3 "$here/gpu_cli_check.py" "$here/symseg" "${TMPDIR:-/tmp}/symseg-cli-check" || status=1
# PyTorch's focal loss + backward on the same GPU, where the machine has a
# CUDA build of PyTorch (not symseg's to fail: only reported).
if python3 -c "import sys, torch, torchvision; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "== PyTorch on this GPU: the same loss + gradient (loss_speed.py)"
    timeout 180 python3 "$here/loss_speed.py" --device cuda --shape 8x2048 --shape 1x2048 --shape 32x256 \
        --seconds 0.5 || echo "loss_speed.py failed (not counted)"
else
    echo "== PyTorch on this GPU: skipped (no CUDA build of torch and torchvision here)"
fi
if [ "${SYMSEG_PROFILE:-0}" = 1 ]; then
    # Each kernel's time, throughput, registers and occupancy, for the two
    # strategies of the bandwidth target: the scan and loss kernels of the
    # first two calls (the warm-up and one timed).
    ncu="$(command -v ncu || true)"
    [ -z "$ncu" ] && [ -x /usr/local/cuda/bin/ncu ] && ncu=/usr/local/cuda/bin/ncu
    if [ -z "$ncu" ]; then
        echo "== profile: skipped (no ncu)"
    else
        for s in plain average; do
            echo "== profile: $s at 8x2048^2 (ncu --clock-control none)"
            "$ncu" --clock-control none -k 'regex:symseg_(scan|loss)' -c 4 \
                --section SpeedOfLight --section Occupancy --section LaunchStats \
                "$here/xtask" gpu-check --cases 0 --seconds 0 --only "$s" --shape 8x2048 2>&1 |
                grep -E '^  symseg_|Duration|DRAM Throughput|Compute \(SM\) Throughput|Registers Per|Achieved Occupancy|Grid Size' || status=1
        done
        for scan in rows tiles; do
            echo "== profile: plain at 8x2048^2 with SYMSEG_CUDA_SCAN=$scan"
            SYMSEG_CUDA_SCAN=$scan "$ncu" --clock-control none -k 'regex:symseg_(scan|loss)' -c 4 \
                --section SpeedOfLight --section Occupancy --section LaunchStats \
                "$here/xtask" gpu-check --cases 0 --seconds 0 --only plain --shape 8x2048 2>&1 |
                grep -E '^  symseg_|Duration|DRAM Throughput|Compute \(SM\) Throughput|Registers Per|Achieved Occupancy|Grid Size' || status=1
        done
    fi
fi
exit $status
RUN
chmod +x .gpu/run.sh .gpu/xtask .gpu/symseg
ls -la .gpu
