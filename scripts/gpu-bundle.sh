#!/usr/bin/env bash
# Prepares `cargo xtask gpu-check` for a GPU machine that has no Rust toolchain
# and no network: builds the xtask binary here (x86-64, release), strips it to
# about 11 MB and puts it in .gpu/ (ignored by git), next to a runner script
# that finds the machine's NVRTC 13 and runs the check.
#
#   bash scripts/gpu-bundle.sh
#   # then, on the GPU machine, with .gpu carried along:
#   bash .gpu/run.sh            # same arguments as `cargo xtask gpu-check`
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p xtask
mkdir -p .gpu
strip -o .gpu/xtask target/release/xtask
cat > .gpu/run.sh <<'RUN'
#!/usr/bin/env bash
# Runs the prepared gpu-check: finds libnvrtc.so.13 (CUDA toolkit or the
# nvidia-cuda-nvrtc wheel) and puts its directory on LD_LIBRARY_PATH.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
nvrtc="$(find / -xdev -name 'libnvrtc.so.13' 2>/dev/null | head -n 1)"
if [ -n "$nvrtc" ]; then
    export LD_LIBRARY_PATH="$(dirname "$nvrtc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
exec "$here/xtask" gpu-check "$@"
RUN
chmod +x .gpu/run.sh .gpu/xtask
ls -la .gpu
