//! lvt-media: pure-Rust, sans-IO media code for lvt.
//!
//! It owns the two bitstream layers lvt needs to measure live video without ffmpeg on the hot
//! path: MPEG transport streams ([`ts`]: an incremental demuxer that timestamps every frame with
//! the arrival time of its first byte, a muxer for H.264 access units, and a keyframe segmenter)
//! and H.264 Annex B parsing ([`h264`]: NAL unit iteration, IDR detection, SPS dimensions).
//!
//! Nothing here reads a clock or performs IO: callers pass bytes in together with the time, in
//! microseconds on a clock of their choosing, at which those bytes arrived. That keeps every
//! latency computation exact and every test deterministic. The one exception is [`ffprobe`],
//! a checking aid that runs FFmpeg's `ffprobe` on bytes we produced; nothing on the measuring
//! path uses it.

pub mod ffprobe;
pub mod flat;
pub mod h264;
pub mod ts;
