# Shared by bin/castle, bin/test and bin/bench: makes sure the system packages castle builds against
# are installed. Sourced, not run.

castle_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The Debian packages castle needs, each with a file that shows it is installed.
castle_require_packages() {
    local missing=()
    command -v swift >/dev/null 2>&1 || {
        echo "castle: the Swift toolchain (swift) is not on PATH; install Swift 6.1 or later from swift.org" >&2
        exit 69
    }
    pkg-config --exists libarchive 2>/dev/null || missing+=(libarchive-dev)
    pkg-config --exists sqlite3 2>/dev/null || missing+=(libsqlite3-dev)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    for extra in "$@"; do
        dpkg -s "$extra" >/dev/null 2>&1 || missing+=("$extra")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "castle: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } >&2 || {
            echo "castle: apt-get install ${missing[*]} failed" >&2
            exit 69
        }
    else
        echo "castle: missing system packages: ${missing[*]}" >&2
        echo "castle: install them with: sudo apt-get install -y ${missing[*]}" >&2
        exit 69
    fi
}

# Builds the release binary when it is missing or older than any source.
castle_build_release() {
    local binary="$castle_root/.build/release/castle"
    if [ -x "$binary" ] && [ -z "$(find "$castle_root/Sources" "$castle_root/Plugins" "$castle_root/Package.swift" -newer "$binary" -print -quit)" ]; then
        return 0
    fi
    echo "castle: building (release); the first build takes a few minutes" >&2
    (cd "$castle_root" && swift build -c release --product castle >&2) || {
        echo "castle: build failed" >&2
        exit 70
    }
}
