//! The session core against the simulator's own pipeline core, on simulated time.
//!
//! [`Net`] is the one harness: it plays the driver and the orchestrators. Each share gets a
//! `sim::pipeline::PipelineCore` from a profile; input frames reach it when the core says they
//! are written, its outputs come back as MPEG-TS bytes at their due time, its events as
//! documents, and a crash ends the share's channels as the simulator's deletion of them does.
//! Nothing sleeps: a 30-second session runs in milliseconds, and every timing is exact.

use std::collections::VecDeque;

use bytes::Bytes;
use lvt_media::ts::{MuxConfig, MuxFrame, TsMuxer};
use lvt_schema::{FailureClass, Outcome, SessionReport, TargetMode};
use serde_json::json;

use super::*;
use crate::gateway::observe::Observation;
use crate::gateway::select::{Candidate, GoLivepeerDefault};
use lvt_sim::pipeline::{InputFrame, PipelineConfig, PipelineCore, PipelineOutput};
use lvt_sim::profile::Profile;

const FPS: u32 = 30;
const SEGMENT_US: u64 = 1_000_000;
/// Wall clock of the simulated time zero.
const ORIGIN_UNIX_MS: i64 = 1_780_000_000_000;

/// How a candidate answers a start attempt.
#[derive(Clone)]
enum Orch {
    Serves(Profile),
    Busy,
}

/// One serving orchestrator as the harness runs it.
struct SimShare {
    pipeline: PipelineCore,
    muxer: TsMuxer,
    /// Scheduled outputs `(due_us, pts, keyframe, frame number shown)`, in due order.
    pending: VecDeque<(u64, u64, bool, u64)>,
    /// The input segment being written, if it was opened.
    segment: Option<u64>,
    crashed: bool,
    stopped: bool,
}

struct Net {
    core: SessionCore,
    now_us: u64,
    orchs: Vec<Orch>,
    shares: Vec<Option<SimShare>>,
    /// Inputs the harness delivers later `(at_us, input)`, in time order.
    later: VecDeque<(u64, Input)>,
    observations: Vec<Observation>,
    /// Control messages the orchestrators received `(share, message)`.
    control: Vec<(ShareId, String)>,
    finished: Option<Finished>,
    start_ms: u64,
    /// The plan's clip, for reading the frame number back from a checked picture.
    plan_clip: ClipTiming,
    /// Output frames the core asked to classify.
    classified: u32,
    /// Output frames the core handed over only to be kept.
    kept: u32,
    /// Hand-overs the core ended (decoder and kept frames let go).
    hand_overs_ended: u32,
    /// Decoders let go while frames stay kept.
    decoders_released: u32,
    /// The orchestrator restyles beyond the digits: its pictures keep the luminance marker and
    /// no readable frame number.
    restyled: bool,
    /// Whether the decoder answers the frames it is asked about (false: it is still busy).
    answer_looks: bool,
    /// Gateway mode: output goes to the core as access units with rewritten timestamps.
    gateway: bool,
    /// Gateway mode: keyframes the core asked about on their own.
    alone: u32,
}

fn template() -> SessionReport {
    SessionReport {
        orchestrator: Some(lvt_schema::OrchestratorRef {
            address: None,
            uri: "https://o0.test:8935".into(),
            cert_sha256: None,
            cert_trust: None,
            address_check: None,
        }),
        ..SessionReport::new(
            "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "noop",
            ORIGIN_UNIX_MS,
        )
    }
}

fn plan(duration_s: u64) -> SessionPlan {
    SessionPlan {
        clip: ClipTiming {
            segment_us: SEGMENT_US,
            fps: FPS,
            frames_per_segment: FPS,
            segments: 4,
        },
        duration_us: duration_s * 1_000_000,
        timeouts: SessionTimeouts::default(),
        params: json!({"prompt": "watercolor"}),
        params_update_offsets_us: vec![duration_s * 500_000],
        keepalive_interval_us: 10_000_000,
        content_check_every: 1,
        content_check_phase: 0,
        read_frame_numbers: true,
        watch_overlay: true,
    }
}

/// `plan` without the content check, whose looks the overlay tests would count too.
fn overlay_only(mut plan: SessionPlan) -> SessionPlan {
    plan.content_check_every = 0;
    plan
}

fn profile(f: impl FnOnce(&mut Profile)) -> Profile {
    let mut p = Profile::default();
    f(&mut p);
    p
}

/// An Annex B access unit: an IDR slice for keyframes, a non-IDR slice otherwise.
/// An access unit whose "picture" is the input frame number `shown`, as 8 bytes after the NAL
/// header: what the harness's stand-in for a decoder reads back ([`picture_number`]).
fn access_unit(keyframe: bool, shown: u64) -> Vec<u8> {
    let mut au = vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }];
    au.extend_from_slice(&shown.to_be_bytes());
    au.resize(200, 0x5a);
    au
}

/// Which driver the harness plays.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ModeKind {
    Gateway,
    Other,
}

/// Gateway mode: what the gateway adds to every output timestamp (RTP times start anywhere).
const REWRITE_OFFSET: u64 = 1_234_567;

/// What a loading overlay frame "shows" in an [`access_unit`]: no input frame.
const OVERLAY_SHOWN: u64 = u64::MAX;

/// What a decoder would see in an [`access_unit`]: the overlay is gray with no number and no
/// marker, the rest carry colour, their frame number (unless `restyled`) and the marker.
fn picture_look(picture: &[u8], clip: &ClipTiming, restyled: bool) -> PictureLook {
    let overlay = picture.get(5..13) == Some(&OVERLAY_SHOWN.to_be_bytes()[..]);
    let shown = (!overlay).then(|| picture_number(picture, clip)).flatten();
    PictureLook {
        colourless: overlay,
        code: shown.filter(|_| !restyled),
        beacon: shown.map(|frame| super::beacon_bright(frame, clip.frames_per_segment)),
        marker: shown.map(|frame| super::segment_marker(frame, clip.frames_per_segment)),
    }
}

/// The frame number an [`access_unit`] shows, as the clip's pictures show it (modulo the clip).
fn picture_number(picture: &[u8], clip: &ClipTiming) -> Option<u32> {
    let bytes: [u8; 8] = picture.get(5..13)?.try_into().ok()?;
    let frames = u64::from(clip.frames_per_segment) * u64::from(clip.segments);
    u32::try_from(u64::from_be_bytes(bytes) % frames).ok()
}

impl Net {
    fn direct(orch: Orch, plan: SessionPlan) -> Self {
        Self::new(Mode::Direct, vec![orch], plan)
    }

    fn network(orchs: Vec<Orch>, plan: SessionPlan) -> Self {
        let mode = Mode::Network {
            strategy: Box::new(GoLivepeerDefault::default()),
            swap: crate::gateway::swap::SwapConfig::default(),
            start: crate::gateway::select::StartLimits::default(),
        };
        Self::new(mode, orchs, plan)
    }

    /// Through a gateway: the one candidate stands for the gateway and its orchestrator.
    fn gateway(orch: Orch, plan: SessionPlan, every_frame: bool) -> Self {
        Self::new(Mode::Gateway { every_frame }, vec![orch], plan)
    }

