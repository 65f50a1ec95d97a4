#!/usr/bin/env bash
# The README's quick start as one script, safe to run anywhere and again:
# a scratch copy of the reference project in a fresh temporary directory, its
# own embedded cloud and health server on free loopback ports, a release, a
# bad deploy and the rollback. On exit (success, failure or Ctrl-C) it stops
# everything it started and removes its scratch directory, unless --keep.
#
#   examples/quickstart.sh           # from a checkout, with `rollback` on PATH
#   examples/quickstart.sh --keep    # leave the scratch directory to look at
#
# Needs Python 3.11+, git and the `rollback` command (`make test` or
# `pip install -e .` installs it). Git commits and tags need an identity; when
# git has none configured, this script uses a local one for its scratch repo.
set -euo pipefail

keep=0
case "${1:-}" in
  --keep) keep=1 ;;
  "") ;;
  *) echo "usage: $0 [--keep]" >&2; exit 2 ;;
esac

project="$(cd "$(dirname "$0")/.." && pwd)"
command -v rollback >/dev/null || { echo "rollback is not on PATH; run 'make test' or 'pip install -e .' first" >&2; exit 2; }
python=${PYTHON:-python3}

work="$(mktemp -d "${TMPDIR:-/tmp}/rollback-quickstart.XXXXXX")"
health_pid=""
cloud_started=0
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if (( cloud_started )); then
    (cd "$work/iac" && rollback cloud stop >/dev/null 2>&1) || true
  fi
  if [[ -n "$health_pid" ]]; then kill "$health_pid" 2>/dev/null || true; fi
  if (( keep )); then echo "kept $work" >&2; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

step() { printf '\n== %s\n' "$*" >&2; }

# A scratch git repository with the reference project: tags and releases land
# there, never in this checkout.
mkdir "$work/iac" "$work/www"
cp -r "$project/Pulumi.yaml" "$project/Pulumi.dev.yaml" "$project/stacks" "$work/iac/"
cd "$work/iac"
printf '__pycache__/\n/artifacts/\n' > .gitignore   # ./artifacts is the default store
export PULUMI_CONFIG_PASSPHRASE=test-passphrase     # the dev passphrase of Pulumi.dev.yaml
export GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-$(git config user.name || echo quickstart)}"
export GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-$(git config user.email || echo quickstart@example.invalid)}"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"

# The ALB's DNS name does not resolve on the embedded cloud: serve the health
# URLs locally, on a port of our own.
echo ok > "$work/www/health"
port="$(free_port)"
"$python" -m http.server "$port" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
health_pid=$!
sed -i 's/blueVersion: 1.4.0/blueVersion: 1.0.0/; s/greenVersion: 1.5.0/greenVersion: 1.0.0/' Pulumi.dev.yaml
printf '  webapp:healthUrlBlue: http://127.0.0.1:%s/health\n  webapp:healthUrlGreen: http://127.0.0.1:%s/health\n' "$port" "$port" >> Pulumi.dev.yaml
git init -q && git add -A && git commit -qm "webapp 1.0.0"

step "start the embedded cloud (moto on loopback; exports AWS_ENDPOINT_URL and fake credentials)"
cloud_started=1
eval "$(rollback cloud start)"

step "release 1.0.0 on blue"
rollback stack up
echo "build 1.0.0" > "$work/app.tgz"
rollback release record 1.0.0 --artifact "$work/app.tgz"
rollback release mark 1.0.0 --stable --reason "baked a week"

step "deploy 1.1.0 to green and send users there"
# The weights in the config only set the first deploy's traffic: from then on the toolkit
# owns it, `stack up` never moves users, and the cutover does (verified, outcome checked).
sed -i 's/greenVersion: 1.0.0/greenVersion: 1.1.0/; s/liveColor: blue/liveColor: green/' Pulumi.dev.yaml
git commit -qam "feat: 1.1.0 on green"
rollback stack up
echo "build 1.1.0" > "$work/app.tgz"
rollback release record 1.1.0 --artifact "$work/app.tgz"
rollback cutover green --steps 100

step "1.1.0 is bad: plan the rollback (changes nothing), then run it"
rollback plan last-stable
rollback to last-stable --yes --reason "5xx on 1.1.0"

step "what happened"
rollback history
run="$(rollback history -o json | "$python" -c 'import json, sys; print(json.load(sys.stdin)["runs"][-1]["run_id"])')"
rollback report "$run" | head -n 20
rollback stack verify 1.0.0
rollback release list
