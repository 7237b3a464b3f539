# Shared by bin/castle, bin/test and bin/bench: makes sure the system packages castle builds against
# are installed. Sourced, not run.

castle_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The commit `castle --version` shows, read by Package.swift at build time ("-dirty" with uncommitted
# changes); empty outside a git checkout (a tarball), where castle shows "unknown".
CASTLE_GIT_COMMIT="$(git -C "$castle_root" describe --always --dirty --abbrev=12 --exclude '*' 2>/dev/null || true)"
export CASTLE_GIT_COMMIT

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

# The S3 side of the snapshot tests' cross-region drill (Tests/CastleCLITests/SnapshotCLITests.swift):
# moto's S3 server on loopback and the AWS CLI, from PyPI. When they cannot be had (no pip, no network),
# the drill is skipped with that reason and its twin through files runs.
castle_require_s3_tools() {
    command -v moto_server >/dev/null 2>&1 && command -v aws >/dev/null 2>&1 && return 0
    if command -v python3 >/dev/null 2>&1; then
        echo "castle: installing moto[server] and awscli for the snapshot drill" >&2
        python3 -m pip install --quiet --user 'moto[server]' awscli >&2 2>/dev/null ||
            python3 -m pip install --quiet --break-system-packages --user 'moto[server]' awscli >&2 2>/dev/null || true
        export PATH="$PATH:$(python3 -m site --user-base 2>/dev/null)/bin"
    fi
    command -v moto_server >/dev/null 2>&1 && command -v aws >/dev/null 2>&1 ||
        echo "castle: moto_server or aws is missing: the S3 drill will be skipped (the file drill still runs)" >&2
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

# Starts a PostgreSQL server in a temporary directory on a free loopback port (trust authentication,
# user castle, database castle_test), exports CASTLE_TEST_POSTGRES_URL, and stops and removes it when
# this script exits, however it exits.
castle_start_postgres() {
    local bindir
    bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "castle: installing postgresql for the tests" >&2
            { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >&2 || {
                echo "castle: apt-get install postgresql failed" >&2
                exit 69
            }
            bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
        else
            echo "castle: the tests need PostgreSQL (initdb, pg_ctl); install it with: sudo apt-get install -y postgresql" >&2
            echo "castle: or point CASTLE_TEST_POSTGRES_URL at a server where the user may create databases" >&2
            exit 69
        fi
    fi
    # As root, the server runs as postgres (it refuses to run as root); otherwise as whoever runs this.
    local as_user=()
    if [ "$(id -u)" -eq 0 ]; then
        as_user=(runuser -u postgres --)
    fi
    castle_pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/castle-pg.XXXXXX")"
    castle_pg_ctl=("${as_user[@]}" "$bindir/pg_ctl" -D "$castle_pg_dir/data")
    trap castle_stop_postgres EXIT
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$castle_pg_dir"; fi
    "${as_user[@]}" "$bindir/initdb" -D "$castle_pg_dir/data" -A trust -U castle -E UTF8 --no-locale >"$castle_pg_dir/initdb.log" 2>&1 || {
        cat "$castle_pg_dir/initdb.log" >&2
        echo "castle: initdb failed" >&2
        exit 69
    }
    # A free port is only free until someone binds it: between our probe and the server's bind another
    # process may take it. The server then fails to start, saying so in its log, and we try another.
    local port="" attempt
    for attempt in 1 2 3 4 5 6 7 8; do
        port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
        rm -f "$castle_pg_dir/server.log"
        # Durability does not matter for a throwaway test server: fsync off makes the many small test
        # databases quick. bin/bench sets castle_pg_fsync=on so its figures are honest. -w waits until the
        # server accepts connections; a loaded machine may take a while, hence the long -t.
        if "${castle_pg_ctl[@]}" -l "$castle_pg_dir/server.log" -w -t 300 \
            -o "-p $port -k $castle_pg_dir -c listen_addresses=127.0.0.1 -c fsync=${castle_pg_fsync:-off} -c max_connections=200" start >/dev/null; then
            break
        fi
        if ! grep -q "could not bind\|Address already in use\|could not create any TCP/IP sockets" "$castle_pg_dir/server.log"; then
            cat "$castle_pg_dir/server.log" >&2
            echo "castle: the test PostgreSQL did not start" >&2
            exit 69
        fi
        echo "castle: port $port was taken before PostgreSQL bound it; trying another" >&2
        port=""
    done
    if [ -z "$port" ]; then
        echo "castle: the test PostgreSQL found no free port" >&2
        exit 69
    fi
    "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -t 300 || {
        echo "castle: the test PostgreSQL on 127.0.0.1:$port does not accept connections" >&2
        exit 69
    }
    "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U castle -d postgres -c "CREATE DATABASE castle_test" >/dev/null
    # The tests' psql calls find the server's own client tools first.
    export PATH="$bindir:$PATH"
    # A loaded test machine may take longer than a person would wait to answer a connection: the tests
    # give it a minute (castle's default is 5 s).
    export CASTLE_TEST_POSTGRES_URL="postgres://castle@127.0.0.1:$port/castle_test?connect_timeout=60"
    echo "castle: test PostgreSQL on 127.0.0.1:$port" >&2
}

castle_stop_postgres() {
    if [ -n "${castle_pg_dir:-}" ]; then
        "${castle_pg_ctl[@]}" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$castle_pg_dir"
    fi
}
