//! MPEG-2 transport streams (ISO/IEC 13818-1): 188-byte packets, PSI tables, PES packets,
//! 90 kHz timestamps.
//!
//! This module owns everything lvt does with TS bytes: [`TsDemuxer`] turns an arbitrarily
//! chunked byte stream into elementary-stream [`Frame`]s stamped with arrival times,
//! [`TsMuxer`] packs H.264 access units into a stream that ffmpeg accepts, and [`Segmenter`]
//! cuts a stream into keyframe-aligned segments for trickle publishing. The submodules share
//! one packet-header parser and one resynchronising packetiser so that all three treat damaged
//! input the same way.

mod demux;
mod mux;
mod packet;
mod psi;
mod segment;
mod sync;

pub use demux::{DemuxStats, Frame, TsDemuxer};
pub use mux::{MAX_OPUS_PACKET, MuxConfig, MuxFrame, OpusTrack, TsMuxer};
pub use segment::{FramePos, Segmenter, TsSegment};

/// Size of one transport stream packet in bytes.
pub const PACKET_SIZE: usize = 188;
/// The sync byte every packet starts with.
pub const SYNC_BYTE: u8 = 0x47;
/// PID of the program association table.
pub const PAT_PID: u16 = 0x0000;
/// PID of null (padding) packets.
pub const NULL_PID: u16 = 0x1fff;
/// Clock rate of PTS, DTS and the PCR base.
pub const PTS_HZ: u64 = 90_000;
/// PTS and DTS are 33-bit counters; this masks a value to that range.
pub const PTS_MASK: u64 = (1 << 33) - 1;

/// `stream_type` of H.264 video in a PMT.
pub const STREAM_TYPE_H264: u8 = 0x1b;
/// `stream_type` of H.265 video in a PMT.
pub const STREAM_TYPE_H265: u8 = 0x24;
/// `stream_type` of ADTS AAC audio in a PMT.
pub const STREAM_TYPE_AAC: u8 = 0x0f;
/// `stream_type` of private PES data (ffmpeg carries Opus this way) in a PMT.
pub const STREAM_TYPE_PRIVATE_PES: u8 = 0x06;

/// True for PMT stream types that carry video, which is what the segmenter cuts on.
pub fn is_video_stream_type(stream_type: u8) -> bool {
    matches!(
        stream_type,
        0x01 | 0x02 | 0x10 | 0x1b | 0x24 | 0x42 | 0xd1 | 0xea
    )
}
