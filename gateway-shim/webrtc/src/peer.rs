//! One WebRTC peer: a str0m [`Rtc`] (sans-IO) on its own UDP socket, driven by one tokio task.
//!
//! The offer/answer happens before the task starts ([`Peer::offer`] then
//! [`PendingPeer::accept`], or [`Peer::answer`]); ICE is gathered in full up front (one host
//! candidate, the socket's address), as go-livepeer does: no trickle ICE. [`Peer::spawn`] hands
//! the peer to its task and returns a [`PeerHandle`]: commands in (an access unit or an Opus
//! packet to send, close), [`PeerEvent`]s out, each stamped with the [`Instant`] it happened.
//! The task ends when the handle's command side is dropped or closed (a graceful close: RTCP
//! BYE and DTLS close_notify), when the remote closes (its close_notify), when ICE disconnects
//! (str0m's consent checks: the remote peer is gone without a word), or on an error; its last
//! event is [`PeerEvent::Closed`] saying which.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::codecs::{self, AUDIO_CLOCK};

/// After a close starts, its last packets (RTCP BYE, close_notify) get this long to go out.
const CLOSE_DRAIN: Duration = Duration::from_millis(500);

/// What failed while setting a peer up.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("binding a UDP socket on {ip}: {source}")]
    Bind { ip: IpAddr, source: io::Error },
    #[error("the remote SDP does not parse: {0}")]
    BadSdp(String),
    #[error("the remote SDP was refused: {0}")]
    Refused(String),
    #[error("the remote offer has no {0} m-line this side can use")]
    NoMedia(&'static str),
}

/// What a peer offers: lvt's two client roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// WHIP: send video (H.264) and audio (Opus), receive nothing.
    Publish,
    /// WHEP: receive video and audio, send nothing.
    Play,
}

/// A peer whose SDP is settled and whose task has not started.
pub struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    video: Option<Mid>,
    audio: Option<Mid>,
}

/// An offer sent, its answer not yet back.
pub struct PendingPeer {
    peer: Peer,
    pending: SdpPendingOffer,
}

/// How a peer's task behaves.
#[derive(Debug, Clone, Default)]
pub struct PeerOptions {
    /// Ask the sender for a keyframe (PLI) this often once connected: go-livepeer's WHIP
    /// ingest does every 2 s (`intervalpli`).
    pub pli_every: Option<Duration>,
    /// Report RTP statistics this often ([`PeerEvent::Ingress`], [`PeerEvent::Egress`]).
    pub stats_every: Option<Duration>,
}

/// RTP-level figures of one received stream, as str0m counts them (cumulative).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IngressStats {
    pub video: bool,
    pub packets: u64,
    pub bytes: u64,
    pub nacks_sent: u64,
    pub plis_sent: u64,
    /// Interarrival jitter, in RTP clock units.
    pub jitter: u32,
    /// Fraction lost since the last report (0..1), when known.
    pub loss: Option<f32>,
}

/// RTP-level figures of one sent stream (cumulative).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EgressStats {
    pub video: bool,
    pub packets: u64,
    pub bytes: u64,
    pub nacks_received: u64,
    pub plis_received: u64,
    /// Fraction lost as the remote reports it (0..1), when it has.
    pub loss: Option<f32>,
    /// Round trip from RTCP, when known.
    pub rtt: Option<Duration>,
}

/// Why a peer's task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// This side closed it (the handle was closed or dropped): RTCP BYE and DTLS close_notify
    /// went out.
    Local,
    /// The remote closed it (its DTLS close_notify arrived), as a browser does when its peer
    /// connection is closed.
    Remote,
    /// ICE disconnected: the remote peer stopped answering (closed its connection, or never
    /// connected).
    Disconnected,
    /// The socket or str0m failed.
    Error(String),
}

/// What a peer saw, with when.
#[derive(Debug, Clone)]
pub enum PeerEvent {
    /// ICE found a working candidate pair.
    IceConnected(Instant),
    /// DTLS is up and SRTP keys are set: media can flow.
    Connected(Instant),
    /// A whole access unit arrived (Annex-B, as str0m depacketizes it); `rtp_time` is its RTP
    /// timestamp unrolled to 64 bits (90 kHz); `contiguous` is false when packets before it
    /// were lost.
    Video {
        rtp_time: u64,
        at: Instant,
        data: Bytes,
        contiguous: bool,
    },
    /// An audio packet (Opus) arrived; `rtp_time` is its RTP timestamp unrolled to 64 bits
    /// (48 kHz).
    Audio {
        rtp_time: u64,
        at: Instant,
        data: Bytes,
    },
    /// The remote asked for a keyframe (PLI or FIR).
    KeyframeRequest(Instant),
    Ingress(IngressStats),
    Egress(EgressStats),
    /// The task ended; nothing follows.
    Closed(CloseReason),
}

