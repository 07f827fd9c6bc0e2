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

use bytes::Bytes;

use super::RunnerInput;

/// go-livepeer's `gatherIncomingTracks`: after the video track, audio is waited for this long;
/// an audio track that shows up later is not segmented.
pub const AUDIO_GATHER_TIMEOUT: Duration = Duration::from_millis(500);

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

/// What the ingest hands its runner, decided as go-livepeer's WHIP server decides it:
///
/// - *gathering* (`gatherIncomingTracks`): when the offer has audio, the stream waits after its
///   first video for the audio track, up to [`AUDIO_GATHER_TIMEOUT`]; the video that comes
///   meanwhile is held (pion keeps it in the track's buffer) and handed on when the tracks are
///   settled. Audio whose first packet comes after that wait is not taken;
/// - audio is dropped until the first keyframe has started the segmenter;
/// - both tracks on one timeline ([`IngestClock`]), audio rescaled to 90 kHz.
#[derive(Debug)]
pub struct Tracks {
    clock: IngestClock,
    first_video: Option<Instant>,
    /// The tracks are settled: media goes to the runner as it comes.
    gathered: bool,
    /// Whether the audio track is taken, once its first packet has come.
    audio: Option<bool>,
    segmenting: bool,
    /// Video held while the audio track is waited for: RTP time, arrival, access unit.
    held: Vec<(u64, Instant, Bytes)>,
}

impl Tracks {
    /// The tracks of an ingest whose offer has audio (`expects_audio`) or not.
    pub fn new(expects_audio: bool) -> Self {
        Tracks {
            clock: IngestClock::default(),
            first_video: None,
            gathered: !expects_audio,
            audio: None,
            segmenting: false,
            held: Vec::new(),
        }
    }

    /// A video access unit arrived; `give` is handed what goes to the runner now.
    pub fn video(
        &mut self,
        rtp_time: u64,
        at: Instant,
        data: Bytes,
        give: impl FnMut(RunnerInput),
    ) {
        self.first_video.get_or_insert(at);
        // Audio came first: the wait ends with the video.
        self.gathered |= self.audio == Some(true);
        self.held.push((rtp_time, at, data));
        if self.gathered {
            self.release(give);
        }
    }

    /// An audio packet arrived.
    pub fn audio(
        &mut self,
        rtp_time: u64,
        at: Instant,
        data: Bytes,
        mut give: impl FnMut(RunnerInput),
    ) {
        let first_video = self.first_video;
        let taken = *self.audio.get_or_insert_with(|| {
            first_video.is_none_or(|video| at <= video + AUDIO_GATHER_TIMEOUT)
        });
        if !taken {
            return;
        }
        if self.first_video.is_some() && !self.gathered {
            self.gathered = true;
            self.release(&mut give);
        }
        if self.segmenting {
            let pts = rescale(self.clock.audio(rtp_time, at), VIDEO_HZ, OPUS_HZ);
            give(RunnerInput::Audio {
                pts: on_timeline(pts),
                data,
            });
        }
    }

    /// When the wait for the audio track ends, while it lasts.
    pub fn gather_deadline(&self) -> Option<Instant> {
        self.first_video
            .filter(|_| !self.gathered)
            .map(|video| video + AUDIO_GATHER_TIMEOUT)
    }

    /// The wait for the audio track is over (its deadline passed): the held video goes on.
    pub fn stop_waiting(&mut self, give: impl FnMut(RunnerInput)) {
        self.gathered = true;
        self.release(give);
    }

    fn release(&mut self, mut give: impl FnMut(RunnerInput)) {
        for (rtp_time, at, data) in self.held.drain(..) {
            let keyframe = lvt_media::h264::contains_idr(&data);
            self.segmenting |= keyframe;
            let pts = on_timeline(self.clock.video(rtp_time, at));
            give(RunnerInput::Video {
                pts,
                at,
                data,
                keyframe,
            });
        }
    }
}

/// A PTS of the ingest's timeline as the runner takes it: never below 0 (a packet reordered
/// before the first), not wrapped (the muxer keeps the 33 bits MPEG-TS carries).
fn on_timeline(pts: i64) -> u64 {
    pts.max(0) as u64
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
