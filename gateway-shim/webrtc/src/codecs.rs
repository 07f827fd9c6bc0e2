//! The codec set of go-livepeer's gateway (`media/whip_server.go`, `genParams`): Pion's default
//! codecs cut down to Opus and H.264, with the same payload types, so an SDP offer lvt makes
//! reads exactly like the gateway's own answer would expect.
//!
//! | PT  | codec                                                                  |
//! |-----|------------------------------------------------------------------------|
//! | 111 | opus/48000/2, `minptime=10;useinbandfec=1`                             |
//! | 102 | H264/90000, `level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f`, RTX 103 |
//! | 104 | H264/90000, the same with `packetization-mode=0`, RTX 105              |
//!
//! Video feedback: `goog-remb`, `ccm fir`, `nack`, `nack pli` (str0m adds transport-cc too).
//!
//! RTP header extensions: only `mid`. lvt sends a fixed-rate clip and adapts to nothing, so it
//! offers no bandwidth-estimation extensions (transport-wide-cc, abs-send-time; audio level is
//! of no use either). Browsers do offer them; a gateway that paces by them gets no feedback from
//! lvt, as from any peer that does not negotiate them. Measured: about 8 % less CPU on the
//! tester and 12 % on the simulated gateway (docs/benchmarks.md).

use std::sync::Arc;

use str0m::RtcConfig;
use str0m::format::{Codec, FormatParams};
use str0m::media::Frequency;

/// Opus, 48 kHz stereo.
pub const OPUS_PT: u8 = 111;
/// H.264 constrained baseline, packetization mode 1 (FU-A, STAP-A): what lvt sends.
pub const H264_PT: u8 = 102;
/// Its retransmissions.
pub const H264_RTX_PT: u8 = 103;
/// H.264 in packetization mode 0 (single NAL units), offered by go-livepeer too.
pub const H264_MODE0_PT: u8 = 104;
/// Its retransmissions.
pub const H264_MODE0_RTX_PT: u8 = 105;
/// `profile-level-id=42001f`: constrained baseline, level 3.1.
pub const PROFILE_LEVEL_ID: u32 = 0x42001f;
/// RTP clock of video: 90 kHz, the same as MPEG-TS PTS.
pub const VIDEO_CLOCK: u64 = 90_000;
/// RTP clock of Opus.
pub const AUDIO_CLOCK: u64 = 48_000;

/// Video packets each sending peer keeps for retransmission.
pub const SEND_BUFFER_VIDEO: usize = 300;

/// A str0m configuration with go-livepeer's codecs and nothing else, and pure-Rust crypto.
pub fn rtc_config() -> RtcConfig {
    let mut config = RtcConfig::new()
        // Chrome's id for mid, as str0m's standard map has it.
        .clear_extension_map()
        .set_extension(4, str0m::rtp::Extension::RtpMid)
        // Packets kept for retransmission: 300 (about 8 s of lvt's 512x512 clip) is far more
        // than a NACK needs (it comes within a round trip), where str0m's 1,000 held over a
        // megabyte per sending peer.
        .set_send_buffer_video(SEND_BUFFER_VIDEO)
        .clear_codecs()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()));
    let codecs = config.codec_config();
    codecs.add_config(
        OPUS_PT.into(),
        None,
        Codec::Opus,
        Frequency::FORTY_EIGHT_KHZ,
        Some(2),
        FormatParams {
            min_p_time: Some(10),
            use_inband_fec: Some(true),
            ..Default::default()
        },
    );
    codecs.add_h264(
        H264_PT.into(),
        Some(H264_RTX_PT.into()),
        true,
        PROFILE_LEVEL_ID,
    );
    codecs.add_h264(
        H264_MODE0_PT.into(),
        Some(H264_MODE0_RTX_PT.into()),
        false,
        PROFILE_LEVEL_ID,
    );
    config
}

/// A 20 ms Opus packet of silence (TOC: CELT fullband 20 ms, one frame; the payload the
/// encoder gives for digital silence). lvt's audio track carries only these: the gateway
/// wants Opus beside the video, nothing measures audio.
pub const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];
/// Samples of one Opus packet at 48 kHz (20 ms).
pub const OPUS_FRAME_SAMPLES: u64 = 960;

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use crate::{Peer, Role};

    #[tokio::test]
    async fn offers_carry_go_livepeers_codecs_and_only_the_mid_extension() {
        for role in [Role::Publish, Role::Play] {
            let (_, offer) = Peer::offer(IpAddr::V4(Ipv4Addr::LOCALHOST), role)
                .await
                .unwrap();
            assert!(offer.contains("a=rtpmap:102 H264/90000"), "{offer}");
            assert!(offer.contains("profile-level-id=42001f"), "{offer}");
            assert!(offer.contains("a=rtpmap:111 opus/48000/2"), "{offer}");
            assert!(
                offer.contains("a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid"),
                "{offer}"
            );
            assert_eq!(
                offer.matches("a=extmap:").count(),
                2,
                "one per m-line: {offer}"
            );
            assert!(!offer.contains("transport-wide-cc"), "{offer}");
            assert!(!offer.contains("abs-send-time"), "{offer}");
        }
    }
}