/// What a handle asks of its peer.
#[derive(Debug)]
enum Command {
    /// One H.264 access unit (Annex-B), with its presentation time in 90 kHz units.
    Video {
        pts: u64,
        data: Bytes,
    },
    /// One Opus packet, with its time in 48 kHz samples.
    Audio {
        time: u64,
        data: Bytes,
    },
    Close,
}

/// The running peer: send commands, read events.
pub struct PeerHandle {
    commands: mpsc::UnboundedSender<Command>,
    /// The peer's events, in order; ends after [`PeerEvent::Closed`].
    pub events: mpsc::UnboundedReceiver<PeerEvent>,
    /// The local UDP address of the peer.
    pub local: SocketAddr,
}

impl PeerHandle {
    /// Sends one H.264 access unit (Annex-B) with presentation time `pts` (90 kHz). False when
    /// the peer has ended. Units written before the peer is connected are dropped by str0m.
    pub fn send_video(&self, pts: u64, data: Bytes) -> bool {
        self.commands.send(Command::Video { pts, data }).is_ok()
    }

    /// Sends one Opus packet at `time` (48 kHz samples).
    pub fn send_audio(&self, time: u64, data: Bytes) -> bool {
        self.commands.send(Command::Audio { time, data }).is_ok()
    }

    /// Closes the peer connection (the task ends with [`CloseReason::Local`]).
    pub fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }

    /// A second sender for the same peer, for a task that only writes.
    pub fn sender(&self) -> PeerSender {
        PeerSender(self.commands.clone())
    }
}

/// A write-only side of a [`PeerHandle`].
#[derive(Clone)]
pub struct PeerSender(mpsc::UnboundedSender<Command>);

impl PeerSender {
    /// See [`PeerHandle::send_video`].
    pub fn send_video(&self, pts: u64, data: Bytes) -> bool {
        self.0.send(Command::Video { pts, data }).is_ok()
    }

    /// See [`PeerHandle::send_audio`].
    pub fn send_audio(&self, time: u64, data: Bytes) -> bool {
        self.0.send(Command::Audio { time, data }).is_ok()
    }
}

async fn bind(ip: IpAddr) -> Result<(Rtc, UdpSocket, SocketAddr), PeerError> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
        .await
        .map_err(|source| PeerError::Bind { ip, source })?;
    let local = socket
        .local_addr()
        .map_err(|source| PeerError::Bind { ip, source })?;
    let mut rtc = codecs::rtc_config()
        .set_stats_interval(Some(Duration::from_secs(1)))
        .build(Instant::now());
    let candidate = Candidate::host(local, "udp").map_err(|e| PeerError::Bind {
        ip,
        source: io::Error::other(e.to_string()),
    })?;
    rtc.add_local_candidate(candidate);
    Ok((rtc, socket, local))
}

impl Peer {
    /// A peer on a new UDP socket of `ip` and its offer for `role`.
    pub async fn offer(ip: IpAddr, role: Role) -> Result<(PendingPeer, String), PeerError> {
        let (mut rtc, socket, local) = bind(ip).await?;
        let direction = match role {
            Role::Publish => Direction::SendOnly,
            Role::Play => Direction::RecvOnly,
        };
        let mut change = rtc.sdp_api();
        let video = change.add_media(MediaKind::Video, direction, None, None, None);
        let audio = change.add_media(MediaKind::Audio, direction, None, None, None);
        let (offer, pending) = change
            .apply()
            .expect("two new m-lines make a change to offer");
        let peer = Peer {
            rtc,
            socket,
            local,
            video: Some(video),
            audio: Some(audio),
        };
        Ok((PendingPeer { peer, pending }, offer.to_sdp_string()))
    }