    fn new(mode: Mode, orchs: Vec<Orch>, plan: SessionPlan) -> Self {
        let network = matches!(mode, Mode::Network { .. });
        let mode_kind = if matches!(mode, Mode::Gateway { .. }) {
            ModeKind::Gateway
        } else {
            ModeKind::Other
        };
        // Discovery order: earlier candidates answered faster.
        let candidates = (0..orchs.len())
            .map(|i| Candidate::new(format!("https://o{i}.test:8935"), 10 * i as u64 + 1))
            .collect();
        let mut template = template();
        if network {
            template.mode = TargetMode::Network;
            template.orchestrator = None;
        }
        if mode_kind == ModeKind::Gateway {
            template.mode = TargetMode::Gateway;
            template.orchestrator = None;
        }
        let plan_clip = plan.clip;
        let core = SessionCore::new(mode, plan, candidates, template, 0, ORIGIN_UNIX_MS);
        Self {
            plan_clip,
            classified: 0,
            kept: 0,
            hand_overs_ended: 0,
            decoders_released: 0,
            restyled: false,
            answer_looks: true,
            gateway: matches!(mode_kind, ModeKind::Gateway),
            alone: 0,
            core,
            now_us: 0,
            orchs,
            shares: Vec::new(),
            later: VecDeque::new(),
            observations: Vec::new(),
            control: Vec::new(),
            finished: None,
            start_ms: 5,
        }
    }

    fn deliver_later(&mut self, at_us: u64, input: Input) {
        let pos = self.later.partition_point(|(t, _)| *t <= at_us);
        self.later.insert(pos, (at_us, input));
    }

    fn input(&mut self, input: Input) {
        self.core.handle_input(input, self.now_us);
    }

    /// Runs the session to its end, with a bound on simulated time.
    fn run(mut self) -> (Finished, Self) {
        let limit_us = 600_000_000;
        loop {
            let deadline = self.handle_outputs();
            if let Some(finished) = self.finished.take() {
                return (finished, self);
            }
            let next = self.next_event_us().min(deadline);
            assert!(next < limit_us, "the session never ended");
            self.now_us = self.now_us.max(next);
            if !self.deliver_due() {
                self.input(Input::Timeout);
            }
        }
    }

    /// Carries out the core's outputs; returns its next deadline.
    fn handle_outputs(&mut self) -> u64 {
        loop {
            match self.core.poll_output() {
                Output::Timeout(t) => return t,
                Output::Start { candidate, .. } => {
                    let info = StartInfo {
                        orchestrator: Some(lvt_schema::OrchestratorRef {
                            address: Some(format!("0x{candidate:040x}")),
                            uri: format!("https://o{candidate}.test:8935"),
                            cert_sha256: None,
                            cert_trust: None,
                            address_check: None,
                        }),
                        get_orchestrator_ms: Some(2.0),
                        job_start_ms: Some(3.0),
                        gpu: None,
                    };
                    let result = match &self.orchs[candidate] {
                        Orch::Serves(_) => Ok(()),
                        Orch::Busy => Err(StartFailure::Job(JobRefusal::Refused {
                            status: 503,
                            reason: RefusalReason::Busy,
                            detail: "job start answered HTTP 503: insufficient capacity".into(),
                        })),
                    };
                    let at = self.now_us + self.start_ms * 1000;
                    self.deliver_later(
                        at,
                        Input::StartResult {
                            candidate,
                            info,
                            result,
                        },
                    );
                }
                Output::OpenShare {
                    share, candidate, ..
                } => {
                    let Orch::Serves(p) = &self.orchs[candidate] else {
                        panic!("a busy candidate was opened");
                    };
                    let config = PipelineConfig::from_profile(p, "noop", share as u64, 2_000_000);
                    let unix = ORIGIN_UNIX_MS + (self.now_us / 1000) as i64;
                    let pipeline =
                        PipelineCore::new(config, self.now_us, unix, json!({"prompt": "x"}));
                    if self.shares.len() <= share {
                        self.shares.resize_with(share + 1, || None);
                    }
                    self.shares[share] = Some(SimShare {
                        pipeline,
                        muxer: TsMuxer::new(MuxConfig::default()),
                        pending: VecDeque::new(),
                        segment: None,
                        crashed: false,
                        stopped: false,
                    });
                }
                Output::BeginSegment { share, seq } => {
                    let Some(share) = share else { continue };
                    let now = self.now_us;
                    let s = self.share(share);
                    if s.crashed {
                        s.segment = None;
                        let result = Err(PublishError {
                            gone: true,
                            detail: "404".into(),
                        });
                        self.input(Input::SegmentDone { share, result });
                    } else {
                        s.pipeline.handle_input_segment(now);
                        s.segment = Some(seq);
                    }
                }
                Output::WriteFrame { share, index } => {
                    let now = self.now_us;
                    let s = self.share(share);
                    let Some(seq) = s.segment else { continue };
                    let k = seq * u64::from(FPS) + u64::from(index);
                    let pts = k * 90_000 / u64::from(FPS);
                    let keyframe = index == 0;
                    s.pipeline.handle_timeout(now);
                    let decision = s.pipeline.handle_input_frame(
                        InputFrame {
                            pts,
                            keyframe,
                            payload: k,
                        },
                        now,
                    );
                    if let Some(out) = decision.into_output() {
                        let shown = if out.overlay {
                            OVERLAY_SHOWN
                        } else {
                            out.payload
                        };
                        s.pending
                            .push_back((out.due_us, out.pts, out.keyframe, shown));
                    }
                    self.input(Input::FrameSent {
                        share,
                        pts,
                        at_us: now,
                    });
                }
                Output::EndSegment { share } => {
                    let s = self.share(share);
                    if s.segment.take().is_some() {
                        let at = self.now_us + 1_000;
                        self.deliver_later(at, Input::SegmentWritten { share, bytes: 1 });
                        self.deliver_later(
                            at,
                            Input::SegmentDone {
                                share,
                                result: Ok(()),
                            },
                        );
                    }
                }
                Output::Control { share, message, .. } => {
                    let now = self.now_us;
                    let text = String::from_utf8(message.to_vec()).unwrap();
                    let s = self.share(share);
                    if let Ok(value) = serde_json::from_str(&text) {
                        s.pipeline.handle_control(value, now);
                    }
                    self.control.push((share, text));
                }
                Output::LeaveShare { .. } => {}
                Output::StopShare { share } => {
                    let s = self.share(share);
                    s.stopped = true;
                    s.pending.clear();
                }
                Output::Observe(o) => self.observations.push(o),
                Output::ClassifyFrame {
                    share,
                    pts,
                    picture,
                    look: true,
                    ..
                } => {
                    self.classified += 1;
                    if self.answer_looks {
                        let look = Some(picture_look(&picture, &self.plan_clip, self.restyled));
                        self.input(Input::FrameLook { share, pts, look });
                    }
                }
                Output::ClassifyFrame { look: false, .. } => self.kept += 1,
                Output::LookAlone {
                    share,
                    pts,
                    picture,
                } => {
                    self.alone += 1;
                    if self.answer_looks {
                        let look = Some(picture_look(&picture, &self.plan_clip, self.restyled));
                        self.input(Input::FrameLook { share, pts, look });
                    }
                }
                Output::ClassifyEnd {
                    keep_frames: false, ..
                } => self.hand_overs_ended += 1,
                Output::ClassifyEnd {
                    keep_frames: true, ..
                } => self.decoders_released += 1,
                Output::Finished(f) => {
                    self.finished = Some(*f);
                    return u64::MAX;
                }
            }
        }
    }

    fn share(&mut self, share: ShareId) -> &mut SimShare {
        self.shares[share].as_mut().expect("an opened share")
    }

