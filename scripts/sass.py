#!/usr/bin/env python3
"""The machine code (SASS) of one symseg-cuda kernel build, without a GPU.

Compiles a kernel source as the backend does (common.cuh prepended, the
accuracy flags of `kernels.rs`, the strategy / checked / element-kind
defines of one build) to a cubin with NVRTC 13.0, disassembles it with
nvdisasm, and prints the assembler's register report and each basic block
that holds a multi-function-unit op (MUFU: exp2, reciprocal) or more than
60 instructions, with its size. Those block sizes are the instruction
counts docs/cuda.md quotes.

    python3 scripts/sass.py loss_rows.cu --strategy 0 --checked --kind 2
    python3 scripts/sass.py loss.cu --strategy 2 --checked --kind 2 --arch sm_80 --listing out.sass

NVRTC comes from the cache `.ci/run` installs (pip's nvidia-cuda-nvrtc
13.0.88 under ~/.cache/symseg/nvrtc-13.0.88); nvdisasm from pip's
nvidia-cuda-nvdisasm, installed on first use under ~/.cache/symseg/nvdisasm.
A development aid: nothing in the build or the tests uses it.
"""

import argparse
import ctypes
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = os.path.join(ROOT, "crates", "symseg-cuda", "src", "kernels")
CACHE = os.path.expanduser("~/.cache/symseg")
NVRTC_DIR = os.environ.get("SYMSEG_NVRTC_CACHE", os.path.join(CACHE, "nvrtc-13.0.88"))
NVDISASM_DIR = os.path.join(CACHE, "nvdisasm")
# kernels.rs: ACCURACY_FLAGS.
ACCURACY_FLAGS = ["--ftz=false", "--prec-div=true", "--prec-sqrt=true", "--fmad=true"]


def pip_install(package, target):
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", target, package],
        check=True,
    )


def nvrtc():
    lib_dir = os.path.join(NVRTC_DIR, "nvidia", "cu13", "lib")
    if not os.path.exists(os.path.join(lib_dir, "libnvrtc.so.13")):
        pip_install("nvidia-cuda-nvrtc==13.0.88", NVRTC_DIR)
    # NVRTC loads its builtins library by name, so it must be loaded first.
    ctypes.CDLL(os.path.join(lib_dir, "libnvrtc-builtins.so.13.0"), mode=ctypes.RTLD_GLOBAL)
    return ctypes.CDLL(os.path.join(lib_dir, "libnvrtc.so.13"))


def nvdisasm():
    for dirpath, _, files in os.walk(NVDISASM_DIR):
        if "nvdisasm" in files:
            return os.path.join(dirpath, "nvdisasm")
    pip_install("nvidia-cuda-nvdisasm", NVDISASM_DIR)
    return nvdisasm()


def source(args):
    """The module text as kernels.rs builds it: common.cuh, then the defines, then the file."""
    defines = ""
    if args.strategy is not None:
        defines += f"#define SYMSEG_STRATEGY {args.strategy}\n"
    if args.checked:
        defines += "#define SYMSEG_TILES_CHECKED\n" if args.file == "loss.cu" else "#define SYMSEG_ROWS_CHECKED\n"
    with open(os.path.join(KERNELS, "common.cuh")) as f:
        common = f.read()
    with open(os.path.join(KERNELS, args.file)) as f:
        body = f.read()
    return f"{common}\n// ---- {args.file}\n{defines}{body}"


def compile_cubin(lib, text, args):
    prog = ctypes.c_void_p()
    if lib.nvrtcCreateProgram(ctypes.byref(prog), text.encode(), args.file.encode(), 0, None, None) != 0:
        sys.exit("nvrtcCreateProgram failed")
    opts = ACCURACY_FLAGS + [f"--gpu-architecture={args.arch}", "--ptxas-options=-v"]
    if args.kind is not None:
        opts.append(f"-DSYMSEG_ELEM_KIND={args.kind}")
    arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    status = lib.nvrtcCompileProgram(prog, len(opts), arr)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    if status != 0:
        sys.exit(f"NVRTC failed ({status}):\n{log.value.decode()}")
    lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
    cubin = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetCUBIN(prog, cubin)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return cubin.raw, log.value.decode()


def blocks(listing):
    """(label, instructions) of each basic block, in order."""
    out, name, body = [], "entry", []
    for line in listing.splitlines():
        label = re.match(r"^\s*(\.L_x_\d+):", line)
        if label:
            out.append((name, body))
            name, body = label.group(1), []
        elif re.search(r"/\*[0-9a-f]{4}\*/", line):
            body.append(re.sub(r"/\*[0-9a-f]+\*/", "", line).strip())
    out.append((name, body))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="a kernel source in crates/symseg-cuda/src/kernels, e.g. loss_rows.cu")
    p.add_argument("--strategy", type=int, help="SYMSEG_STRATEGY: 0 plain, 1 dual, 2 average, 3 upper, 4 lower")
    p.add_argument("--checked", action="store_true", help="the checked build (loss kernels)")
    p.add_argument("--kind", type=int, help="SYMSEG_ELEM_KIND: 0, 1, 2 (gamma by multiplication), 3 (by exp)")
    p.add_argument("--arch", default="sm_90")
    p.add_argument("--listing", help="also write the whole SASS listing to this file")
    args = p.parse_args()

    cubin, log = compile_cubin(nvrtc(), source(args), args)
    for line in log.splitlines():
        if "registers" in line or "spill" in line:
            print(line.strip())
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        listing = subprocess.run([nvdisasm(), "-c", f.name], check=True, capture_output=True, text=True).stdout
    if args.listing:
        with open(args.listing, "w") as f:
            f.write(listing)
    found = blocks(listing)
    print(f"{sum(len(b) for _, b in found)} instructions in {len(found)} blocks")
    for name, body in found:
        ex2 = sum("MUFU.EX2" in i for i in body)
        rcp = sum("MUFU.RCP" in i for i in body)
        if ex2 or rcp or len(body) > 60:
            print(f"{name:>10} {len(body):5} instructions  MUFU.EX2 {ex2}  MUFU.RCP {rcp}")


if __name__ == "__main__":
    main()