    /// A peer on a new UDP socket of `ip` answering `offer`: it mirrors the offer's
    /// directions, keeping go-livepeer's codecs.
    pub async fn answer(ip: IpAddr, offer: &str) -> Result<(Peer, String), PeerError> {
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| PeerError::BadSdp(e.to_string()))?;
        let (mut rtc, socket, local) = bind(ip).await?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| PeerError::Refused(e.to_string()))?;
        let peer = Peer {
            rtc,
            socket,
            local,
            video: None,
            audio: None,
        };
        Ok((peer, answer.to_sdp_string()))
    }

    /// The local UDP address.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Starts the peer's task.
    pub fn spawn(self, options: PeerOptions) -> PeerHandle {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        let local = self.local;
        tokio::spawn(async move {
            let reason = self.run(options, command_rx, &event_tx).await;
            let _ = event_tx.send(PeerEvent::Closed(reason));
        });
        PeerHandle {
            commands,
            events,
            local,
        }
    }

    async fn run(
        mut self,
        options: PeerOptions,
        mut commands: mpsc::UnboundedReceiver<Command>,
        events: &mpsc::UnboundedSender<PeerEvent>,
    ) -> CloseReason {
        let mut buf = vec![0u8; 2048];
        let mut ice_connected = false;
        let mut connected = false;
        let mut next_pli: Option<Instant> = None;
        let mut next_stats = options.stats_every.map(|every| Instant::now() + every);
        let mut ingress: Vec<(Mid, IngressStats)> = Vec::new();
        let mut egress: Vec<(Mid, EgressStats)> = Vec::new();
        // Once closing: why, and how long the close output may take to drain.
        let mut ending: Option<(CloseReason, Instant)> = None;
        loop {
            // Carry out everything str0m has to say, up to its next deadline.
            let deadline = loop {
                match self.rtc.poll_output() {
                    Ok(Output::Timeout(at)) => break at,
                    Ok(Output::Transmit(t)) => {
                        // A datagram that cannot go out is lost like one dropped on the way;
                        // retransmissions and consent checks handle both.
                        let _ = self.socket.send_to(&t.contents, t.destination).await;
                    }
                    Ok(Output::Event(event)) => {
                        if matches!(event, Event::Closed) {
                            ending
                                .get_or_insert((CloseReason::Remote, Instant::now() + CLOSE_DRAIN));
                            continue;
                        }
                        if let Some(reason) = self.on_event(
                            event,
                            events,
                            &mut ice_connected,
                            &mut connected,
                            &mut next_pli,
                            &options,
                            &mut ingress,
                            &mut egress,
                        ) {
                            return reason;
                        }
                    }
                    Err(e) => return CloseReason::Error(e.to_string()),
                }
            };
            if !self.rtc.is_alive() {
                return ending.map_or(CloseReason::Disconnected, |(reason, _)| reason);
            }
            let mut wake = deadline;
            if let Some((reason, by)) = &ending {
                if *by <= Instant::now() {
                    return reason.clone();
                }
                wake = wake.min(*by);
            }
            if let Some(at) = next_pli {
                wake = wake.min(at);
            }
            if let Some(at) = next_stats {
                wake = wake.min(at);
            }
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    let (n, source) = match received {
                        Ok(got) => got,
                        Err(e) => return CloseReason::Error(format!("receiving: {e}")),
                    };
                    let Ok(contents) = buf[..n].try_into() else {
                        continue; // not STUN, DTLS or RTP: ignored, as a browser would
                    };
                    let input = Input::Receive(
                        Instant::now(),
                        Receive { proto: Protocol::Udp, source, destination: self.local, contents },
                    );
                    if let Err(e) = self.rtc.handle_input(input) {
                        return CloseReason::Error(e.to_string());
                    }
                }
                command = commands.recv(), if ending.is_none() => match command {
                    Some(Command::Video { pts, data }) => {
                        self.write(self.video, MediaTime::from_90khz(pts), data);
                    }
                    Some(Command::Audio { time, data }) => {
                        let time = MediaTime::new(time, str0m::media::Frequency::FORTY_EIGHT_KHZ);
                        debug_assert_eq!(u64::from(time.denom()), AUDIO_CLOCK);
                        self.write(self.audio, time, data);
                    }
                    Some(Command::Close) | None => {
                        if ending.is_none() {
                            if self.rtc.close().is_err() {
                                return CloseReason::Local;
                            }
                            ending = Some((CloseReason::Local, Instant::now() + CLOSE_DRAIN));
                        }
                    }
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    if next_pli.is_some_and(|at| at <= now) {
                        next_pli = options.pli_every.map(|every| now + every);
                        if let Some(mid) = self.video
                            && let Some(mut writer) = self.rtc.writer(mid)
                        {
                            let _ = writer.request_keyframe(None, KeyframeRequestKind::Pli);
                        }
                    }
                    if next_stats.is_some_and(|at| at <= now) {
                        next_stats = options.stats_every.map(|every| now + every);
                        for (_, stats) in &ingress {
                            let _ = events.send(PeerEvent::Ingress(*stats));
                        }
                        for (_, stats) in &egress {
                            let _ = events.send(PeerEvent::Egress(*stats));
                        }
                    }
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                        return CloseReason::Error(e.to_string());
                    }
                }
            }
        }
    }

    /// Writes one frame on `mid` in its first negotiated payload type (for video, go-livepeer's
    /// order puts packetization mode 1 first).
    fn write(&mut self, mid: Option<Mid>, time: MediaTime, data: Bytes) {
        let Some(mid) = mid else { return };
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else {
            return;
        };
        let _ = writer.write(pt, Instant::now(), time, data.to_vec());
    }

    #[allow(clippy::too_many_arguments)]
    fn on_event(
        &mut self,
        event: Event,
        events: &mpsc::UnboundedSender<PeerEvent>,
        ice_connected: &mut bool,
        connected: &mut bool,
        next_pli: &mut Option<Instant>,
        options: &PeerOptions,
        ingress: &mut Vec<(Mid, IngressStats)>,
        egress: &mut Vec<(Mid, EgressStats)>,
    ) -> Option<CloseReason> {
        let now = Instant::now();
        let sent = match event {
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) if !*ice_connected => {
                *ice_connected = true;
                events.send(PeerEvent::IceConnected(now))
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Some(CloseReason::Disconnected);
            }
            Event::Connected => {
                *connected = true;
                *next_pli = options.pli_every.map(|every| now + every);
                events.send(PeerEvent::Connected(now))
            }
            Event::MediaAdded(added) => {
                match added.kind {
                    MediaKind::Video => self.video = Some(added.mid),
                    MediaKind::Audio => self.audio = Some(added.mid),
                }
                Ok(())
            }
            Event::MediaData(data) => {
                if Some(data.mid) == self.video {
                    events.send(PeerEvent::Video {
                        rtp_time: data.time.numer(),
                        at: data.network_time,
                        // str0m hands the frame over as an `Arc<[u8]>`: shared, not copied.
                        data: Bytes::from_owner(data.data),
                        contiguous: data.contiguous,
                    })
                } else {
                    events.send(PeerEvent::Audio {
                        rtp_time: data.time.numer(),
                        at: data.network_time,
                        data: Bytes::from_owner(data.data),
                    })
                }
            }
            Event::KeyframeRequest(_) => events.send(PeerEvent::KeyframeRequest(now)),
            Event::MediaIngressStats(stats) => {
                let figures = IngressStats {
                    video: Some(stats.mid) == self.video,
                    packets: stats.packets,
                    bytes: stats.bytes,
                    nacks_sent: stats.nacks,
                    plis_sent: stats.plis,
                    jitter: stats.jitter,
                    loss: stats.loss,
                };
                upsert(ingress, stats.mid, figures);
                Ok(())
            }
            Event::MediaEgressStats(stats) => {
                let figures = EgressStats {
                    video: Some(stats.mid) == self.video,
                    packets: stats.packets,
                    bytes: stats.bytes,
                    nacks_received: stats.nacks,
                    plis_received: stats.plis,
                    loss: stats.loss,
                    rtt: stats.rtt,
                };
                upsert(egress, stats.mid, figures);
                Ok(())
            }
            _ => Ok(()),
        };
        // Nobody reads the events any more: the owner is gone, so is the peer.
        sent.err().map(|_| {
            self.rtc.disconnect();
            CloseReason::Local
        })
    }
}

fn upsert<T>(list: &mut Vec<(Mid, T)>, mid: Mid, value: T) {
    match list.iter_mut().find(|(m, _)| *m == mid) {
        Some((_, slot)) => *slot = value,
        None => list.push((mid, value)),
    }
}

impl PendingPeer {
    /// Applies the remote answer: the peer is ready to start.
    pub fn accept(mut self, answer: &str) -> Result<Peer, PeerError> {
        let answer =
            SdpAnswer::from_sdp_string(answer).map_err(|e| PeerError::BadSdp(e.to_string()))?;
        self.peer
            .rtc
            .sdp_api()
            .accept_answer(self.pending, answer)
            .map_err(|e| PeerError::Refused(e.to_string()))?;
        Ok(self.peer)
    }

    /// The local UDP address.
    pub fn local(&self) -> SocketAddr {
        self.peer.local
    }
}