    fn next_event_us(&self) -> u64 {
        let mut next = self.later.front().map_or(u64::MAX, |(t, _)| *t);
        for s in self.shares.iter().flatten().filter(|s| !s.stopped) {
            if let Some((due, _, _, _)) = s.pending.front() {
                next = next.min(*due);
            }
            if let Some(t) = s.pipeline.poll_timeout() {
                next = next.min(t);
            }
        }
        next
    }

    /// Delivers everything due by now; false when nothing was.
    fn deliver_due(&mut self) -> bool {
        let now = self.now_us;
        let mut any = false;
        while self.later.front().is_some_and(|(t, _)| *t <= now) {
            let (_, input) = self.later.pop_front().expect("checked");
            self.input(input);
            any = true;
        }
        for share in 0..self.shares.len() {
            let Some(s) = self.shares[share].as_mut() else {
                continue;
            };
            if s.stopped {
                continue;
            }
            s.pipeline.handle_timeout(now);
            let mut inputs = Vec::new();
            while let Some(out) = s.pipeline.poll_output() {
                match out {
                    PipelineOutput::Event(doc) => inputs.push(Input::Event {
                        share,
                        doc: Bytes::from(doc.to_json()),
                        at_us: now,
                    }),
                    PipelineOutput::Crash => {
                        // The simulator deletes the session's channels.
                        s.crashed = true;
                        s.pending.clear();
                        inputs.push(Input::OutputEnd {
                            share,
                            end: ChannelEnd::Ended,
                        });
                        inputs.push(Input::EventsEnd {
                            share,
                            end: ChannelEnd::Ended,
                        });
                    }
                }
            }
            while s.pending.front().is_some_and(|(due, _, _, _)| *due <= now) {
                let (due, pts, keyframe, shown) = s.pending.pop_front().expect("checked");
                let au = access_unit(keyframe, shown);
                if self.gateway {
                    s.pipeline.handle_output_written(due);
                    inputs.push(Input::OutputFrame {
                        share,
                        pts: pts + REWRITE_OFFSET,
                        at_us: due,
                        data: Bytes::from(au),
                    });
                    continue;
                }
                let mut ts = Vec::new();
                s.muxer.mux_frame(
                    &MuxFrame {
                        pts,
                        dts: None,
                        keyframe,
                        data: &au,
                    },
                    &mut ts,
                );
                s.pipeline.handle_output_written(due);
                inputs.push(Input::OutputBytes {
                    share,
                    bytes: Bytes::from(ts),
                    at_us: due,
                });
                inputs.push(Input::OutputSegmentEnd { share });
            }
            any |= !inputs.is_empty();
            for input in inputs {
                self.input(input);
            }
        }
        any
    }
}

#[test]
fn a_direct_session_measures_the_injected_latency_exactly() {
    let orch = Orch::Serves(profile(|p| p.latency_ms = 80));
    let (f, net) = Net::direct(orch, plan(10)).run();
    let r = f.report;
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.failure);
    assert!(!f.interrupted);
    let e2e = r.metrics.e2e_latency_ms.expect("e2e measured");
    assert!((e2e.p50 - 80.0).abs() < 0.01, "p50 {}", e2e.p50);
    assert!((e2e.max - 80.0).abs() < 0.01, "max {}", e2e.max);
    // Ten 1-second segments of 30 frames, every one of them back.
    assert_eq!(r.metrics.frames_received, 300);
    assert_eq!(r.metrics.frames_unmatched, 0);
    let fps = r.metrics.output_fps.expect("fps");
    assert!((fps.mean - 30.0).abs() < 0.5, "fps {}", fps.mean);
    assert_eq!(r.metrics.stalls.count, 0);
    // The start's identity and timings are the record's.
    let o = r.orchestrator.expect("orchestrator");
    assert_eq!(o.address.as_deref(), Some(&*format!("0x{:040x}", 0)));
    assert_eq!(r.metrics.get_orchestrator_ms, Some(2.0));
    // One params update halfway, and keepalives every 10 s (none fits in 10 s of publishing
    // before the end).
    let updates: Vec<_> = net
        .control
        .iter()
        .filter(|(_, m)| m.contains("updated"))
        .collect();
    assert_eq!(updates.len(), 1, "{:?}", net.control);
    // The drain ended when the last frame's output came back, 80 ms after it was sent.
    let ended_ms = r.ended_at_unix_ms - ORIGIN_UNIX_MS;
    assert!(
        (10_000..10_200).contains(&ended_ms),
        "ended at {ended_ms} ms"
    );
}

#[test]
fn the_content_check_catches_shifted_timestamps_and_keeps_the_true_latency() {
    let session = |pts_shift_ms: u64| {
        let orch = Orch::Serves(profile(|p| {
            p.latency_ms = 200;
            p.pts_shift_ms = pts_shift_ms;
        }));
        Net::direct(orch, plan(10)).run().0.report
    };
    // Honest: every checked picture (the first frame past each second's step of the marker)
    // is the frame its PTS names, read by its number.
    let honest = session(0);
    let check = honest.metrics.content_check.expect("steps checked");
    assert_eq!(
        (
            check.samples,
            check.unreadable,
            check.disagreements,
            check.by_luminance
        ),
        (9, 0, 0, 0)
    );
    assert_eq!(check.latency_p50_ms, Some(200.0));
    assert!(!honest.metrics.pts_untrusted);

    // Stamped 100 ms ahead of the frame shown: PTS matching alone would say 100 ms.
    let shifted = session(100);
    let check = shifted.metrics.content_check.expect("steps checked");
    assert_eq!(check.samples, 9);
    assert_eq!(check.disagreements, 9, "{check:?}");
    assert!(shifted.metrics.pts_untrusted);
    let e2e = shifted.metrics.e2e_latency_ms.expect("latency by content");
    assert_eq!(e2e.count, 9);
    assert!((e2e.p50 - 200.0).abs() < 0.01, "p50 {}", e2e.p50);

    // A shift that is not a whole number of frames names no frame that was sent.
    let unaligned = session(50);
    assert!(unaligned.metrics.pts_untrusted);
    let e2e = unaligned
        .metrics
        .e2e_latency_ms
        .expect("latency by content");
    assert!((e2e.p50 - 200.0).abs() < 0.01, "p50 {}", e2e.p50);
}

/// Restyled beyond the digits, the pictures keep the luminance marker: the check samples the
/// first output frame past each step by its PTS, and with shifted timestamps it looks at the
/// frames after it until one shows the step. Its arrival gives the true latency.
#[test]
fn the_luminance_step_catches_shifted_timestamps_when_no_digit_survives() {
    let session = |pts_shift_ms: u64, fps: u32| {
        let orch = Orch::Serves(profile(|p| {
            p.latency_ms = 200;
            p.pts_shift_ms = pts_shift_ms;
            p.fps = Some(fps);
        }));
        let mut net = Net::direct(orch, plan(10));
        net.restyled = true;
        net.run().0.report
    };
    // Honest: each sampled picture already shows the step.
    let honest = session(0, 30);
    let check = honest.metrics.content_check.expect("steps checked");
    assert_eq!(
        (
            check.samples,
            check.unreadable,
            check.by_luminance,
            check.disagreements
        ),
        (9, 0, 9, 0),
        "a step each second after the first"
    );
    assert_eq!(check.latency_p50_ms, Some(200.0));
    assert!(!honest.metrics.pts_untrusted);

    // Stamped 100 ms ahead: the frame stamped at a step still shows the frame 3 before it.
    let shifted = session(100, 30);
    let check = shifted.metrics.content_check.expect("steps checked");
    assert_eq!(
        (check.by_luminance, check.disagreements),
        (9, 9),
        "{check:?}"
    );
    assert!(shifted.metrics.pts_untrusted);
    let e2e = shifted.metrics.e2e_latency_ms.expect("latency by content");
    assert!((e2e.p50 - 200.0).abs() < 0.01, "p50 {}", e2e.p50);

    // A runner at 12 fps skips frames: the step frame itself may never come out. The honest
    // one agrees; the latency by content is at most one output interval (83 ms) long.
    let decimated = session(0, 12);
    let check = decimated.metrics.content_check.expect("steps checked");
    assert_eq!(check.disagreements, 0, "{check:?}");
    assert!(!decimated.metrics.pts_untrusted);
    let p50 = check.latency_p50_ms.expect("latency by content");
    assert!((200.0..=200.0 + 1000.0 / 12.0).contains(&p50), "p50 {p50}");
}

