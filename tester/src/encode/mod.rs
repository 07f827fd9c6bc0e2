//! The input clip: synthetic video encoded once with libx264, then replayed to any number of
//! streams as MPEG-TS segments.
//!
//! [`encode_clip`] renders a moving, frame-numbered pattern ([`pattern`]) and encodes it the
//! way Livepeer's live pipeline expects its input: H.264 without B-frames, an IDR (with SPS and
//! PPS in-band) at the start of every segment and nowhere else, Annex B. Encoding happens once
//! per run; [`Replayer`] then muxes the stored access units into trickle segments with
//! continuous timestamps, which costs a memcpy per segment, so hundreds of concurrent streams
//! can share one [`Clip`].

pub mod pattern;
mod replay;

pub use replay::{PlannedFrame, PlannedSegment, ReplayFrame, ReplaySegment, Replayer};

use bytes::Bytes;
use ffmpeg_next as ffmpeg;
use thiserror::Error;

/// What clip to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipConfig {
    /// Picture width in pixels (even).
    pub width: u32,
    /// Picture height in pixels (even).
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Segment (and GOP) duration; `fps * segment_ms` must be a multiple of 1000.
    pub segment_ms: u32,
    /// Segments in the clip; the replayer loops over them.
    pub segments: u32,
    /// Target video bitrate.
    pub bitrate_kbps: u32,
}

impl Default for ClipConfig {
    /// 512x512 at 30 fps (the live pipeline's default size), four 1-second segments, 1 Mbit/s.
    fn default() -> Self {
        Self {
            width: 512,
            height: 512,
            fps: 30,
            segment_ms: 1_000,
            segments: 4,
            bitrate_kbps: 1_000,
        }
    }
}

