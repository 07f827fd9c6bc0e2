//! Seeded mutation fuzzing of the demuxer and the segmenter: thousands of corrupted variants of
//! a valid stream (bit flips, byte runs overwritten, truncation, insertion, deletion, packet
//! duplication and reordering) fed in random chunks. Nothing may panic, the damage must show up
//! in the counters when it is of a kind the transport layer can see, and the outputs must stay
//! within what the input could have produced.

mod common;

use common::*;
use lvt_media::ts::{PACKET_SIZE, Segmenter, TsDemuxer};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

const ITERATIONS: u64 = 3_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutation {
    FlipBits,
    OverwriteRun,
    Truncate,
    Insert,
    Delete,
    DuplicatePacket,
    SwapPackets,
}

const MUTATIONS: [Mutation; 7] = [
    Mutation::FlipBits,
    Mutation::OverwriteRun,
    Mutation::Truncate,
    Mutation::Insert,
    Mutation::Delete,
    Mutation::DuplicatePacket,
    Mutation::SwapPackets,
];

fn mutate(rng: &mut ChaCha8Rng, stream: &mut Vec<u8>, m: Mutation) {
    let len = stream.len();
    let packets = len / PACKET_SIZE;
    match m {
        Mutation::FlipBits => {
            for _ in 0..rng.random_range(1..20) {
                let at = rng.random_range(0..len);
                stream[at] ^= 1 << rng.random_range(0..8);
            }
        }
        Mutation::OverwriteRun => {
            let at = rng.random_range(0..len);
            let end = (at + rng.random_range(1..400)).min(len);
            for b in &mut stream[at..end] {
                *b = rng.random();
            }
        }
        Mutation::Truncate => stream.truncate(rng.random_range(0..len)),
        Mutation::Insert => {
            let at = rng.random_range(0..=len);
            let n = rng.random_range(1..300);
            // Sync bytes are over-represented so that fake packet starts are common.
            let junk: Vec<u8> = (0..n)
                .map(|_| {
                    if rng.random_bool(0.2) {
                        0x47
                    } else {
                        rng.random()
                    }
                })
                .collect();
            stream.splice(at..at, junk);
        }
        Mutation::Delete => {
            let at = rng.random_range(0..len);
            let end = (at + rng.random_range(1..600)).min(len);
            stream.drain(at..end);
        }
        Mutation::DuplicatePacket => {
            let p = rng.random_range(0..packets) * PACKET_SIZE;
            let copy = stream[p..p + PACKET_SIZE].to_vec();
            let to = rng.random_range(0..packets) * PACKET_SIZE;
            stream.splice(to..to, copy);
        }
        Mutation::SwapPackets => {
            let a = rng.random_range(0..packets);
            let b = rng.random_range(0..packets);
            for i in 0..PACKET_SIZE {
                stream.swap(a * PACKET_SIZE + i, b * PACKET_SIZE + i);
            }
        }
    }
}

