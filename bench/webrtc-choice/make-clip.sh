#!/usr/bin/env bash
# Generate the H.264 test clip used by str0m-loop and webrtc-loop.
# 4 s of 640x360@30 testsrc2, constrained baseline, GOP 30, ~1 Mb/s, Annex-B,
# with an access unit delimiter (NAL type 9) before every access unit so the
# harness can split frames at AUDs. Output: ./clip.h264 (or $1).
set -euo pipefail
out="${1:-clip.h264}"
command -v ffmpeg >/dev/null || { echo "ffmpeg missing: apt-get install -y ffmpeg" >&2; exit 1; }
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i testsrc2=size=640x360:rate=30 -t 4 \
  -c:v libx264 -profile:v baseline -g 30 -b:v 1M -x264-params aud=1 \
  -bsf:v h264_mp4toannexb -f h264 "$out"
echo "wrote $out ($(stat -c %s "$out") bytes)"