/// Why a clip could not be encoded.
#[derive(Debug, Error)]
pub enum EncodeError {
    /// The configuration cannot produce a valid clip.
    #[error("invalid clip configuration: {0}")]
    InvalidConfig(&'static str),
    /// FFmpeg could not be initialised.
    #[error("ffmpeg initialisation failed")]
    Init(#[source] ffmpeg::Error),
    /// The FFmpeg build has no libx264 encoder.
    #[error("ffmpeg has no {0} encoder")]
    CodecMissing(&'static str),
    /// The encoder refused its configuration.
    #[error("opening the encoder failed")]
    Open(#[source] ffmpeg::Error),
    /// Sending a frame or receiving a packet failed.
    #[error("encoding failed")]
    Encode(#[source] ffmpeg::Error),
    /// The encoder output does not have the frame structure the clip needs.
    #[error("encoder output is unusable: {0}")]
    BadOutput(String),
}

/// One encoded access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Frame number within the clip, from 0.
    pub index: u32,
    /// True for the IDR at the start of each segment.
    pub keyframe: bool,
    /// The access unit, Annex B; keyframes start with SPS and PPS.
    pub data: Bytes,
}

/// An encoded clip: `segments * frames_per_segment` frames in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    pub config: ClipConfig,
    pub frames: Vec<EncodedFrame>,
}

impl Clip {
    /// Frames in one segment (the GOP length).
    pub fn frames_per_segment(&self) -> u32 {
        frames_per_segment(&self.config).unwrap_or(0)
    }

    /// Segments in the clip.
    pub fn segment_count(&self) -> u32 {
        self.config.segments
    }

    /// The frames of segment `n` (taken modulo the segment count).
    pub fn segment_frames(&self, n: u64) -> &[EncodedFrame] {
        let per = self.frames_per_segment() as usize;
        let count = u64::from(self.segment_count().max(1));
        let start = (n % count) as usize * per;
        self.frames.get(start..start + per).unwrap_or(&[])
    }
}

/// `fps * segment_ms / 1000`, if that is a whole, non-zero number of frames.
fn frames_per_segment(config: &ClipConfig) -> Option<u32> {
    let frames_x1000 = u64::from(config.fps) * u64::from(config.segment_ms);
    if frames_x1000 == 0 || !frames_x1000.is_multiple_of(1000) {
        return None;
    }
    u32::try_from(frames_x1000 / 1000).ok()
}

fn validate(config: &ClipConfig) -> Result<u32, EncodeError> {
    if config.width < 16 || config.height < 16 || config.width > 8192 || config.height > 8192 {
        return Err(EncodeError::InvalidConfig(
            "width and height must be 16..=8192",
        ));
    }
    if !config.width.is_multiple_of(2) || !config.height.is_multiple_of(2) {
        return Err(EncodeError::InvalidConfig(
            "width and height must be even (YUV 4:2:0)",
        ));
    }
    if config.fps == 0 || config.fps > 240 {
        return Err(EncodeError::InvalidConfig("fps must be 1..=240"));
    }
    if config.segments == 0 {
        return Err(EncodeError::InvalidConfig("segments must be at least 1"));
    }
    if config.bitrate_kbps == 0 {
        return Err(EncodeError::InvalidConfig("bitrate_kbps must be positive"));
    }
    let per_segment = frames_per_segment(config).ok_or(EncodeError::InvalidConfig(
        "fps * segment_ms must be a positive multiple of 1000 (whole frames per segment)",
    ))?;
    per_segment
        .checked_mul(config.segments)
        .filter(|&total| total <= 100_000)
        .ok_or(EncodeError::InvalidConfig("clip longer than 100000 frames"))?;
    Ok(per_segment)
}

/// Renders and encodes a clip; see the module documentation.
///
/// Sets FFmpeg's global log level to errors only if it is still at its default, so that
/// libx264's informational banner does not clutter the output of `lvt`.
pub fn encode_clip(config: &ClipConfig) -> Result<Clip, EncodeError> {
    use ffmpeg::format::Pixel;
    use ffmpeg::picture;

    let per_segment = validate(config)?;
    let total = per_segment * config.segments;
    ffmpeg::init().map_err(EncodeError::Init)?;
    if matches!(ffmpeg::log::get_level(), Ok(ffmpeg::log::Level::Info)) {
        ffmpeg::log::set_level(ffmpeg::log::Level::Error);
    }

    let codec =
        ffmpeg::encoder::find_by_name("libx264").ok_or(EncodeError::CodecMissing("libx264"))?;
    let mut video = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(EncodeError::Open)?;
    video.set_width(config.width);
    video.set_height(config.height);
    video.set_format(Pixel::YUV420P);
    video.set_time_base((1, config.fps as i32));
    video.set_frame_rate(Some((config.fps as i32, 1)));
    video.set_gop(per_segment);
    video.set_max_b_frames(0);
    let bitrate = config.bitrate_kbps as usize * 1000;
    video.set_bit_rate(bitrate);

    let mut options = ffmpeg::Dictionary::new();
    options.set("preset", "veryfast");
    options.set("tune", "zerolatency");
    // A frame sent with picture type I becomes an IDR, not just an intra frame.
    options.set("forced-idr", "1");
    // Fixed GOPs: an IDR exactly every segment and never in between (no scene cuts), closed
    // GOPs, no B-frames, SPS/PPS repeated in front of every IDR, Annex B start codes. The VBV
    // holds one segment's worth of bits so the rate stays steady per segment.
    let x264_params = format!(
        "keyint={per_segment}:min-keyint={per_segment}:scenecut=0:open-gop=0:bframes=0:\
         repeat-headers=1:annexb=1:vbv-maxrate={kbps}:vbv-bufsize={buf}",
        kbps = config.bitrate_kbps,
        buf = u64::from(config.bitrate_kbps) * u64::from(config.segment_ms) / 1000,
    );
    options.set("x264-params", &x264_params);
    let mut encoder = video.open_with(options).map_err(EncodeError::Open)?;

    let mut frame = ffmpeg::frame::Video::new(Pixel::YUV420P, config.width, config.height);
    let mut packet = ffmpeg::Packet::empty();
    let mut frames = Vec::with_capacity(total as usize);
    for index in 0..total {
        render(&mut frame, index, per_segment);
        frame.set_pts(Some(i64::from(index)));
        let segment_start = index % per_segment == 0;
        frame.set_kind(if segment_start {
            picture::Type::I
        } else {
            picture::Type::None
        });
        encoder.send_frame(&frame).map_err(EncodeError::Encode)?;
        drain(&mut encoder, &mut packet, &mut frames)?;
    }
    encoder.send_eof().map_err(EncodeError::Encode)?;
    drain(&mut encoder, &mut packet, &mut frames)?;

    check_structure(&frames, total, per_segment)?;
    Ok(Clip {
        config: *config,
        frames,
    })
}

/// Draws pattern frame `index` of a clip of `run` frames per segment into an ffmpeg frame,
/// plane by plane.
fn render(frame: &mut ffmpeg::frame::Video, index: u32, run: u32) {
    use pattern::{Chroma, Plane};

    let width = frame.width() as usize;
    let height = frame.height() as usize;
    for (plane_index, chroma) in [(0, None), (1, Some(Chroma::U)), (2, Some(Chroma::V))] {
        let stride = frame.stride(plane_index);
        let mut plane = Plane {
            data: frame.data_mut(plane_index),
            stride,
            width,
            height,
        };
        match chroma {
            None => pattern::draw_luma(&mut plane, index, run),
            Some(c) => pattern::draw_chroma(&mut plane, index, c),
        }
    }
}

/// Moves every packet the encoder has ready into `frames`.
fn drain(
    encoder: &mut ffmpeg::encoder::Video,
    packet: &mut ffmpeg::Packet,
    frames: &mut Vec<EncodedFrame>,
) -> Result<(), EncodeError> {
    loop {
        match encoder.receive_packet(packet) {
            Ok(()) => {}
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => return Ok(()),
            Err(ffmpeg::Error::Eof) => return Ok(()),
            Err(e) => return Err(EncodeError::Encode(e)),
        }
        let data = packet.data().unwrap_or_default();
        let index = packet
            .pts()
            .and_then(|pts| u32::try_from(pts).ok())
            .ok_or_else(|| {
                EncodeError::BadOutput(format!("packet without a valid pts: {:?}", packet.pts()))
            })?;
        frames.push(EncodedFrame {
            index,
            keyframe: packet.is_key(),
            data: Bytes::copy_from_slice(data),
        });
    }
}

/// Checks that the encoder produced exactly one access unit per frame, in order, with an IDR
/// carrying SPS and PPS at every segment start and nowhere else. The replayer and every
/// measurement rely on this, so a surprising encoder is an error here rather than skewed
/// numbers later.
fn check_structure(
    frames: &[EncodedFrame],
    total: u32,
    per_segment: u32,
) -> Result<(), EncodeError> {
    use lvt_media::h264;

    if frames.len() != total as usize {
        return Err(EncodeError::BadOutput(format!(
            "{} packets for {total} frames",
            frames.len()
        )));
    }
    for (i, f) in frames.iter().enumerate() {
        if f.index as usize != i {
            return Err(EncodeError::BadOutput(format!(
                "packet {i} has frame number {}",
                f.index
            )));
        }
        let segment_start = f.index % per_segment == 0;
        let idr = h264::access_unit_is_idr(&f.data);
        if f.keyframe != segment_start || idr != segment_start {
            return Err(EncodeError::BadOutput(format!(
                "frame {i}: keyframe flag {}, IDR {idr}, segment start {segment_start}",
                f.keyframe
            )));
        }
        if segment_start {
            let has = |t| h264::nal_units(&f.data).any(|n| h264::nal_type(n) == Some(t));
            if !has(h264::NAL_SPS) || !has(h264::NAL_PPS) {
                return Err(EncodeError::BadOutput(format!(
                    "IDR frame {i} lacks in-band SPS/PPS"
                )));
            }
        }
    }
    Ok(())
}

/// Least distance from mid gray (128) of every block of the frame number for
/// [`PictureReader`] to take it as read: a flat or dimmed gray picture has no number, it does
/// not read as frame 0.
const CLEAR_CODE_MARGIN: u8 = 40;

/// Decodes one output stream frame by frame (P-frames included, so it keeps the decoder's
/// state) and says what each picture looks like: the loading overlay check
/// ([`lvt_gateway::session::Output::ClassifyFrame`]). Blocking: drivers run it off their
/// event loop, one reader per stream.
pub struct PictureReader {
    decoder: ffmpeg::decoder::Video,
    decoded: ffmpeg::frame::Video,
    spare: ffmpeg::frame::Video,
}

impl PictureReader {
    /// A reader, or `None` when FFmpeg has no H.264 decoder.
    pub fn new() -> Option<Self> {
        ffmpeg::init().ok()?;
        let codec = ffmpeg::decoder::find(ffmpeg::codec::Id::H264)?;
        let mut context = ffmpeg::codec::context::Context::new_with_codec(codec);
        // One picture out for each access unit in, at once: no frame threads, no reordering
        // delay (live output has no B-frames).
        context.set_threading(ffmpeg::threading::Config {
            kind: ffmpeg::threading::Type::None,
            count: 1,
            ..Default::default()
        });
        context.set_flags(ffmpeg::codec::Flags::LOW_DELAY);
        let decoder = context.decoder().video().ok()?;
        Some(Self {
            decoder,
            decoded: ffmpeg::frame::Video::empty(),
            spare: ffmpeg::frame::Video::empty(),
        })
    }

    /// The next access unit of the stream; `None` when it gives no picture (a P-frame before
    /// the first keyframe, damage) or one not in 4:2:0.
    pub fn look(&mut self, access_unit: &[u8]) -> Option<lvt_gateway::session::PictureLook> {
        self.decoder
            .send_packet(&ffmpeg::Packet::copy(access_unit))
            .ok()?;
        // Only the latest picture counts; with no delay there is exactly one. A call that finds
        // none empties the frame it is given, so each call gets the spare one.
        let mut got = false;
        while self.decoder.receive_frame(&mut self.spare).is_ok() {
            std::mem::swap(&mut self.decoded, &mut self.spare);
            got = true;
        }
        if !got || self.decoded.format() != ffmpeg::format::Pixel::YUV420P {
            return None;
        }
        let (width, height) = (
            self.decoded.width() as usize,
            self.decoded.height() as usize,
        );
        let colourless = pattern::colourless(
            (self.decoded.data(1), self.decoded.stride(1)),
            (self.decoded.data(2), self.decoded.stride(2)),
            width / 2,
            height / 2,
        );
        let code = pattern::read_code_clear(
            self.decoded.data(0),
            self.decoded.stride(0),
            width,
            height,
            CLEAR_CODE_MARGIN,
        );
        let luma = (self.decoded.data(0), self.decoded.stride(0));
        let beacon = pattern::read_beacon(luma.0, luma.1, width, height);
        let marker = pattern::read_marker(luma.0, luma.1, width, height);
        Some(lvt_gateway::session::PictureLook {
            colourless,
            code,
            beacon,
            marker,
        })
    }
}

#[cfg(test)]
mod tests;