/// A restyled runner that loads for 2.5 s shows its gray overlay at the first steps: those
/// checks give no evidence (the overlay shows neither state of the marker), and the runner is
/// not flagged. (The simulator resumes output at a keyframe, which is a step, so a check here
/// never runs from the overlay into processed output of the same run; `session::steps` tests
/// that a picture showing neither state ends a check.)
#[test]
fn the_luminance_check_takes_no_evidence_from_the_loading_overlay() {
    let orch = Orch::Serves(profile(|p| {
        p.startup_ms = 2_500;
        p.latency_ms = 100;
    }));
    let mut no_update = plan(8);
    no_update.params_update_offsets_us.clear();
    let mut net = Net::direct(orch, no_update);
    net.restyled = true;
    let r = net.run().0.report;
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.failure);
    let check = r.metrics.content_check.expect("steps checked");
    assert_eq!(check.disagreements, 0, "{check:?}");
    assert!(check.unreadable >= 2, "the steps at 1 and 2 s: {check:?}");
    assert!(check.by_luminance >= 4, "{check:?}");
    assert_eq!(check.latency_p50_ms, Some(100.0));
    assert!(!r.metrics.pts_untrusted);
}

/// The content check costs little between checks: frames are handed over from two steps
/// before each check to its end, and the driver's decoder goes after each.
#[test]
fn the_content_check_hands_over_frames_only_around_its_checks() {
    let orch = Orch::Serves(profile(|p| p.latency_ms = 100));
    let mut sparse = plan(30);
    sparse.content_check_every = 10;
    sparse.watch_overlay = false;
    let (f, net) = Net::direct(orch, sparse).run();
    let check = f.report.metrics.content_check.expect("steps checked");
    assert_eq!((check.samples, check.disagreements), (3, 0), "{check:?}");
    // The steps at 1, 11 and 21 s are checked, each at its keyframe.
    assert_eq!(net.classified, 3);
    assert_eq!(net.hand_overs_ended, 3);
    // The first second, 2 s before each later check, and the last second (before a check at
    // 31 s the session does not reach): 6 s of the 30 s at 30 fps.
    assert_eq!(net.kept, 6 * 30, "frames handed over only to be kept");
}

/// A runner still loading when the session ends sent only overlay frames: no AI output, so
/// the session fails (before, the overlay frames made it pass).
#[test]
fn a_runner_that_only_loaded_fails_for_want_of_output() {
    let orch = Orch::Serves(profile(|p| {
        p.startup_ms = 60_000;
        p.latency_ms = 40;
    }));
    let mut short = plan(4);
    short.params_update_offsets_us.clear();
    let r = Net::direct(orch, short).run().0.report;
    assert_eq!(r.outcome, Outcome::Failed);
    let failure = r.failure.expect("a failure");
    assert_eq!(failure.class, FailureClass::OutputTimeout, "{failure:?}");
    assert!(failure.detail.contains("loading overlay"), "{failure:?}");
    assert_eq!(r.metrics.frames_received, 0);
    assert!(r.metrics.loading_overlay.expect("overlay").frames >= 100);
}

/// A runner answering with loading overlay frames for its first 500 ms: startup is the first
/// *processed* frame (the keyframe at 1 s, 40 ms late), the overlay is counted apart and in
/// nothing else, and only the frames up to the first processed one are decoded. Without the
/// watch (what lvt did before), the first overlay frame would pass for output at 0 ms.
#[test]
fn loading_overlay_frames_are_not_output_and_startup_is_the_first_processed_frame() {
    let orch = || {
        Orch::Serves(profile(|p| {
            p.startup_ms = 500;
            p.latency_ms = 40;
        }))
    };
    // No params update: its watch would decode frames too.
    let no_update = || {
        let mut p = overlay_only(plan(6));
        p.params_update_offsets_us.clear();
        p
    };
    let (f, net) = Net::direct(orch(), no_update()).run();
    let r = f.report;
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.failure);
    let m = &r.metrics;
    assert_eq!(m.startup_ms, Some(1_040.0));
    let overlay = m.loading_overlay.expect("overlay seen");
    // Input frames arriving in the first 500 ms: 0, 33.3, ..., 466.7 ms.
    assert_eq!(overlay.frames, 15);
    assert_eq!((overlay.first_ms, overlay.last_ms), (0.0, 466.666));
    let e2e = m.e2e_latency_ms.expect("latency");
    assert_eq!(
        (e2e.min, e2e.max),
        (40.0, 40.0),
        "no overlay frame in the latency"
    );
    assert_eq!(m.frames_received, 150, "5 s of processed frames");
    assert_eq!(
        m.stalls.count, 0,
        "the overlay-to-output gap precedes the first output"
    );
    assert_eq!(
        net.classified, 16,
        "the overlay and the first processed frame"
    );

    // Without the watch the overlay passes for output.
    let mut blind = no_update();
    blind.watch_overlay = false;
    let (f, net) = Net::direct(orch(), blind).run();
    let m = f.report.metrics;
    assert_eq!(m.startup_ms, Some(0.0));
    assert_eq!(m.loading_overlay, None);
    assert_eq!(net.classified, 0);
}

/// A params update that makes the runner reload: its overlay frames are counted apart, the
/// processed output's gap is a stall, and classification ends with the reload.
#[test]
fn a_reload_after_an_update_shows_as_overlay_and_a_stall_of_processed_output() {
    let orch = Orch::Serves(profile(|p| {
        p.reload_ms = 2_000;
        p.latency_ms = 40;
    }));
    // One update at 5 s of a 10 s session.
    let (f, net) = Net::direct(orch, overlay_only(plan(10))).run();
    let r = f.report;
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.failure);
    let m = &r.metrics;
    assert_eq!(m.startup_ms, Some(40.0));
    let overlay = m.loading_overlay.expect("the reload's overlay");
    // The frames arriving in the 2 s of the reload; the frame written at the update's instant
    // reached the runner before it.
    assert_eq!(overlay.frames, 59);
    assert!(
        (5_000.0..5_100.0).contains(&overlay.first_ms),
        "first overlay {}",
        overlay.first_ms
    );
    assert_eq!(m.stalls.count, 1, "{:?}", m.stalls);
    // From the last processed frame before the update to the keyframe after the reload (7 s).
    assert!(
        (2_000.0..=2_100.0).contains(&m.stalls.longest_ms),
        "{:?}",
        m.stalls
    );
    let e2e = m.e2e_latency_ms.expect("latency");
    assert_eq!(e2e.max, 40.0);
    // Decoded: the start (one frame), the overlay (early: it skips the 40 ms) and the first
    // processed frame after it; the frames around the update arriving on time only kept.
    assert_eq!(net.classified, 1 + 59 + 1);
    assert!(
        net.kept >= 60,
        "{} kept from 2 s before the update",
        net.kept
    );

    // The same update without a reload: nothing arrives early, nothing is decoded.
    let orch = Orch::Serves(profile(|p| p.latency_ms = 40));
    let (f, net) = Net::direct(orch, overlay_only(plan(10))).run();
    assert_eq!(f.report.metrics.loading_overlay, None);
    assert_eq!(net.classified, 1, "the start's first frame only");
    assert!(net.kept >= 120, "{} kept 2 s before to 2 s after", net.kept);
}

