//! Tests of the session recorder. Every case goes through one harness, [`check`]: a list of
//! observations on simulated time, the end of the session, and the expected values addressed by
//! JSON pointer into `{"metrics": SessionMetrics, "runner": RunnerReport}`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::*;

const SECOND_US: u64 = 1_000_000;
/// PTS ticks per second (MPEG-TS 90 kHz clock).
const PTS_HZ: u64 = 90_000;

/// One observation fed to the recorder.
#[derive(Debug, Clone)]
enum Input {
    Sent {
        pts: u64,
        at_us: u64,
    },
    SegmentSent {
        bytes: u64,
        at_us: u64,
    },
    Output {
        pts: u64,
        at_us: u64,
        keyframe: bool,
        size_bytes: usize,
    },
    SegmentReceived {
        bytes: u64,
        at_us: u64,
    },
    Resolution {
        width: u32,
        height: u32,
    },
    Event {
        document: Value,
        at_us: u64,
    },
    EventBytes {
        bytes: Vec<u8>,
        at_us: u64,
    },
    MediaErrors(MediaErrors),
}

fn feed(recorder: &mut SessionRecorder, input: &Input) {
    match input {
        Input::Sent { pts, at_us } => recorder.handle_input_frame_sent(*pts, *at_us),
        Input::SegmentSent { bytes, at_us } => recorder.handle_segment_sent(*bytes, *at_us),
        Input::Output {
            pts,
            at_us,
            keyframe,
            size_bytes,
        } => recorder.handle_output_frame(*pts, *at_us, *keyframe, *size_bytes),
        Input::SegmentReceived { bytes, at_us } => recorder.handle_segment_received(*bytes, *at_us),
        Input::Resolution { width, height } => recorder.handle_resolution(*width, *height),
        Input::Event { document, at_us } => recorder.handle_event(document, *at_us),
        Input::EventBytes { bytes, at_us } => recorder.handle_event_bytes(bytes, *at_us),
        Input::MediaErrors(errors) => recorder.handle_media_errors(*errors),
    }
}

/// Feeds `inputs` in order with the default configuration, finishes at `end_us` and returns
/// `{"metrics": ..., "runner": ...}`.
fn record(inputs: &[Input], end_us: u64) -> Value {
    let mut recorder = SessionRecorder::new(MeasureConfig::default());
    for input in inputs {
        feed(&mut recorder, input);
    }
    let (metrics, runner) = recorder.finish(end_us);
    json!({"metrics": metrics, "runner": runner})
}