#[test]
fn mutated_streams_never_panic_and_damage_is_counted() {
    let mut rng = rng(0x5eed);
    let mut base_frames = clip_frames();
    base_frames.extend(
        synthetic_frames(&mut rng, 6, 3_000)
            .into_iter()
            .map(|mut f| {
                f.pts += 200_000;
                f
            }),
    );
    let (base, _) = mux_all(&base_frames);

    let mut counted_by_kind = [0u64; MUTATIONS.len()];
    let mut runs_by_kind = [0u64; MUTATIONS.len()];
    for iteration in 0..ITERATIONS {
        let kind = rng.random_range(0..MUTATIONS.len());
        let m = MUTATIONS[kind];
        let mut stream = base.clone();
        for _ in 0..rng.random_range(1..3) {
            if !stream.is_empty() && stream.len() >= PACKET_SIZE {
                mutate(&mut rng, &mut stream, m);
            }
        }
        let chunks = random_chunks(&mut rng, stream.len());

        let mut demux = TsDemuxer::new();
        let mut segmenter = Segmenter::new();
        let mut frames = Vec::new();
        let mut segment_bytes = 0;
        for (i, c) in chunks.iter().enumerate() {
            demux.handle_bytes(&stream[c.clone()], chunk_time_us(i));
            frames.extend(std::iter::from_fn(|| demux.poll_frame()));
            segment_bytes += segmenter
                .push(&stream[c.clone()])
                .iter()
                .map(|s| s.data.len())
                .sum::<usize>();
        }
        demux.finish(chunk_time_us(chunks.len()));
        frames.extend(std::iter::from_fn(|| demux.poll_frame()));
        segment_bytes += segmenter.finish().map_or(0, |s| s.data.len());

        let stats = demux.stats();
        // Outputs stay bounded by the input.
        assert_eq!(stats.bytes, stream.len() as u64);
        assert!(stats.packets <= (stream.len() / PACKET_SIZE) as u64);
        assert_eq!(stats.frames, frames.len() as u64);
        assert!(segment_bytes <= stream.len());
        assert_eq!(segment_bytes % PACKET_SIZE, 0);
        let payload: usize = frames.iter().map(|f| f.data.len()).sum();
        assert!(payload <= stream.len(), "iteration {iteration}");
        for f in &frames {
            assert!(f.first_byte_us <= f.last_byte_us, "iteration {iteration}");
        }

        let intact = stream == base;
        let output_intact = frames.len() == base_frames.len()
            && frames
                .iter()
                .zip(&base_frames)
                .all(|(f, b)| f.data == b.data && f.pts == Some(b.pts) && f.keyframe == b.keyframe);
        runs_by_kind[kind] += 1;
        if stats.errors() > 0 {
            counted_by_kind[kind] += 1;
        } else if !intact {
            // Damage the transport layer cannot see (payload bytes, timestamps) may change
            // frames, but never invents frames: more frames than were muxed means an error
            // went uncounted. Fewer is possible without an error when the stream was cut on a
            // packet boundary, which looks like a clean end.
            assert!(
                frames.len() <= base_frames.len(),
                "iteration {iteration}: {m:?} invented frames without counting an error"
            );
        } else {
            assert!(
                output_intact,
                "iteration {iteration}: clean stream, wrong output"
            );
            assert_eq!(segment_bytes, stream.len());
        }
    }

    for (kind, m) in MUTATIONS.iter().enumerate() {
        let share = counted_by_kind[kind] as f64 / runs_by_kind[kind].max(1) as f64;
        println!(
            "{m:?}: {} of {} runs counted errors",
            counted_by_kind[kind], runs_by_kind[kind]
        );
        assert!(
            runs_by_kind[kind] > 100,
            "{m:?} ran {} times",
            runs_by_kind[kind]
        );
        // Structural damage is almost always visible; flips and overwrites may land in
        // payload bytes that TS cannot check, a duplicate may land right after its original
        // (a legal repeat), and a swap may exchange two identical PSI packets.
        let floor = match m {
            Mutation::FlipBits => 0.25,
            Mutation::OverwriteRun => 0.6,
            Mutation::SwapPackets | Mutation::Truncate | Mutation::DuplicatePacket => 0.8,
            Mutation::Insert | Mutation::Delete => 0.9,
        };
        assert!(
            share >= floor,
            "{m:?}: only {share:.2} of runs counted an error"
        );
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = rng(42);
    for _ in 0..300 {
        let len = rng.random_range(0..5_000);
        let data: Vec<u8> = (0..len)
            .map(|_| {
                if rng.random_bool(0.05) {
                    0x47
                } else {
                    rng.random()
                }
            })
            .collect();
        let mut demux = TsDemuxer::new();
        let mut segmenter = Segmenter::new();
        for c in random_chunks(&mut rng, data.len()) {
            demux.handle_bytes(&data[c.clone()], 1);
            segmenter.push(&data[c]);
        }
        demux.finish(2);
        segmenter.finish();
        while demux.poll_frame().is_some() {}
        assert_eq!(demux.stats().bytes, len as u64);
    }
}