/// Timestamps moved further ahead than the latency name inputs not sent yet when the output
/// arrives: without decoding a picture the session is flagged and states no PTS latency.
#[test]
fn timestamps_ahead_of_their_inputs_are_untrusted_without_the_content_check() {
    let orch = Orch::Serves(profile(|p| {
        p.latency_ms = 100;
        p.pts_shift_ms = 300;
    }));
    let mut blind = plan(6);
    blind.content_check_every = 0;
    let r = Net::direct(orch, blind).run().0.report;
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.failure);
    assert!(r.metrics.pts_untrusted);
    assert_eq!(r.metrics.content_check, None);
    assert_eq!(r.metrics.e2e_latency_ms, None);
    assert_eq!(r.metrics.frames_unmatched, r.metrics.frames_received);
}

#[test]
fn a_stall_is_one_stall_of_its_length() {
    let orch = Orch::Serves(profile(|p| {
        p.stall_at_s = Some(3.0);
        p.stall_s = 2.0;
    }));
    let (f, _) = Net::direct(orch, plan(8)).run();
    let r = f.report;
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.failure);
    assert_eq!(r.metrics.stalls.count, 1, "{:?}", r.metrics.stalls);
    let total = r.metrics.stalls.total_ms;
    // Output resumes at the next keyframe after the window: 2 s plus up to one segment.
    assert!((1_900.0..3_100.0).contains(&total), "stall {total} ms");
}

#[test]
fn a_crash_loses_the_input_channel() {
    let orch = Orch::Serves(profile(|p| p.crash_after_s = Some(4.0)));
    let (f, _) = Net::direct(orch, plan(10)).run();
    let r = f.report;
    assert_eq!(r.outcome, Outcome::Failed);
    let failure = r.failure.expect("failure");
    assert_eq!(
        failure.class,
        FailureClass::PublishLost,
        "{}",
        failure.detail
    );
    // The next segment after the crash found the channel gone.
    let ended_ms = r.ended_at_unix_ms - ORIGIN_UNIX_MS;
    assert!((4_000..5_100).contains(&ended_ms), "ended at {ended_ms} ms");
}

#[test]
fn no_output_is_an_output_timeout_exactly_at_its_deadline() {
    // A model that never finishes loading: events come, frames never do.
    let orch = Orch::Serves(profile(|p| {
        p.startup_ms = 3_600_000;
        p.loading_overlay = false;
    }));
    let (f, _) = Net::direct(orch, plan(30)).run();
    let r = f.report;
    assert_eq!(r.outcome, Outcome::Failed);
    let failure = r.failure.expect("failure");
    assert_eq!(failure.class, FailureClass::OutputTimeout);
    assert_eq!(
        failure.detail,
        "no output frame within 20s of the first input"
    );
    // The first frame went out 5 ms in (the start), so the timeout fired at 20.005 s.
    assert_eq!(r.ended_at_unix_ms - ORIGIN_UNIX_MS, 20_005);

    // The same model showing its loading overlay the whole time: overlay frames are no output
    // either, and the failure says what came instead. Classifying stops after its bound.
    let orch = Orch::Serves(profile(|p| p.startup_ms = 3_600_000));
    let (f, net) = Net::direct(orch, plan(30)).run();
    let r = f.report;
    let failure = r.failure.expect("failure");
    assert_eq!(failure.class, FailureClass::OutputTimeout);
    assert_eq!(
        failure.detail,
        "no output frame within 20s of the first input (601 loading overlay frames: the \
         pipeline was still loading)"
    );
    assert_eq!(r.ended_at_unix_ms - ORIGIN_UNIX_MS, 20_005);
    // One every 33.3 ms from 5 ms to 20.005 s, both ends included.
    let overlay = r.metrics.loading_overlay.expect("overlay counted");
    assert_eq!(overlay.frames, 601);
    assert_eq!((overlay.first_ms, overlay.last_ms), (0.0, 20_000.0));
    assert_eq!(r.metrics.frames_received, 0);
    assert_eq!(r.metrics.startup_ms, None);
    assert_eq!(net.classified, 601);
}

#[test]
fn silent_events_are_an_events_timeout() {
    // Output flows, but the runner never publishes a status after the first ones: a status
    // interval longer than the session stands for a runner that stopped reporting.
    let orch = Orch::Serves(Profile::default());
    let mut plan = plan(40);
    plan.timeouts.events_us = 5_000_000;
    let mut net = Net::direct(orch, plan);
    // Swallow every event: the harness's runner publishes none.
    net.start_ms = 5;
    let (f, _) = run_without_events(net);
    let r = f.report;
    let failure = r.failure.expect("failure");
    assert_eq!(failure.class, FailureClass::EventsTimeout);
    assert_eq!(failure.detail, "no event for longer than 5s");
}

/// Runs `net` with every event document dropped before it reaches the core.
fn run_without_events(mut net: Net) -> (Finished, Net) {
    loop {
        let deadline = net.handle_outputs();
        if let Some(f) = net.finished.take() {
            return (f, net);
        }
        let next = net.next_event_us().min(deadline);
        assert!(next < 600_000_000, "the session never ended");
        net.now_us = net.now_us.max(next);
        for s in net.shares.iter_mut().flatten() {
            s.pipeline.handle_timeout(net.now_us);
            while s.pipeline.poll_output().is_some() {}
        }
        if !net.deliver_due() {
            net.input(Input::Timeout);
        }
    }
}

#[test]
fn a_busy_orchestrator_is_unscored_not_failed() {
    let (f, net) = Net::direct(Orch::Busy, plan(10)).run();
    let r = f.report;
    assert_eq!(r.outcome, Outcome::UnscoredBusy);
    assert_eq!(r.failure.expect("failure").class, FailureClass::Capacity);
    assert!(net.shares.is_empty(), "no channel was opened");
}

/// A session cut while its runner loads, with the decoder yet to answer for the frames it was
/// asked about: those frames prove nothing (they are most likely the loading overlay), so the
/// session has no output rather than passing on them.
#[test]
fn frames_unread_when_a_loading_session_is_cut_are_not_output() {
    let loading = || {
        Orch::Serves(profile(|p| {
            p.startup_ms = 10_000;
            p.latency_ms = 40;
        }))
    };
    let cut_at = |mut net: Net, at_us: u64| {
        while net.now_us < at_us {
            let deadline = net.handle_outputs();
            net.now_us = net.next_event_us().min(deadline);
            if !net.deliver_due() {
                net.input(Input::Timeout);
            }
        }
        net.input(Input::Cancel);
        net.run()
    };
    let mut net = Net::direct(loading(), overlay_only(plan(30)));
    net.answer_looks = false;
    let (f, net) = cut_at(net, 1_000_000);
    assert!(f.interrupted);
    assert!(net.classified > 20, "{} frames asked about", net.classified);
    let r = f.report;
    assert_eq!(r.outcome, Outcome::Failed, "{:?}", r.failure);
    assert_eq!(r.metrics.frames_received, 0);
    assert_eq!(r.failure.unwrap().class, FailureClass::OutputTimeout);

    // Answered, the same frames are the overlay.
    let (f, _) = cut_at(Net::direct(loading(), overlay_only(plan(30))), 1_000_000);
    let r = f.report;
    assert_eq!(r.outcome, Outcome::Failed, "{:?}", r.failure);
    assert_eq!(r.metrics.frames_received, 0);
    assert!(r.metrics.loading_overlay.unwrap().frames > 20);
}

