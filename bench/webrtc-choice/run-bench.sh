#!/usr/bin/env bash
# Reproduce the RESULTS.md figures.
#   ./run-bench.sh builds   clean release build of each binary's dependency set
#                           (baseline, str0m-loop, webrtc-loop; two interleaved rounds),
#                           binary sizes (unstripped / stripped)
#   ./run-bench.sh runs     100 and 10 sessions x 20 s, str0m, webrtc-rs and the raw-UDP baseline
#                           interleaved, two rounds (needs `builds` first)
#   ./run-bench.sh all      both
# Output goes to ./bench-out (builds.tsv, sizes.tsv, runs.jsonl, logs, bin/).
set -euo pipefail
cd "$(dirname "$0")"
OUT=bench-out
mkdir -p "$OUT/bin"
[ -f clip.h264 ] || ./make-clip.sh

build_one() { # name features round
  local name=$1 feats=$2 round=$3 log="$OUT/build-$1-$3.log"
  cargo clean -q
  local t0; t0=$(date +%s.%N)
  /usr/bin/time -f "%e %U %S" -o "$OUT/time.tmp" \
    nice -n 10 cargo build --release --no-default-features $feats --bin "$name" >"$log" 2>&1
  local crates; crates=$(grep -c '^ *Compiling ' "$log")
  read -r wall user sys <"$OUT/time.tmp"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$wall" "$user" "$sys" "$crates" | tee -a "$OUT/builds.tsv"
  cp "target/release/$name" "$OUT/bin/$name"
  cp "target/release/$name" "$OUT/bin/$name.stripped"
  strip "$OUT/bin/$name.stripped"
}

builds() {
  printf 'bin\tround\twall_s\tuser_s\tsys_s\tcrates_compiled\n' >"$OUT/builds.tsv"
  for round in 1 2; do
    build_one baseline "" "$round"
    build_one str0m-loop "--features str0m" "$round"
    build_one webrtc-loop "--features webrtc" "$round"
  done
  printf 'bin\tunstripped_bytes\tstripped_bytes\n' >"$OUT/sizes.tsv"
  for b in baseline str0m-loop webrtc-loop; do
    printf '%s\t%s\t%s\n' "$b" "$(stat -c %s "$OUT/bin/$b")" "$(stat -c %s "$OUT/bin/$b.stripped")" | tee -a "$OUT/sizes.tsv"
  done
}

runs() {
  for round in 1 2; do
    for n in 100 10; do
      for b in str0m-loop webrtc-loop baseline; do
        "$OUT/bin/$b" --sessions "$n" --seconds 20 2>>"$OUT/runs.stderr" | tee -a "$OUT/runs.jsonl"
      done
    done
  done
}

case "${1:-all}" in
  builds) builds ;;
  runs) runs ;;
  all) builds; runs ;;
  *) echo "usage: $0 [builds|runs|all]" >&2; exit 2 ;;
esac
