//! The ingest's clock: the RTP times of a WHIP stream's tracks put on one timeline, as
//! go-livepeer's WHIP server does with gortsplib's `rtptime.GlobalDecoder2`.
//!
//! RTP timestamps of different tracks start at unrelated random values. The first track whose
//! packet is decoded leads: its first PTS is 0, and each of its packets moves a reference
//! (its PTS, and when it arrived). A track seen later starts at the leader's reference PTS
//! plus the wall time since, in its own clock rate; from there every track advances by its
//! own RTP deltas (signed 32-bit steps, so reordering steps back and wrap-around is carried).
//!
//! go-livepeer drops audio until its segmenter has started (the first video keyframe), so video
//! always leads and audio lands on the video's timeline; the gateway here does the same
//! ([`IngestClock::audio`] is only called once video has started).

use std::time::{Duration, Instant};

/// Clock rate of H.264 over RTP, and of MPEG-TS timestamps.
pub const VIDEO_HZ: u64 = 90_000;
/// Clock rate of Opus over RTP.
pub const OPUS_HZ: u64 = 48_000;

/// One track's position on the timeline.
#[derive(Debug, Clone, Copy)]
struct Track {
    overall: i64,
    prev: u32,
}

/// Which track a time belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Video,
    Audio,
}

impl Kind {
    fn hz(self) -> u64 {
        match self {
            Kind::Video => VIDEO_HZ,
            Kind::Audio => OPUS_HZ,
        }
    }
}

/// The timeline of one ingest; see the module documentation.
#[derive(Debug, Default)]
pub struct IngestClock {
    /// The leading track, its last PTS (in its clock rate) and when that packet came.
    lead: Option<(Kind, i64, Instant)>,
    video: Option<Track>,
    audio: Option<Track>,
}

impl IngestClock {
    /// The PTS (90 kHz) of a video access unit with RTP time `rtp_time` that arrived at `at`.
    pub fn video(&mut self, rtp_time: u64, at: Instant) -> i64 {
        self.decode(Kind::Video, rtp_time, at)
    }

    /// The PTS (48 kHz, Opus's RTP clock) of an audio packet with RTP time `rtp_time` that
    /// arrived at `at`.
    pub fn audio(&mut self, rtp_time: u64, at: Instant) -> i64 {
        self.decode(Kind::Audio, rtp_time, at)
    }

    fn decode(&mut self, kind: Kind, rtp_time: u64, at: Instant) -> i64 {
        // RTP carries 32 bits; the decoder works on them as gortsplib does.
        let ts = rtp_time as u32;
        let slot = match kind {
            Kind::Video => &mut self.video,
            Kind::Audio => &mut self.audio,
        };
        let pts = match slot {
            Some(track) => {
                track.overall += i64::from(ts.wrapping_sub(track.prev) as i32);
                track.prev = ts;
                track.overall
            }
            None => {
                let (lead_kind, lead_pts, lead_at) = *self.lead.get_or_insert((kind, 0, at));
                let start = rescale(lead_pts, kind.hz(), lead_kind.hz())
                    + rescale_duration(at.saturating_duration_since(lead_at), kind.hz());
                *slot = Some(Track {
                    overall: start,
                    prev: ts,
                });
                return start;
            }
        };
        // The leader's reference moves with each of its packets (every H.264 access unit of a
        // stream without B-frames, and every Opus packet, has PTS equal to DTS).
        if let Some(lead) = self.lead.as_mut()
            && lead.0 == kind
        {
            *lead = (kind, pts, at);
        }
        pts
    }
}

/// `v` in clock rate `from` expressed in clock rate `to`, integer part first (gortsplib's
/// `multiplyAndDivide`, also go-livepeer's, which rescales audio to 90 kHz with it).
pub fn rescale(v: i64, to: u64, from: u64) -> i64 {
    let (to, from) = (to as i64, from as i64);
    (v / from) * to + (v % from) * to / from
}

fn rescale_duration(d: Duration, hz: u64) -> i64 {
    rescale(
        i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        hz,
        1_000_000_000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_track_starts_at_zero_and_advances_by_its_rtp_deltas() {
        let t0 = Instant::now();
        let mut clock = IngestClock::default();
        let base = 3_000_000_000u64; // a random start near the 32-bit wrap
        assert_eq!(clock.video(base, t0), 0);
        assert_eq!(clock.video(base + 3000, t0), 3000);
        // Across the 32-bit wrap, and one step back (a reordered packet).
        let wrapped = (base + 1_300_000_000) & 0xffff_ffff;
        assert_eq!(clock.video(wrapped, t0), 1_300_000_000);
        assert_eq!(
            clock.video(wrapped.wrapping_sub(3000) & 0xffff_ffff, t0),
            1_299_997_000
        );
    }

    #[test]
    fn audio_joins_the_video_timeline_at_the_wall_time_since_the_last_video() {
        let t0 = Instant::now();
        let mut clock = IngestClock::default();
        clock.video(1_000, t0);
        clock.video(1_000 + 90_000, t0 + Duration::from_secs(1));
        // The first audio packet comes 20 ms after the video at PTS 90,000 (1 s): 1.02 s in
        // 48 kHz, whatever its own RTP time.
        let first = clock.audio(777_777, t0 + Duration::from_millis(1_020));
        assert_eq!(first, 48_960);
        assert_eq!(clock.audio(777_777 + 960, t0), 48_960 + 960);
        assert_eq!(rescale(first, VIDEO_HZ, OPUS_HZ), 91_800);
        // Video keeps its own deltas.
        assert_eq!(clock.video(1_000 + 93_000, t0), 93_000);
    }

    #[test]
    fn rescaling_keeps_the_remainder() {
        assert_eq!(rescale(47_999, VIDEO_HZ, OPUS_HZ), 89_998);
        assert_eq!(
            rescale(48_000 * 1_000_000 + 1, VIDEO_HZ, OPUS_HZ),
            90_000_000_001
        );
    }
}
