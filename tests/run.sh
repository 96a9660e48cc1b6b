#!/usr/bin/env bash
# The project's one test command (README: "Test"). Installs what the tests
# need when it is missing, then checks formatting and lints and runs every
# test. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# procps: `kill` for the tests; iproute2: loopback in the offline test's
# network namespace; systemd: `systemd-analyze` for the unit's security
# score; mosquitto-clients: a non-Rust MQTT client in the tests; openssl,
# wrk and mosquitto: the benchmarks (cargo bench); chromium and Node.js: the
# browser tests (tests/e2e: playwright-core, and the npm package
# oidc-provider as the OpenID provider of single sign-on); curl: HTTP/2 requests in the
# tests; pebble (with pebble-challtestsrv): the ACME server of the ACME tests;
# postgresql: the shared store of several nodes (a throwaway server below).
apt_install procps systemd iproute2 mosquitto-clients openssl wrk mosquitto chromium curl pebble postgresql
command -v node >/dev/null || apt_install nodejs
command -v npm >/dev/null || apt_install npm
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
# sslyze (TLS scan), schemathesis (API fuzzing) and kubernetes-validate (the
# Kubernetes manifests, offline schemas), in a virtualenv under target/.
apt_install python3 python3-venv
[ -x target/pyenv/bin/python ] || python3 -m venv target/pyenv
for tool in sslyze==6.3.1 schemathesis==4.32.5 kubernetes-validate==1.37.0; do
  target/pyenv/bin/python -m pip show "${tool%%=*}" >/dev/null 2>&1 || target/pyenv/bin/python -m pip install -q "$tool"
done

rustup component add rustfmt clippy >/dev/null 2>&1 || true
# A clean clone (CI) builds everything once: incremental compilation's
# bookkeeping would only slow that build (the crate's own compile: 120 s
# without, 129 s with). Local runs keep it for their next build.
[ "${CI:-}" = true ] && export CARGO_INCREMENTAL=0
cargo fmt --check
# Clippy lints while the test build compiles: clippy-driver as the
# workspace's compiler wrapper, just as `cargo clippy --all-targets
# --features dev-license-key,system-tests -- -D warnings` runs it, but
# compiling for real, so the dependencies are built once rather than also
# checked (on a clean clone, `cargo clippy` after the test build took 281 s;
# linting within it cost nothing measurable: the workspace's crates built
# in 204 s linted, 211 s not). Exported, so
# that every build below (the PostgreSQL pass, the package test's build
# without features) is linted too and none is rebuilt for a changed
# wrapper.
RUSTC_WORKSPACE_WRAPPER=$(command -v clippy-driver || rustup which clippy-driver)
CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
target/pyenv/bin/kubernetes-validate --strict --quiet installer/kubernetes/*.yaml
log=$(mktemp)
pg=$(mktemp -d)
trap 'tests/support/postgres.sh stop "$pg/server" >/dev/null 2>&1 || true; rm -rf "$log" "$pg"' EXIT
TOPDOG_TEST_DATABASE_URL=$(tests/support/postgres.sh start "$pg/server")
export TOPDOG_TEST_DATABASE_URL
cargo test --all-targets --features dev-license-key,system-tests 2>&1 | tee "$log"
# The API tests that keep records, again with every appliance on PostgreSQL.
TOPDOG_TEST_BACKEND=postgres cargo test --features dev-license-key,system-tests --test api -- \
  pairing:: messaging:: devices:: mqtt:: commands:: receipts:: people:: qr:: hardening:: input:: escalation:: \
  push:: hooks:: license:: tokens:: scoped_tokens:: review:: security:: pipeline:: oidc:: console:: sms:: \
  cli:: proxies:: logs:: openapi:: certificates:: ui:: service::sigterm service::tells 2>&1 | tee -a "$log"
passed=$(grep -oE '^test result: .* ([0-9]+) passed' "$log" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
echo "all tests: $passed passed, $failed failed"