/// The harness: records `inputs`, then compares each `(pointer, expected)` pair. Numbers match
/// within 0.1 % (the latency histogram's precision) or 1e-9 absolute; everything else exactly.
fn check(inputs: &[Input], end_us: u64, expected: &[(&str, Value)]) {
    let actual = record(inputs, end_us);
    for (pointer, want) in expected {
        let got = actual
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{pointer} is missing from {actual:#}"));
        let matches = match (got.as_f64(), want.as_f64()) {
            (Some(got), Some(want)) => (got - want).abs() <= 1e-9 + want.abs() * 1e-3,
            _ => got == want,
        };
        assert!(matches, "{pointer}: expected {want}, got {got}");
    }
}

/// `count` input frames at `fps` starting at `start_us` with PTS from 0.
fn inputs_at(fps: u64, count: u64, start_us: u64) -> Vec<Input> {
    (0..count)
        .map(|index| Input::Sent {
            pts: index * PTS_HZ / fps,
            at_us: start_us + index * SECOND_US / fps,
        })
        .collect()
}

/// The output for input frame `index` of a stream at `fps` starting at `start_us`, arriving
/// `latency_us` after it was sent.
fn output_for(fps: u64, index: u64, start_us: u64, latency_us: u64) -> Input {
    Input::Output {
        pts: index * PTS_HZ / fps,
        at_us: start_us + index * SECOND_US / fps + latency_us,
        keyframe: index.is_multiple_of(fps),
        size_bytes: 1000,
    }
}

/// Orders observations by time the way a driver would deliver them; ties keep their order, so
/// a frame's send is fed before an output arriving at the same instant.
fn by_time(mut inputs: Vec<Input>) -> Vec<Input> {
    fn at(input: &Input) -> u64 {
        match input {
            Input::Sent { at_us, .. }
            | Input::SegmentSent { at_us, .. }
            | Input::Output { at_us, .. }
            | Input::SegmentReceived { at_us, .. }
            | Input::Event { at_us, .. }
            | Input::EventBytes { at_us, .. } => *at_us,
            Input::Resolution { .. } | Input::MediaErrors(_) => 0,
        }
    }
    inputs.sort_by_key(at);
    inputs
}

fn status(state: &str, input_fps: f64, output_fps: f64, params_hash: &str) -> Value {
    json!({
        "queue_event_type": "ai_stream_events",
        "event": {
            "type": "status",
            "timestamp": 1_700_000_000_000u64,
            "pipeline": "live-video-to-video",
            "state": state,
            "input_status": {"last_input_time": 1.0, "fps": input_fps},
            "inference_status": {
                "last_output_time": 1.0,
                "fps": output_fps,
                "last_params_hash": params_hash,
                "restart_count": 0
            }
        }
    })
}

#[test]
fn constant_latency_gives_exact_percentiles() {
    let start_us = 10 * SECOND_US;
    let mut inputs = inputs_at(30, 300, start_us);
    inputs.extend((0..300).map(|index| output_for(30, index, start_us, 250_000)));
    check(
        &by_time(inputs),
        start_us + 10 * SECOND_US + 250_000,
        &[
            ("/metrics/e2e_latency_ms/count", json!(300)),
            ("/metrics/e2e_latency_ms/p50", json!(250.0)),
            ("/metrics/e2e_latency_ms/p90", json!(250.0)),
            ("/metrics/e2e_latency_ms/p99", json!(250.0)),
            ("/metrics/e2e_latency_ms/max", json!(250.0)),
            ("/metrics/e2e_latency_ms/min", json!(250.0)),
            ("/metrics/e2e_latency_ms/mean", json!(250.0)),
            ("/metrics/startup_ms", json!(250.0)),
            ("/metrics/frames_sent", json!(300)),
            ("/metrics/frames_received", json!(300)),
            ("/metrics/frames_unmatched", json!(0)),
            ("/metrics/output_keyframes", json!(10)),
            ("/metrics/output_video_bytes", json!(300_000)),
            ("/metrics/stalls/count", json!(0)),
        ],
    );
}

#[test]
fn latency_percentiles_follow_the_distribution() {
    // Latencies 1..=100 ms, one frame each: the nearest-rank percentiles are the values.
    let mut inputs = Vec::new();
    for index in 0..100u64 {
        let sent_us = index * 40_000;
        inputs.push(Input::Sent {
            pts: index,
            at_us: sent_us,
        });
        inputs.push(Input::Output {
            pts: index,
            at_us: sent_us + (index + 1) * 1000,
            keyframe: false,
            size_bytes: 10,
        });
    }
    check(
        &inputs,
        5 * SECOND_US,
        &[
            ("/metrics/e2e_latency_ms/p50", json!(50.0)),
            ("/metrics/e2e_latency_ms/p90", json!(90.0)),
            ("/metrics/e2e_latency_ms/p95", json!(95.0)),
            ("/metrics/e2e_latency_ms/p99", json!(99.0)),
            ("/metrics/e2e_latency_ms/max", json!(100.0)),
            ("/metrics/e2e_latency_ms/min", json!(1.0)),
            ("/metrics/e2e_latency_ms/mean", json!(50.5)),
        ],
    );
}

#[test]
fn thirty_fps_in_twelve_fps_out_gives_mean_twelve() {
    let start_us = SECOND_US;
    let mut inputs = inputs_at(30, 300, start_us);
    // The runner keeps 2 frames of every 5: 12 of each 30.
    inputs.extend(
        (0..300)
            .filter(|index| index % 5 == 0 || index % 5 == 2)
            .map(|index| output_for(30, index, start_us, 100_000)),
    );
    check(
        &by_time(inputs),
        start_us + 100_000 + 10 * SECOND_US,
        &[
            // 120 frames, input indices 0 to 297: 119 intervals over 9.9 s. The span ends on
            // the decimation pattern's phase, hence not exactly 12.
            ("/metrics/output_fps/mean", json!(119.0 / 9.9)),
            ("/metrics/output_fps/p5", json!(12.0)),
            ("/metrics/output_fps/p50", json!(12.0)),
            ("/metrics/output_fps/windows", json!(10)),
            ("/metrics/fps_jitter", json!(0.0)),
            ("/metrics/input_fps", json!(30.0)),
            ("/metrics/frames_received", json!(120)),
            ("/metrics/frames_unmatched", json!(0)),
            ("/metrics/e2e_latency_ms/count", json!(120)),
        ],
    );
}

#[test]
fn regular_output_has_zero_jitter() {
    let inputs: Vec<Input> = (0..100u64)
        .map(|index| Input::Output {
            pts: index * 3600,
            at_us: 5 * SECOND_US + index * 40_000,
            keyframe: false,
            size_bytes: 100,
        })
        .collect();
    check(
        &inputs,
        9 * SECOND_US,
        &[
            ("/metrics/output_fps/mean", json!(25.0)),
            ("/metrics/output_fps/windows", json!(4)),
            ("/metrics/fps_jitter", json!(0.0)),
            ("/metrics/frame_interval_jitter_ms", json!(0.0)),
            ("/metrics/stalls/count", json!(0)),
            // Nothing was sent, so every output is unmatched and no latency exists.
            ("/metrics/frames_unmatched", json!(100)),
            ("/metrics/e2e_latency_ms", Value::Null),
            ("/metrics/startup_ms", Value::Null),
        ],
    );
}

#[test]
fn irregular_output_has_interval_jitter() {
    // Intervals alternate 20 ms and 60 ms: mean 40, population std exactly 20.
    let mut at_us = 0;
    let mut inputs = Vec::new();
    for index in 0..101u64 {
        inputs.push(Input::Output {
            pts: index,
            at_us,
            keyframe: false,
            size_bytes: 1,
        });
        at_us += if index % 2 == 0 { 20_000 } else { 60_000 };
    }
    check(
        &inputs,
        4 * SECOND_US,
        &[("/metrics/frame_interval_jitter_ms", json!(20.0))],
    );
}

#[test]
fn a_two_second_gap_is_one_stall() {
    let mut inputs = Vec::new();
    // 3 s of 30 fps output, a 2 s hole, then 3 s more.
    for index in 0..90u64 {
        inputs.push(Input::Output {
            pts: index,
            at_us: index * SECOND_US / 30,
            keyframe: false,
            size_bytes: 1,
        });
    }
    let resume_us = 89 * SECOND_US / 30 + 2 * SECOND_US;
    for index in 0..90u64 {
        inputs.push(Input::Output {
            pts: 1000 + index,
            at_us: resume_us + index * SECOND_US / 30,
            keyframe: false,
            size_bytes: 1,
        });
    }
    let end_us = resume_us + 89 * SECOND_US / 30;
    check(
        &inputs,
        end_us,
        &[
            ("/metrics/stalls/count", json!(1)),
            ("/metrics/stalls/longest_ms", json!(2000.0)),
            ("/metrics/stalls/total_ms", json!(2000.0)),
            // The full window [3 s, 4 s) falls inside the hole and counts as zero FPS.
            ("/metrics/output_fps/windows", json!(7)),
            ("/metrics/output_fps/p5", json!(0.0)),
        ],
    );
}

#[test]
fn gaps_at_the_threshold_are_not_stalls() {
    let inputs: Vec<Input> = (0..10u64)
        .map(|index| Input::Output {
            pts: index,
            at_us: index * 500_000,
            keyframe: false,
            size_bytes: 1,
        })
        .collect();
    check(&inputs, 9 * 500_000, &[("/metrics/stalls/count", json!(0))]);
}

#[test]
fn output_stopping_before_the_end_is_a_trailing_stall() {
    let start_us = 0;
    let mut inputs = inputs_at(30, 300, start_us);
    // Output only for the first 5 s of a 10 s session.
    inputs.extend((0..150).map(|index| output_for(30, index, start_us, 200_000)));
    let last_output_us = 149 * SECOND_US / 30 + 200_000;
    let end_us = 10 * SECOND_US;
    check(
        &by_time(inputs),
        end_us,
        &[
            ("/metrics/stalls/count", json!(1)),
            (
                "/metrics/stalls/longest_ms",
                json!((end_us - last_output_us) as f64 / 1000.0),
            ),
            // Five windows of 30 frames, then four empty ones that still count.
            ("/metrics/output_fps/windows", json!(9)),
            // 149 intervals from the first output (0.2 s) to the end (10 s): output stopped.
            ("/metrics/output_fps/mean", json!(149.0 / 9.8)),
            ("/metrics/output_fps/p5", json!(0.0)),
            ("/metrics/output_fps/p50", json!(30.0)),
        ],
    );
}

#[test]
fn the_last_partial_fps_window_is_dropped() {
    let inputs: Vec<Input> = (0..30u64)
        .map(|index| Input::Output {
            pts: index,
            at_us: index * SECOND_US / 12,
            keyframe: false,
            size_bytes: 1,
        })
        .collect();
    // 30 frames at 12 fps span 2.5 s: two full windows of 12 frames, the half window dropped.
    check(
        &inputs,
        2_500_000,
        &[
            ("/metrics/output_fps/windows", json!(2)),
            ("/metrics/output_fps/mean", json!(12.0)),
        ],
    );
}

#[test]
fn no_full_fps_window_means_no_fps() {
    let inputs = vec![Input::Output {
        pts: 0,
        at_us: 100,
        keyframe: true,
        size_bytes: 1,
    }];
    check(
        &inputs,
        900_000,
        &[
            ("/metrics/output_fps", Value::Null),
            ("/metrics/fps_jitter", Value::Null),
            ("/metrics/frame_interval_jitter_ms", Value::Null),
            ("/metrics/frames_received", json!(1)),
        ],
    );
}

#[test]
fn unknown_and_duplicate_pts_are_counted_apart() {
    let inputs = vec![
        Input::Sent { pts: 0, at_us: 0 },
        Input::Sent {
            pts: 3000,
            at_us: 33_333,
        },
        Input::Output {
            pts: 0,
            at_us: 100_000,
            keyframe: true,
            size_bytes: 1,
        },
        // The same PTS again, later: a duplicate, its latency ignored.
        Input::Output {
            pts: 0,
            at_us: 900_000,
            keyframe: false,
            size_bytes: 1,
        },
        // Never sent.
        Input::Output {
            pts: 123_456,
            at_us: 950_000,
            keyframe: false,
            size_bytes: 1,
        },
        Input::Output {
            pts: 3000,
            at_us: 133_333,
            keyframe: false,
            size_bytes: 1,
        },
    ];
    check(
        &inputs,
        SECOND_US,
        &[
            ("/metrics/frames_received", json!(4)),
            ("/metrics/frames_unmatched", json!(1)),
            ("/metrics/frames_duplicate", json!(1)),
            ("/metrics/e2e_latency_ms/count", json!(2)),
            ("/metrics/e2e_latency_ms/max", json!(100.0)),
        ],
    );
}

#[test]
fn an_output_before_its_input_is_unmatched() {
    let inputs = vec![
        Input::Output {
            pts: 7,
            at_us: 1000,
            keyframe: false,
            size_bytes: 1,
        },
        Input::Sent {
            pts: 7,
            at_us: 2000,
        },
        Input::Output {
            pts: 8,
            at_us: 3000,
            keyframe: false,
            size_bytes: 1,
        },
        Input::Sent {
            pts: 8,
            at_us: 5000,
        },
    ];
    check(
        &inputs,
        SECOND_US,
        &[
            ("/metrics/frames_unmatched", json!(2)),
            ("/metrics/e2e_latency_ms", Value::Null),
            // The first output came before the first input: no startup time can be stated.
            ("/metrics/startup_ms", Value::Null),
        ],
    );
}

/// Output whose timestamps mostly name no input frame sent before it arrived (stamped ahead of
/// its input, or invented) cannot be matched honestly: the session is flagged and no PTS
/// latency is stated from the few frames that happened to match. An honest stream with a few
/// stray frames is not flagged, nor is a stream too short to judge.
#[test]
fn timestamps_that_mostly_match_nothing_sent_are_untrusted_without_decoding() {
    let fps = 30;
    let shifted = |shift_frames: u64, count: u64| {
        let mut inputs = inputs_at(fps, count + shift_frames, 0);
        // 100 ms of latency, each output stamped `shift_frames` ahead of its picture: the PTS
        // names an input that is sent only after the output arrived.
        for i in 0..count {
            let Input::Output { at_us, .. } = output_for(fps, i, 0, 100_000) else {
                unreachable!()
            };
            inputs.push(Input::Output {
                pts: (i + shift_frames) * PTS_HZ / fps,
                at_us,
                keyframe: false,
                size_bytes: 1,
            });
        }
        record(&by_time(inputs), 10 * SECOND_US)
    };
    let honest = shifted(0, 60);
    assert_eq!(honest.pointer("/metrics/pts_untrusted"), None);
    assert!(honest.pointer("/metrics/e2e_latency_ms/p50").is_some());

    // Stamped 10 frames (333 ms) ahead with 100 ms of latency: every output is ahead of its
    // input.
    let ahead = shifted(10, 60);
    assert_eq!(ahead.pointer("/metrics/pts_untrusted"), Some(&json!(true)));
    assert_eq!(ahead.pointer("/metrics/frames_unmatched"), Some(&json!(60)));
    assert_eq!(ahead["metrics"]["e2e_latency_ms"], Value::Null);

    // Too few frames to judge.
    let short = shifted(10, 9);
    assert_eq!(short.pointer("/metrics/pts_untrusted"), None);

    // A few strays among matched frames.
    let mut inputs = inputs_at(fps, 60, 0);
    inputs.extend((0..60).map(|i| output_for(fps, i, 0, 100_000)));
    inputs.extend((0..5).map(|i| Input::Output {
        pts: 1_000_000 + i,
        at_us: 3 * SECOND_US + i,
        keyframe: false,
        size_bytes: 1,
    }));
    let strays = record(&by_time(inputs), 10 * SECOND_US);
    assert_eq!(strays.pointer("/metrics/frames_unmatched"), Some(&json!(5)));
    assert_eq!(strays.pointer("/metrics/pts_untrusted"), None);
}

#[test]
fn a_resent_pts_answers_the_newer_send() {
    let inputs = vec![
        Input::Sent { pts: 0, at_us: 0 },
        Input::Output {
            pts: 0,
            at_us: 50_000,
            keyframe: true,
            size_bytes: 1,
        },
        // The encoder restarted its timestamps: PTS 0 is a new frame.
        Input::Sent {
            pts: 0,
            at_us: 1_000_000,
        },
        Input::Output {
            pts: 0,
            at_us: 1_080_000,
            keyframe: true,
            size_bytes: 1,
        },
    ];
    check(
        &inputs,
        2 * SECOND_US,
        &[
            ("/metrics/frames_duplicate", json!(0)),
            ("/metrics/e2e_latency_ms/count", json!(2)),
            ("/metrics/e2e_latency_ms/max", json!(80.0)),
            ("/metrics/e2e_latency_ms/min", json!(50.0)),
        ],
    );
}

#[test]
fn forgotten_inputs_are_unmatched_and_memory_stays_bounded() {
    let count = MAX_PENDING_FRAMES as u64 + 10;
    let mut recorder = SessionRecorder::new(MeasureConfig::default());
    for index in 0..count {
        recorder.handle_input_frame_sent(index, index * 1000);
    }
    assert_eq!(recorder.pending.by_pts.len(), MAX_PENDING_FRAMES);
    assert_eq!(recorder.pending.order.len(), MAX_PENDING_FRAMES);
    // The oldest frames were evicted; the newest are still matched.
    recorder.handle_output_frame(0, count * 1000, true, 1);
    recorder.handle_output_frame(count - 1, count * 1000 + 5000, true, 1);
    let (metrics, _) = recorder.finish(count * 1000 + SECOND_US);
    assert_eq!(metrics.frames_unmatched, 1);
    let latency = metrics.e2e_latency_ms.expect("one output matched");
    assert_eq!(latency.count, 1);
    assert_eq!(latency.max, 6.0);
}

#[test]
fn an_hour_at_thirty_fps_keeps_only_bounded_state() {
    let mut recorder = SessionRecorder::new(MeasureConfig::default());
    let frames = 3600 * 30;
    for index in 0..frames {
        let sent_us = index * SECOND_US / 30;
        recorder.handle_input_frame_sent(index * 3000, sent_us);
        recorder.handle_output_frame(index * 3000, sent_us + 300_000, index % 30 == 0, 2000);
    }
    let end_us = (frames - 1) * SECOND_US / 30 + 300_000;
    assert!(recorder.pending.order.len() <= MAX_PENDING_FRAMES);
    assert_eq!(recorder.fps_windows.counts.len(), 3600);
    let (metrics, _) = recorder.finish(end_us);
    let fps = metrics
        .output_fps
        .expect("an hour of output has full windows");
    assert_eq!(fps.windows, 3599);
    assert!((fps.mean - 30.0).abs() < 1e-6, "mean {}", fps.mean);
    let latency = metrics.e2e_latency_ms.expect("every output matched");
    assert_eq!(latency.count, frames);
    assert_eq!(latency.p99, 300.0);
    assert_eq!(metrics.stalls.count, 0);
}

#[test]
fn a_confirming_status_is_not_a_params_update_latency() {
    // ai-runner sets `last_params_hash` when an update is queued and reports status about
    // every 10 s: the time to the status echoing the hash is mostly the phase of that tick, so
    // the recorder keeps the hash the runner reports and measures no latency from it.
    let inputs = vec![
        Input::Event {
            document: status("ONLINE", 30.0, 12.0, "old"),
            at_us: 4 * SECOND_US,
        },
        Input::Event {
            document: status("ONLINE", 30.0, 12.0, "abc"),
            at_us: 12 * SECOND_US,
        },
    ];
    check(
        &inputs,
        30 * SECOND_US,
        &[
            ("/metrics/params_update_latency_ms", Value::Null),
            ("/runner/last_params_hash", json!("abc")),
            ("/runner/status_events", json!(2)),
        ],
    );
}

#[test]
fn malformed_events_are_counted_not_fatal() {
    let inputs = vec![
        Input::EventBytes {
            bytes: b"not json".to_vec(),
            at_us: 1,
        },
        Input::EventBytes {
            bytes: b"[1, 2, 3]".to_vec(),
            at_us: 2,
        },
        Input::Event {
            document: json!({"queue_event_type": "ai_stream_events"}),
            at_us: 3,
        },
        Input::Event {
            document: json!({"event": {"state": "ONLINE"}}),
            at_us: 4,
        },
        Input::Event {
            document: json!({"event": "status"}),
            at_us: 5,
        },
        Input::Event {
            document: json!({"event": {"type": 7}}),
            at_us: 6,
        },
        Input::EventBytes {
            bytes: serde_json::to_vec(&status("LOADING", 0.0, 0.0, "h"))
                .expect("a Value serializes"),
            at_us: 7,
        },
        // Wrong field types inside a valid envelope are ignored, not malformed.
        Input::Event {
            document: json!({"event": {"type": "status", "state": 3, "inference_status": {"fps": "fast"}}}),
            at_us: 8,
        },
    ];
    check(
        &inputs,
        SECOND_US,
        &[
            ("/runner/events_received", json!(8)),
            ("/runner/events_malformed", json!(6)),
            ("/runner/status_events", json!(2)),
            ("/runner/last_state", json!("LOADING")),
            ("/runner/output_fps", json!(0.0)),
        ],
    );
}

#[test]
fn runner_self_reports_are_collected() {
    let trace = |kind: &str| json!({"queue_event_type": "stream_trace", "event": {"type": kind, "timestamp": 1}});
    let mut inputs = vec![
        Input::Event {
            document: trace("runner_receive_stream_request"),
            at_us: 1,
        },
        Input::Event {
            document: status("LOADING", 0.0, 0.0, "h"),
            at_us: 2,
        },
        Input::Event {
            document: trace("runner_receive_first_ingest_segment"),
            at_us: 3,
        },
        Input::Event {
            document: trace("runner_receive_first_ingest_segment"),
            at_us: 4,
        },
        Input::Event {
            document: status("ONLINE", 29.5, 11.5, "h"),
            at_us: 5,
        },
        Input::Event {
            document: status("LOADING", 29.0, 11.0, "h"),
            at_us: 6,
        },
        Input::Event {
            document: json!({"queue_event_type": "ai_stream_events",
                "event": {"type": "restart", "restart_count": 2, "restart_time": 1}}),
            at_us: 7,
        },
        Input::Event {
            document: json!({"queue_event_type": "ai_stream_events", "event": {"type": "restart"}}),
            at_us: 8,
        },
        Input::Event {
            document: json!({"queue_event_type": "ai_stream_events", "event": {"type": "error"}}),
            at_us: 9,
        },
    ];
    let long_message = "é".repeat(1000);
    for index in 0..70u64 {
        let message = if index == 0 {
            long_message.clone()
        } else {
            format!("error {index}")
        };
        inputs.push(Input::Event {
            document: json!({"queue_event_type": "ai_stream_events",
                "event": {"type": "error", "message": message, "time": 1}}),
            at_us: 10 + index,
        });
    }
    let actual = record(&inputs, SECOND_US);
    let runner: RunnerReport =
        serde_json::from_value(actual["runner"].clone()).expect("the runner report round trips");
    assert_eq!(runner.status_events, 3);
    assert_eq!(runner.last_state.as_deref(), Some("LOADING"));
    assert_eq!(runner.states_seen, ["LOADING", "ONLINE"]);
    assert_eq!(runner.input_fps, Some(29.0));
    assert_eq!(runner.output_fps, Some(11.0));
    assert_eq!(runner.restart_count, Some(3));
    assert_eq!(
        runner.traces,
        [
            "runner_receive_stream_request",
            "runner_receive_first_ingest_segment"
        ]
    );
    assert_eq!(runner.error_events, 71);
    assert_eq!(
        runner.errors.len(),
        MeasureConfig::default().max_events_kept
    );
    assert_eq!(runner.errors[0], "(error event without a message)");
    // "é" is two bytes: the 512-byte bound keeps 256 whole characters.
    assert_eq!(runner.errors[1], "é".repeat(256));
    assert_eq!(runner.errors[2], "error 1");
    assert_eq!(runner.events_malformed, 0);
}

#[test]
fn no_output_at_all_leaves_output_metrics_empty() {
    let mut inputs = inputs_at(30, 301, 0);
    inputs.push(Input::SegmentSent {
        bytes: 125_000,
        at_us: SECOND_US,
    });
    let actual = record(&inputs, 10 * SECOND_US);
    let metrics: SessionMetrics =
        serde_json::from_value(actual["metrics"].clone()).expect("the metrics round trip");
    let expected = SessionMetrics {
        input_fps: Some(30.0),
        frames_sent: 301,
        segments_sent: 1,
        bytes_sent: 125_000,
        ..SessionMetrics::default()
    };
    assert_eq!(metrics, expected);
    assert_eq!(metrics.stalls, StallSummary::default());
}

#[test]
fn an_empty_session_measures_nothing() {
    check(
        &[],
        SECOND_US,
        &[
            ("/metrics/input_fps", Value::Null),
            ("/metrics/startup_ms", Value::Null),
            ("/metrics/stalls/count", json!(0)),
            ("/runner/last_state", Value::Null),
            ("/runner/events_received", json!(0)),
        ],
    );
}

#[test]
fn counters_resolution_and_media_errors_accumulate() {
    let errors = MediaErrors {
        cc_errors: 1,
        sync_losses: 2,
        pes_errors: 3,
        truncated_frames: 4,
    };
    let inputs = vec![
        Input::SegmentSent {
            bytes: 100,
            at_us: 1,
        },
        Input::SegmentSent {
            bytes: 200,
            at_us: 2,
        },
        Input::SegmentReceived {
            bytes: 50,
            at_us: 3,
        },
        Input::Resolution {
            width: 512,
            height: 512,
        },
        Input::Resolution {
            width: 1280,
            height: 720,
        },
        Input::MediaErrors(errors),
        Input::MediaErrors(errors),
    ];
    check(
        &inputs,
        SECOND_US,
        &[
            ("/metrics/segments_sent", json!(2)),
            ("/metrics/bytes_sent", json!(300)),
            ("/metrics/segments_received", json!(1)),
            ("/metrics/bytes_received", json!(50)),
            ("/metrics/output_width", json!(1280)),
            ("/metrics/output_height", json!(720)),
            (
                "/metrics/media_errors",
                json!({"cc_errors": 2, "sync_losses": 4, "pes_errors": 6, "truncated_frames": 8}),
            ),
        ],
    );
}

#[test]
fn out_of_order_arrivals_do_not_break_timing() {
    let inputs = vec![
        Input::Output {
            pts: 0,
            at_us: 1_000_000,
            keyframe: true,
            size_bytes: 1,
        },
        Input::Output {
            pts: 1,
            at_us: 900_000,
            keyframe: false,
            size_bytes: 1,
        },
        Input::Output {
            pts: 2,
            at_us: 1_040_000,
            keyframe: false,
            size_bytes: 1,
        },
    ];
    check(
        &inputs,
        2_000_000,
        &[
            ("/metrics/stalls/count", json!(1)),
            ("/metrics/stalls/longest_ms", json!(960.0)),
            ("/metrics/output_fps/windows", json!(1)),
            // Three frames from 1.0 s; output then stops for longer than a stall, so the span
            // runs to the end: 2 intervals over 1 s.
            ("/metrics/output_fps/mean", json!(2.0)),
        ],
    );
}

#[test]
fn accessors_follow_the_session() {
    let mut recorder = SessionRecorder::new(MeasureConfig::default());
    assert_eq!(recorder.first_output_at_us(), None);
    assert_eq!(recorder.last_event_at_us(), None);
    recorder.handle_output_frame(1, 500, true, 1);
    recorder.handle_output_frame(2, 800, false, 1);
    recorder.handle_event(&status("ERROR", 0.0, 0.0, "h"), 900);
    recorder.handle_event_bytes(b"{", 950);
    assert_eq!(recorder.first_output_at_us(), Some(500));
    assert_eq!(recorder.last_output_at_us(), Some(800));
    assert_eq!(recorder.last_event_at_us(), Some(950));
    assert_eq!(recorder.runner_state(), Some("ERROR"));
    assert_eq!(recorder.frames_received(), 2);
}

#[test]
fn zero_window_and_threshold_do_not_panic() {
    let mut recorder = SessionRecorder::new(MeasureConfig {
        stall_threshold_ms: 0,
        fps_window_ms: 0,
        max_events_kept: 0,
        ..MeasureConfig::default()
    });
    recorder.handle_output_frame(1, 0, true, 1);
    recorder.handle_output_frame(2, 2000, true, 1);
    recorder.handle_event(&status("ONLINE", 1.0, 1.0, "h"), 10);
    let (metrics, runner) = recorder.finish(u64::MAX);
    assert_eq!(metrics.stalls.count, 2);
    assert!(runner.states_seen.is_empty());
    let fps = metrics.output_fps.expect("1 ms windows are full");
    assert!(fps.mean.is_finite());
}

/// Seeded fuzzing of the events parser: random bytes and mutated valid documents must never
/// panic, and every document is counted exactly once.
#[test]
fn random_event_documents_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let valid =
        serde_json::to_vec(&status("ONLINE", 30.0, 12.0, "abc")).expect("a Value serializes");
    let mut recorder = SessionRecorder::new(MeasureConfig::default());
    let documents = 3000;
    for round in 0..documents {
        let mut bytes = if round % 3 == 0 {
            (0..rng.random_range(0..64))
                .map(|_| rng.random::<u8>())
                .collect()
        } else {
            valid.clone()
        };
        if !bytes.is_empty() {
            for _ in 0..rng.random_range(0..4) {
                let at = rng.random_range(0..bytes.len());
                match rng.random_range(0..3) {
                    0 => bytes[at] = rng.random(),
                    1 => bytes.truncate(at),
                    _ => bytes.insert(at, b"{}[]\",:0"[rng.random_range(0..8)]),
                }
                if bytes.is_empty() {
                    break;
                }
            }
        }
        recorder.handle_event_bytes(&bytes, round);
    }
    let (_, runner) = recorder.finish(documents);
    assert_eq!(u64::from(runner.events_received), documents);
    assert!(runner.events_malformed > 0);
    assert!(runner.status_events > 0);
    assert!(runner.events_malformed + runner.status_events <= runner.events_received);
}