#[test]
fn a_cancel_ends_the_session_as_interrupted_at_once() {
    let orch = Orch::Serves(Profile::default());
    let mut net = Net::direct(orch, plan(30));
    // Run five seconds, then cancel.
    while net.now_us < 5_000_000 {
        let deadline = net.handle_outputs();
        net.now_us = net.next_event_us().min(deadline);
        if !net.deliver_due() {
            net.input(Input::Timeout);
        }
    }
    net.input(Input::Cancel);
    let (f, net) = net.run();
    assert!(f.interrupted);
    let r = f.report;
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.failure);
    let ended_ms = r.ended_at_unix_ms - ORIGIN_UNIX_MS;
    assert!((5_000..5_100).contains(&ended_ms), "ended at {ended_ms} ms");
    assert!(
        net.shares.iter().flatten().all(|s| s.stopped),
        "every share is stopped"
    );
}

#[test]
fn a_network_crash_swaps_once_and_attributes_each_frame() {
    let orchs = vec![
        Orch::Serves(profile(|p| p.crash_after_s = Some(10.0))),
        Orch::Serves(profile(|p| p.latency_ms = 40)),
        Orch::Serves(Profile::default()),
    ];
    let (f, net) = Net::network(orchs, plan(14)).run();
    let r = f.report;
    assert_eq!(r.mode, TargetMode::Network);
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.failure);
    assert_eq!(r.metrics.swaps.len(), 1, "{:?}", r.metrics.swaps);
    let swap = &r.metrics.swaps[0];
    assert_eq!(swap.from, "https://o0.test:8935");
    assert_eq!(swap.to, "https://o1.test:8935");
    // The crash at 10 s ends the output channel: the swap is immediate, the new orchestrator
    // starts in 5 ms and its first frame comes 40 ms after the first frame it is sent.
    let freeze = swap.freeze_ms.expect("freeze measured");
    assert!((40.0..1_100.0).contains(&freeze), "freeze {freeze} ms");
    assert_eq!(r.served_by.len(), 2);
    let (first, second) = (&r.served_by[0], &r.served_by[1]);
    assert_eq!(first.ended_by.as_deref(), Some(swap.cause.as_str()));
    assert!(first.failure.is_some());
    assert_eq!(second.ended_by, None);
    assert_eq!(
        first.frames_received + second.frames_received,
        r.metrics.frames_received
    );
    assert!(
        (295..=301).contains(&first.frames_received),
        "{}",
        first.frames_received
    );
    let e2e_first = first.e2e_latency_ms.as_ref().expect("first e2e");
    let e2e_second = second.e2e_latency_ms.as_ref().expect("second e2e");
    assert!(e2e_first.p50 < 0.01, "first p50 {}", e2e_first.p50);
    assert!(
        (e2e_second.p50 - 40.0).abs() < 0.01,
        "second p50 {}",
        e2e_second.p50
    );
    // PTS continued across the swap.
    assert_eq!(r.metrics.frames_unmatched, 0);
    assert_eq!(
        r.orchestrator.as_ref().map(|o| o.uri.as_str()),
        Some("https://o1.test:8935")
    );
    assert!(first.to_unix_ms <= second.from_unix_ms);
    let swaps: Vec<_> = net
        .observations
        .iter()
        .filter_map(|o| match o {
            Observation::Swap { from, to, .. } => Some((from.url.clone(), to.url.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        swaps,
        vec![("https://o0.test:8935".into(), "https://o1.test:8935".into())]
    );
    // The last params were replayed to the orchestrator that took over.
    assert!(
        net.control
            .iter()
            .any(|(s, m)| *s == 1 && m.contains("updated")),
        "{:?}",
        net.control
    );
}

#[test]
fn when_every_orchestrator_fails_the_swap_limit_ends_the_session() {
    let crash = || Orch::Serves(profile(|p| p.crash_after_s = Some(1.5)));
    let (f, _) = Net::network(vec![crash(), crash(), crash(), crash()], plan(12)).run();
    let r = f.report;
    assert_eq!(r.outcome, Outcome::Failed);
    let failure = r.failure.expect("failure");
    assert!(
        failure.detail.starts_with("Too many swaps: "),
        "{}",
        failure.detail
    );
    // Two swaps are allowed in a chain; the third trigger ends the stream.
    assert_eq!(r.metrics.swaps.len(), 2);
    // The orchestrator serving when the limit was reached broke too: it is answerable for that
    // failure as its predecessors are for theirs, without a swap counted for it.
    let last = r.served_by.last().expect("shares");
    assert_eq!(last.ended_by, None);
    assert_eq!(last.failure, Some(failure.class));
    assert!(r.served_by.iter().all(|s| s.failure.is_some()));
    let uris: Vec<_> = r
        .served_by
        .iter()
        .map(|s| s.orchestrator.uri.as_str())
        .collect();
    assert_eq!(
        uris,
        vec![
            "https://o0.test:8935",
            "https://o1.test:8935",
            "https://o2.test:8935"
        ]
    );
}

#[test]
fn an_all_busy_network_is_unscored_and_blames_nobody() {
    let (f, net) = Net::network(vec![Orch::Busy, Orch::Busy], plan(3)).run();
    let r = f.report;
    assert_eq!(r.outcome, Outcome::UnscoredBusy);
    let failure = r.failure.expect("failure");
    assert_eq!(failure.class, FailureClass::Capacity);
    assert_eq!(failure.detail, NO_ORCHESTRATORS_AVAILABLE);
    assert!(r.served_by.is_empty());
    assert!(r.orchestrator.is_none());
    let none = net
        .observations
        .iter()
        .find_map(|o| match o {
            Observation::NoOrchestratorsAvailable { tries, .. } => Some(*tries),
            _ => None,
        })
        .expect("gateway_no_orchestrators_available");
    assert_eq!(none, 2);
}

#[test]
fn a_busy_first_choice_is_skipped_for_the_next() {
    let orchs = vec![Orch::Busy, Orch::Serves(Profile::default())];
    let (f, _) = Net::network(orchs, plan(3)).run();
    let r = f.report;
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.failure);
    assert_eq!(r.served_by.len(), 1);
    assert_eq!(r.served_by[0].orchestrator.uri, "https://o1.test:8935");
    assert!(r.metrics.swaps.is_empty());
}

#[test]
fn refusals_are_classified_by_kind() {
    let refused = |status, reason| {
        StartFailure::Job(JobRefusal::Refused {
            status,
            reason,
            detail: "x".into(),
        })
        .failure()
        .class
    };
    assert_eq!(refused(503, RefusalReason::Busy), FailureClass::Capacity);
    assert_eq!(refused(402, RefusalReason::Payment), FailureClass::Payment);
    assert_eq!(refused(403, RefusalReason::Auth), FailureClass::Auth);
    assert_eq!(refused(500, RefusalReason::Other), FailureClass::StartError);
    let busy = StartFailure::Grpc {
        busy: true,
        detail: "OrchestratorCapped".into(),
    };
    assert!(busy.is_busy());
    assert_eq!(
        StartFailure::NoAuthToken.failure().class,
        FailureClass::ProtocolError
    );
}

#[test]
fn the_drain_ends_after_a_second_without_output() {
    // Output stops half a second before the last input frame, so the drain cannot wait for the
    // last PTS: it ends one second after it began (the idle rule counts from the drain's start
    // at the earliest), long before its 5 s timeout.
    let orch = Orch::Serves(profile(|p| {
        p.stall_at_s = Some(4.5);
        p.stall_s = 60.0;
    }));
    let (f, _) = Net::direct(orch, plan(5)).run();
    let r = f.report;
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.failure);
    let ended_ms = r.ended_at_unix_ms - ORIGIN_UNIX_MS;
    assert!((5_950..6_100).contains(&ended_ms), "ended at {ended_ms} ms");
}

