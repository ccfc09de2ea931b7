#!/usr/bin/env bash
# The project's one test command (README): starts a private ClickHouse 18.16 (scripts/clickhouse.sh, which
# also installs ClickHouse, Prometheus and Chromium when missing), runs every test target in the debug
# profile against it, and stops the server it started whatever happens. Extra arguments go to `cargo test`,
# e.g. `scripts/test.sh clickhouse_store` or `scripts/test.sh -- --nocapture`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

port="${PAVEMETER_TEST_CH_PORT:-8123}"
export PAVEMETER_TEST_CH_PORT="$port"

# A server that was already up (another run, or one started by hand) is used and left running: stopping it
# would pull it from under whoever started it.
started_here=0
if ! ./scripts/clickhouse.sh status; then
    started_here=1
fi
cleanup() {
    if [ "$started_here" = 1 ]; then
        ./scripts/clickhouse.sh stop || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

./scripts/clickhouse.sh start
export PAVEMETER_TEST_CLICKHOUSE_URL="http://127.0.0.1:$port"

set +e
cargo test --all-targets "$@"
status=$?
set -e
exit "$status"