#[test]
fn latency_beyond_the_histogram_bound_keeps_its_exact_maximum() {
    let two_hours_us = 2 * 3600 * SECOND_US;
    let inputs = vec![
        Input::Sent { pts: 1, at_us: 0 },
        Input::Sent { pts: 2, at_us: 1 },
        Input::Output {
            pts: 1,
            at_us: 100_000,
            keyframe: true,
            size_bytes: 1,
        },
        Input::Output {
            pts: 2,
            at_us: two_hours_us + 1,
            keyframe: false,
            size_bytes: 1,
        },
    ];
    check(
        &inputs,
        two_hours_us + 1,
        &[
            ("/metrics/e2e_latency_ms/count", json!(2)),
            ("/metrics/e2e_latency_ms/p50", json!(100.0)),
            ("/metrics/e2e_latency_ms/max", json!(7_200_000.0)),
            ("/metrics/e2e_latency_ms/mean", json!(3_600_050.0)),
        ],
    );
}

#[test]
fn rewritten_timestamps_take_latency_from_the_pictures_alone() {
    let mut recorder = SessionRecorder::new(MeasureConfig {
        timestamps_rewritten: true,
        ..MeasureConfig::default()
    });
    // 30 frames at 30 fps; the output carries other timestamps (a gateway's RTP clock) and
    // shows each input frame 150 ms after it went out.
    for k in 0..30u64 {
        let sent_us = k * 33_333;
        recorder.handle_input_frame_sent(k * 3000, sent_us);
        recorder.handle_input_frame_code(k * 3000, sent_us, k as u32, 0);
    }
    for k in 0..30u64 {
        let at_us = k * 33_333 + 150_000;
        let rtp = 1_000_000 + k * 3000;
        recorder.handle_output_frame(rtp, at_us, k == 0, 1000);
        recorder.handle_content_sample(rtp, at_us, Some(k as u32), None, 50_000);
    }
    let (metrics, _) = recorder.finish(29 * 33_333);
    let e2e = metrics.e2e_latency_ms.expect("latency by content");
    assert_eq!(e2e.count, 30);
    assert!((e2e.p50 - 150.0).abs() < 0.01, "{e2e:?}");
    // Timestamps are neither matched nor judged.
    assert_eq!(metrics.frames_unmatched, 0);
    assert!(!metrics.pts_untrusted);
    let check = metrics.content_check.expect("content check");
    assert_eq!((check.samples, check.disagreements), (30, 0));
}
