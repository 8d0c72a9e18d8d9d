# shellcheck shell=bash
# Small helpers shared by tools/test, tools/demo and tools/fuzz.

# Repository root (the folder holding tools/).
VHOSTD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

vhostd_log() { printf '==> %s\n' "$*"; }
vhostd_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# vhostd_meson_setup BUILD_DIR [meson options...]
# Configures BUILD_DIR, or reconfigures it when it already holds a build. A
# build folder that meson cannot reconfigure (half-written, or made by another
# meson version) is wiped and set up again.
vhostd_meson_setup() {
    local dir=$1
    shift
    if [[ -f $dir/meson-private/coredata.dat ]]; then
        if meson setup --reconfigure "$dir" "$@"; then
            return 0
        fi
        vhostd_log "reconfigure of $dir failed; wiping it"
        meson setup --wipe "$dir" "$@"
    else
        meson setup "$dir" "$@"
    fi
}
