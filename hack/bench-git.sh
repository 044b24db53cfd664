#!/usr/bin/env bash
# Git pin benchmark: Ferry pinning + committing + pushing one image into a 10,000-file repository with a warm
# cache, against the git CLI doing the same edit, commit and push from a warm clone, both over HTTP to a loopback
# `git http-backend`. Operations alternate so that noise on a shared machine hits both alike. Prints the figures
# and the ratio from one run; exits 1 when Ferry is slower than the target (1.2 × the git CLI).
# Needs git (apt). BENCH_GIT_N sets the benchmark iterations, ten operations of each per iteration (default 2).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n=${BENCH_GIT_N:-2}
out=$(go test -run '^$' -bench '^BenchmarkPinVersusGitCLI$' -benchtime "${n}x" ./internal/gitops/)
line=$(printf '%s\n' "$out" | grep '^BenchmarkPinVersusGitCLI') || { printf '%s\n' "$out" >&2; exit 1; }
metric() { printf '%s\n' "$line" | awk -v unit="$1" '{for (i = 2; i <= NF; i++) if ($i == unit) print $(i-1)}'; }
ferry=$(metric ferry-ms/op)
git=$(metric git-ms/op)
ratio=$(metric ratio)
cold=$(metric cold-clone-ms)
printf 'git pin (10,000 files, warm cache, %s0 ops each): ferry %s ms/op, git CLI %s ms/op, ratio %s (target <= 1.2); ferry cold clone %s ms\n' \
  "$n" "$ferry" "$git" "$ratio" "$cold"
awk -v r="$ratio" 'BEGIN { exit !(r <= 1.2) }' || { echo "FAIL: ferry is slower than 1.2x the git CLI" >&2; exit 1; }