#[test]
fn a_drain_without_output_ends_at_its_timeout() {
    // Output stops for good 1 s before the end of publishing, but the idle rule counts from the
    // start of the drain at the earliest: a drain timeout shorter than the idle second ends it.
    let orch = Orch::Serves(profile(|p| {
        p.stall_at_s = Some(4.0);
        p.stall_s = 60.0;
    }));
    let mut plan = plan(5);
    plan.timeouts.drain_us = 300_000;
    let (f, _) = Net::direct(orch, plan).run();
    let r = f.report;
    let ended_ms = r.ended_at_unix_ms - ORIGIN_UNIX_MS;
    assert!((5_000..5_400).contains(&ended_ms), "ended at {ended_ms} ms");
    // The trailing second without output is a stall of the measured period.
    assert_eq!(r.metrics.stalls.count, 1, "{:?}", r.metrics.stalls);
}

/// Random inputs, seeded: whatever a driver or a hostile orchestrator hands the core (shares
/// and candidates that do not exist, results nobody asked for, garbage bytes and documents,
/// times out of order), it never panics, its outputs stay well-formed, and a cancel always
/// ends the session with a record.
#[test]
fn random_inputs_never_panic_and_a_cancel_always_finishes() {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    for seed in 0..200u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let network = rng.random_bool(0.5);
        let orchs = (0..rng.random_range(1..4))
            .map(|_| Orch::Serves(Profile::default()))
            .collect();
        let net = if network {
            Net::network(orchs, plan(rng.random_range(1..20)))
        } else {
            Net::direct(
                Orch::Serves(Profile::default()),
                plan(rng.random_range(1..20)),
            )
        };
        let mut core = net.core;
        let mut now = 0u64;
        let mut finished = false;
        for _ in 0..rng.random_range(1..400) {
            // Mostly forward in time, sometimes backwards (a driver must not, but may).
            now = if rng.random_bool(0.9) {
                now + rng.random_range(0..2_000_000)
            } else {
                now.saturating_sub(rng.random_range(0..1_000_000))
            };
            let share = rng.random_range(0..4);
            let bytes: Vec<u8> = (0..rng.random_range(0..600))
                .map(|_| rng.random())
                .collect();
            let ts = {
                // Sometimes real TS packets with a random PTS, so frames reach the recorder.
                let mut out = Vec::new();
                TsMuxer::new(MuxConfig::default()).mux_frame(
                    &MuxFrame {
                        pts: rng.random_range(0..1u64 << 33),
                        dts: None,
                        keyframe: rng.random_bool(0.5),
                        data: &access_unit(true, 0),
                    },
                    &mut out,
                );
                out
            };
            let end = [ChannelEnd::Ended, ChannelEnd::Error, ChannelEnd::CopyError]
                [rng.random_range(0..3)];
            let input = match rng.random_range(0..14) {
                0 => Input::Timeout,
                1 => Input::StartResult {
                    candidate: rng.random_range(0..5),
                    info: StartInfo::default(),
                    result: if rng.random_bool(0.6) {
                        Ok(())
                    } else {
                        Err(StartFailure::NoAuthToken)
                    },
                },
                2 => Input::FrameSent {
                    share,
                    pts: rng.random(),
                    at_us: now,
                },
                3 => Input::SegmentWritten {
                    share,
                    bytes: rng.random(),
                },
                4 => Input::SegmentDone {
                    share,
                    result: if rng.random_bool(0.7) {
                        Ok(())
                    } else {
                        Err(PublishError {
                            gone: rng.random(),
                            detail: "x".into(),
                        })
                    },
                },
                5 => Input::OutputBytes {
                    share,
                    bytes: Bytes::from(bytes),
                    at_us: now,
                },
                6 => Input::OutputBytes {
                    share,
                    bytes: Bytes::from(ts),
                    at_us: now,
                },
                7 => Input::OutputSegmentEnd { share },
                8 => Input::OutputEnd { share, end },
                9 => Input::Event {
                    share,
                    doc: Bytes::from(bytes),
                    at_us: now,
                },
                10 => Input::Event {
                    share,
                    doc: Bytes::from_static(br#"{"type":"status","state":"ERROR"}"#),
                    at_us: now,
                },
                11 => Input::EventsEnd { share, end },
                12 => Input::ControlGone { share },
                _ => Input::ControlReplayFailed { share },
            };
            core.handle_input(input, now);
            while let output = core.poll_output()
                && !matches!(output, Output::Timeout(_))
            {
                if let Output::Finished(f) = output {
                    assert!(!finished, "seed {seed}: finished twice");
                    finished = true;
                    assert!(f.report.ended_at_unix_ms >= f.report.started_at_unix_ms);
                }
            }
        }
        core.handle_input(Input::Cancel, now + 1);
        while let output = core.poll_output()
            && !matches!(output, Output::Timeout(_))
        {
            if let Output::Finished(_) = output {
                assert!(!finished, "seed {seed}: finished twice");
                finished = true;
            }
        }
        assert!(finished, "seed {seed}: a cancel must finish the session");
        assert!(core.is_finished());
        assert_eq!(core.poll_output(), Output::Timeout(u64::MAX));
    }
}

// ---- Through a gateway ---------------------------------------------------------------------

/// Through a gateway the output's timestamps are rewritten (here moved by an odd offset, as a
/// gateway's RTP times start anywhere): the latency comes from the pictures, every frame's in
/// this mode, and it is the injected one exactly. The update goes out as the params alone, with
/// no keepalive (a gateway's update route takes params only); events come from the status
/// route, so their silence ends nothing.
#[test]
fn a_gateway_session_measures_the_latency_from_its_pictures() {
    let orch = || Orch::Serves(profile(|p| p.latency_ms = 80));
    let (f, net) = Net::gateway(orch(), overlay_only(plan(30)), true).run();
    let r = f.report;
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.failure);
    assert_eq!(r.mode, TargetMode::Gateway);
    let m = &r.metrics;
    assert_eq!(m.frames_received, 900);
    let e2e = m.e2e_latency_ms.expect("latency from the pictures");
    assert_eq!((e2e.min, e2e.max), (80.0, 80.0), "{e2e:?}");
    let check = m.content_check.as_ref().expect("every picture sampled");
    assert_eq!(check.samples, 900);
    assert_eq!(check.disagreements, 0);
    assert_eq!(
        net.alone, 0,
        "every frame goes to the session's own decoder"
    );
    assert_eq!(net.hand_overs_ended + net.decoders_released, 0);
    assert_eq!(net.control.len(), 1, "{:?}", net.control);
    assert!(net.control[0].1.contains("watercolor, updated"));
    // The drain ends a second after the last output (timestamps cannot say it caught up).
    let ended_ms = r.ended_at_unix_ms - ORIGIN_UNIX_MS;
    assert!(
        (31_000..31_200).contains(&ended_ms),
        "ended at {ended_ms} ms"
    );

    // No status at all for 30 s: still passed.
    let mut quiet = overlay_only(plan(30));
    quiet.timeouts.events_us = 5_000_000;
    let (f, _) = run_without_events(Net::gateway(orch(), quiet, true));
    assert_eq!(f.report.outcome, Outcome::Passed, "{:?}", f.report.failure);
}

