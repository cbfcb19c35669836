#!/usr/bin/env bash
# Builds and runs switch_check.c against asm/x86_64.S (natively, on x86-64 hosts) and
# asm/aarch64.S (cross-compiled, run under qemu-aarch64). Needs gcc; for AArch64,
# gcc-aarch64-linux-gnu and qemu-user (.ci/run installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$here/build"
mkdir -p "$build"

# Runs a check, prefixing its one line of output with the architecture; fails with it.
run() {
    local arch=$1
    shift
    local out
    if ! out=$("$@"); then
        echo "$arch: $out" >&2
        exit 1
    fi
    echo "$arch: $out"
}

if [ "$(uname -m)" = x86_64 ]; then
    # asm/x86_64.S is Intel syntax (global_asm!'s default); GNU as needs to be told.
    printf '    .intel_syntax noprefix\n    .include "%s/asm/x86_64.S"\n' "$root" > "$build/x86_64.S"
    gcc -O1 -o "$build/switch_check_x86_64" "$here/switch_check.c" "$build/x86_64.S"
    run x86_64 "$build/switch_check_x86_64"
fi

aarch64-linux-gnu-gcc -O1 -static -o "$build/switch_check_aarch64" \
    "$here/switch_check.c" "$root/asm/aarch64.S"
run aarch64 qemu-aarch64 "$build/switch_check_aarch64"
