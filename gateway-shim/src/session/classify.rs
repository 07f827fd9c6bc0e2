//! Turning what a session saw into its outcome and failure class.
//!
//! This is a pure function over the evidence a session gathered, so every combination (a
//! fatal error during start, garbage on the output channel, malformed events, a runner that
//! reported an error) is tested without any network.

use lvt_schema::{Failure, FailureClass, Outcome};

/// What a finished session observed that decides its outcome.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The first fatal condition that stopped the session early, if any.
    pub fatal: Option<Failure>,
    /// Processed video frames demuxed from the output channel.
    pub frames_received: u64,
    /// Loading overlay frames: media, but no AI output.
    pub overlay_frames: u64,
    /// Output frames the session ended before their pictures were read, while the pipeline
    /// may still have been loading: media, not known to be AI output.
    pub unread_frames: u64,
    /// Bytes read from the output channel.
    pub bytes_received: u64,
    /// Event documents that were not valid JSON or not the events envelope.
    pub events_malformed: u64,
    /// The runner said it was in the ERROR state, or sent error events.
    pub runner_reported_error: Option<String>,
}

/// Decides the outcome of one session.
///
/// A busy orchestrator is `unscored_busy`, never a failure: it is a capacity signal, not a
/// verdict on quality. A session with output that decodes and events that parse passes.
pub fn classify(ev: &Evidence) -> (Outcome, Option<Failure>) {
    if let Some(fatal) = &ev.fatal {
        if fatal.class == FailureClass::Capacity {
            return (Outcome::UnscoredBusy, Some(fatal.clone()));
        }
        // An output timeout on a channel that did carry bytes means the bytes were not media:
        // that is the orchestrator speaking the protocol wrong, not being slow.
        if fatal.class == FailureClass::OutputTimeout
            && ev.frames_received == 0
            && ev.overlay_frames == 0
            && ev.unread_frames == 0
            && ev.bytes_received > 0
        {
            return failed(
                FailureClass::ProtocolError,
                format!(
                    "the output channel carried {} bytes but no decodable MPEG-TS video frame ({})",
                    ev.bytes_received, fatal.detail
                ),
            );
        }
        return (Outcome::Failed, Some(fatal.clone()));
    }
    if ev.frames_received == 0 {
        if ev.bytes_received > 0 && ev.overlay_frames == 0 && ev.unread_frames == 0 {
            return failed(
                FailureClass::ProtocolError,
                format!(
                    "the output channel carried {} bytes but no decodable MPEG-TS video frame",
                    ev.bytes_received
                ),
            );
        }
        if let Some(err) = &ev.runner_reported_error {
            return failed(
                FailureClass::RunnerError,
                format!("no output; the runner reported: {err}"),
            );
        }
        if ev.overlay_frames == 0 && ev.unread_frames > 0 {
            return failed(
                FailureClass::OutputTimeout,
                format!(
                    "the session ended before an output frame was known to be processed: {} \
                     frames were still being read (the pipeline may still have been loading)",
                    ev.unread_frames
                ),
            );
        }
        if ev.overlay_frames > 0 {
            return failed(
                FailureClass::OutputTimeout,
                format!(
                    "the session ended without a processed output frame: {} loading overlay \
                     frames only (the pipeline was still loading)",
                    ev.overlay_frames
                ),
            );
        }
        return failed(
            FailureClass::OutputTimeout,
            "the session ended without a single output frame".to_string(),
        );
    }
    if ev.events_malformed > 0 {
        return failed(
            FailureClass::ProtocolError,
            format!(
                "{} event document(s) on the events channel were not valid event JSON",
                ev.events_malformed
            ),
        );
    }
    (Outcome::Passed, None)
}

fn failed(class: FailureClass, detail: String) -> (Outcome, Option<Failure>) {
    (Outcome::Failed, Some(Failure { class, detail }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fatal(class: FailureClass) -> Option<Failure> {
        Some(Failure {
            class,
            detail: "x".into(),
        })
    }

    fn check(ev: Evidence, outcome: Outcome, class: Option<FailureClass>) {
        let (o, f) = classify(&ev);
        assert_eq!(o, outcome, "{ev:?}");
        assert_eq!(f.map(|f| f.class), class, "{ev:?}");
    }

    /// Loading overlay frames are media (no protocol error) but no AI output: a session that
    /// only ever saw them does not pass.
    #[test]
    fn a_session_with_only_overlay_frames_fails_for_want_of_output() {
        let loading = Evidence {
            overlay_frames: 200,
            bytes_received: 80_000,
            ..Default::default()
        };
        let (outcome, failure) = classify(&loading);
        assert_eq!(outcome, Outcome::Failed);
        let failure = failure.expect("a failure");
        assert_eq!(failure.class, FailureClass::OutputTimeout);
        assert!(
            failure.detail.contains("200 loading overlay frames"),
            "{failure:?}"
        );
        check(
            Evidence {
                fatal: fatal(FailureClass::OutputTimeout),
                ..loading
            },
            Outcome::Failed,
            Some(FailureClass::OutputTimeout),
        );
    }

    /// Frames a session ended before it could read (its pipeline perhaps still loading) are
    /// media, not garbage, and not output either.
    #[test]
    fn frames_left_unread_are_neither_output_nor_a_protocol_error() {
        let unread = Evidence {
            unread_frames: 12,
            bytes_received: 9_000,
            ..Default::default()
        };
        let (outcome, failure) = classify(&unread);
        assert_eq!(outcome, Outcome::Failed);
        let failure = failure.expect("a failure");
        assert_eq!(failure.class, FailureClass::OutputTimeout);
        assert!(failure.detail.contains("12 frames"), "{failure:?}");
        check(
            Evidence {
                fatal: fatal(FailureClass::OutputTimeout),
                ..unread
            },
            Outcome::Failed,
            Some(FailureClass::OutputTimeout),
        );
    }

    #[test]
    fn classifies_each_kind_of_session() {
        let ok = Evidence {
            frames_received: 300,
            bytes_received: 100_000,
            ..Default::default()
        };
        check(ok.clone(), Outcome::Passed, None);
        check(
            Evidence {
                fatal: fatal(FailureClass::Capacity),
                ..Default::default()
            },
            Outcome::UnscoredBusy,
            Some(FailureClass::Capacity),
        );
        check(
            Evidence {
                fatal: fatal(FailureClass::PublishLost),
                ..ok.clone()
            },
            Outcome::Failed,
            Some(FailureClass::PublishLost),
        );
        // Garbage on the output channel is a protocol error whether or not a timeout fired.
        check(
            Evidence {
                fatal: fatal(FailureClass::OutputTimeout),
                bytes_received: 5000,
                ..Default::default()
            },
            Outcome::Failed,
            Some(FailureClass::ProtocolError),
        );
        check(
            Evidence {
                bytes_received: 5000,
                ..Default::default()
            },
            Outcome::Failed,
            Some(FailureClass::ProtocolError),
        );
        check(
            Evidence {
                fatal: fatal(FailureClass::OutputTimeout),
                ..Default::default()
            },
            Outcome::Failed,
            Some(FailureClass::OutputTimeout),
        );
        check(
            Evidence {
                runner_reported_error: Some("CUDA OOM".into()),
                ..Default::default()
            },
            Outcome::Failed,
            Some(FailureClass::RunnerError),
        );
        check(
            Evidence {
                events_malformed: 1,
                ..ok
            },
            Outcome::Failed,
            Some(FailureClass::ProtocolError),
        );
        check(
            Evidence::default(),
            Outcome::Failed,
            Some(FailureClass::OutputTimeout),
        );
    }
}