/// With keyframes only, each keyframe outside a watch is asked about on its own (any decoder
/// will do) and is a content sample; the start watch decodes every frame up to the first
/// processed one with the session's own decoder, which goes when the watch closes.
#[test]
fn a_gateway_session_on_keyframes_asks_about_each_keyframe_alone() {
    let orch = Orch::Serves(profile(|p| {
        p.startup_ms = 500;
        p.latency_ms = 40;
    }));
    let mut no_update = overlay_only(plan(6));
    no_update.params_update_offsets_us.clear();
    let (f, net) = Net::gateway(orch, no_update, false).run();
    let r = f.report;
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.failure);
    let m = &r.metrics;
    assert_eq!(m.startup_ms, Some(1_040.0));
    assert_eq!(m.loading_overlay.as_ref().map(|o| o.frames), Some(15));
    // The overlay and the first processed frame (the keyframe at 1 s) in the watch; the
    // keyframes at 2 to 5 s alone.
    assert_eq!(net.classified, 16);
    assert_eq!(net.alone, 4);
    assert_eq!(net.hand_overs_ended, 1, "the watch's decoder let go");
    let check = m.content_check.as_ref().expect("samples");
    assert_eq!(check.samples, 5);
    let e2e = m.e2e_latency_ms.expect("latency");
    assert_eq!((e2e.min, e2e.max), (40.0, 40.0));
}

/// A reload after an update is told apart through a gateway too: the watch opens with the
/// update (the gateway's timestamps cannot say which frames came early), every frame of it is
/// looked at, and the overlay is counted apart from the output.
#[test]
fn a_gateway_session_sees_the_reload_after_an_update() {
    let orch = Orch::Serves(profile(|p| {
        p.reload_ms = 2_000;
        p.latency_ms = 40;
    }));
    let (f, net) = Net::gateway(orch, overlay_only(plan(10)), false).run();
    let r = f.report;
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.failure);
    let overlay = r.metrics.loading_overlay.expect("the reload's overlay");
    assert_eq!(overlay.frames, 59);
    assert_eq!(r.metrics.stalls.count, 1, "{:?}", r.metrics.stalls);
    assert_eq!(r.metrics.e2e_latency_ms.expect("latency").max, 40.0);
    // From the update to the first processed frame after the overlay, every frame.
    assert!(net.classified >= 61, "{} classified", net.classified);
}

/// What a gateway session without output fails with: a playback that never came up is the
/// gateway refusing it (with the 404s it answered), one that came up but carried nothing is
/// no output; a start the gateway refused, and a leg it closed, end the session with the class
/// the driver gave.
#[test]
fn gateway_failures_keep_the_class_the_driver_saw() {
    let silent = || {
        Orch::Serves(profile(|p| {
            p.startup_ms = 3_600_000;
            p.loading_overlay = false;
        }))
    };
    // Never up: the 404s are counted into the detail.
    let mut net = Net::gateway(silent(), plan(30), true);
    for i in 1..=3 {
        net.deliver_later(i * 500_000, Input::PlaybackNotFound { share: 0 });
    }
    let (f, _) = net.run();
    let failure = f.report.failure.expect("failure");
    assert_eq!(failure.class, FailureClass::WhepRefused);
    assert!(failure.detail.contains("404 3 times"), "{failure:?}");
    assert_eq!(f.report.ended_at_unix_ms - ORIGIN_UNIX_MS, 20_005);

    // Up, and silent.
    let mut net = Net::gateway(silent(), plan(30), true);
    net.deliver_later(100_000, Input::PlaybackUp { share: 0 });
    let (f, _) = net.run();
    let failure = f.report.failure.expect("failure");
    assert_eq!(failure.class, FailureClass::NoOutput);
    assert_eq!(
        failure.detail,
        "no output frame within 20s of the first input"
    );

    // A refused start: its class and detail are the session's.
    let mut core = SessionCore::new(
        Mode::Gateway { every_frame: true },
        plan(10),
        vec![Candidate::new("http://gw.test:8937".to_string(), 0)],
        template(),
        0,
        ORIGIN_UNIX_MS,
    );
    assert!(matches!(
        core.poll_output(),
        Output::Start { candidate: 0, .. }
    ));
    let refused = Failure {
        class: FailureClass::AuthClosed,
        detail: "the gateway closed the ingest connection after its 201".into(),
    };
    core.handle_input(
        Input::StartResult {
            candidate: 0,
            info: StartInfo::default(),
            result: Err(StartFailure::Gateway(refused.clone())),
        },
        1_000,
    );
    let finished = loop {
        match core.poll_output() {
            Output::Finished(f) => break f,
            Output::Timeout(_) => panic!("the session did not end"),
            _ => {}
        }
    };
    assert_eq!(finished.report.outcome, Outcome::Failed);
    assert_eq!(finished.report.failure, Some(refused));

    // A leg closed 3 s in: the session ends there, failed as the driver classed it.
    let mut net = Net::gateway(Orch::Serves(Profile::default()), plan(10), true);
    let closed = Failure {
        class: FailureClass::PublishLost,
        detail: "the gateway ended the ingest connection (Remote)".into(),
    };
    net.deliver_later(
        3_000_000,
        Input::Failed {
            share: 0,
            failure: closed,
        },
    );
    let (f, _) = net.run();
    assert_eq!(f.report.outcome, Outcome::Failed);
    assert_eq!(
        f.report.failure.map(|f| f.class),
        Some(FailureClass::PublishLost)
    );
    assert_eq!(f.report.ended_at_unix_ms - ORIGIN_UNIX_MS, 3_000);
}

/// Output that comes back after a stall through a gateway may be a new runner loading (the
/// gateway swapped orchestrators, which the viewer sees only as a freeze): it is watched, and
/// every frame of it looked at, as after an update.
#[test]
fn gateway_output_back_after_a_stall_is_watched_for_the_overlay() {
    let orch = Orch::Serves(profile(|p| {
        p.stall_at_s = Some(3.0);
        p.stall_s = 2.0;
    }));
    let mut no_update = overlay_only(plan(8));
    no_update.params_update_offsets_us.clear();
    let (f, net) = Net::gateway(orch, no_update, false).run();
    assert_eq!(f.report.outcome, Outcome::Passed, "{:?}", f.report.failure);
    assert_eq!(f.report.metrics.stalls.count, 1);
    // The start's first frame, and from the resumed output every frame for 2 s (no overlay
    // shows, so the watch runs its course); the keyframes outside alone.
    assert!(net.classified >= 60, "{} classified", net.classified);
    assert_eq!(net.hand_overs_ended, 2, "one per watch");
}
