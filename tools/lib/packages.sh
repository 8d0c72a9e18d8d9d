# shellcheck shell=bash
# Debian 12 packages that building and testing vhostd needs, and an idempotent
# installer for them. Sourced by tools/test, tools/demo and tools/fuzz.
#
#   source "$repo/tools/lib/packages.sh"
#   vhostd_install_packages                  # the whole list below
#   vhostd_install_packages qemu-system-x86  # or just these

VHOSTD_PACKAGES=(
    build-essential g++ clang-14 meson ninja-build pkg-config
    libdpdk-dev dpdk dpdk-dev            # DPDK libraries, dpdk-testpmd
    liburing-dev libspdlog-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev
    libgtest-dev libgmock-dev
    python3 iproute2 procps              # integration harness
    systemd                              # systemd-analyze verify (install test)
    valgrind                             # tests/hostile/leak_valgrind.py
    libfuzzer-14-dev libclang-rt-14-dev  # fuzz targets, clang sanitizers
    qemu-system-x86 busybox-static cpio kmod lz4  # QEMU tests: guests, tools/guest/build-image
)

# Prints the packages among "$@" that dpkg does not report as installed.
vhostd_missing_packages() {
    local pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        if [[ $status != "install ok installed" ]]; then
            printf '%s\n' "$pkg"
        fi
    done
}

# Installs whatever of "$@" (default: VHOSTD_PACKAGES) is missing. Prints
# nothing and touches nothing when everything is already there.
vhostd_install_packages() {
    local -a wanted missing sudo=()
    if (($#)); then wanted=("$@"); else wanted=("${VHOSTD_PACKAGES[@]}"); fi
    mapfile -t missing < <(vhostd_missing_packages "${wanted[@]}")
    ((${#missing[@]})) || return 0

    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "error: missing packages (${missing[*]}) and not root; install them or run as root" >&2
            return 1
        fi
    fi
    echo "==> installing Debian packages: ${missing[*]}"
    # apt and dpkg print a line per package even with -qq: keep that in a log
    # and show it only when something goes wrong.
    local aptlog rc=0
    aptlog=$(mktemp /tmp/vhostd-apt.XXXXXX)
    {
        "${sudo[@]}" apt-get update -qq &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq --no-install-recommends "${missing[@]}"
    } </dev/null >"$aptlog" 2>&1 || rc=$?
    if ((rc != 0)); then
        tail -n 50 "$aptlog" >&2
        rm -f "$aptlog"
        echo "error: apt-get failed (exit $rc) installing: ${missing[*]}" >&2
        return 1
    fi
    rm -f "$aptlog"

    mapfile -t missing < <(vhostd_missing_packages "${wanted[@]}")
    if ((${#missing[@]})); then
        echo "error: still missing after apt-get install: ${missing[*]}" >&2
        return 1
    fi
}
