//! The driver's side of the loading overlay watch and of the content check: each share's output
//! frames decoded in order, off the event loop, one batch at a time per share, and only as far
//! as a frame the core asks about.
//!
//! A share's [`PictureReader`] keeps decoder state across frames (P-frames need the frames
//! before them), so its frames must be decoded in order by one decoder. Frames the core hands
//! over are kept from their keyframe on (a keyframe with nothing waiting for an answer drops
//! the ones before it), decoded or not, and decoded when a later frame is asked about; frames
//! never asked about cost a reference, not a decode. Holding a thread per share would tie up
//! the blocking pool while sessions wait; instead one blocking job per share decodes whatever
//! has queued, then hands the reader back. An H.264 decoder holds megabytes of pictures, so the
//! core lets it go whenever no answer is awaited (`Output::ClassifyEnd`): with `keep_frames`
//! the frames since the keyframe stay, and the next job decodes them again from the keyframe
//! with a fresh reader; without, they go too (a fresh reader outputs nothing before the next
//! keyframe handed over).

use std::collections::HashMap;

use bytes::Bytes;
use lvt_gateway::session::{Input, ShareId};
use tokio::task::JoinSet;

use crate::encode::PictureReader;

/// What a decoding job gives back: its share, the release epoch it started in, the reader, the
/// answers.
type Done = (ShareId, u64, Option<PictureReader>, Vec<Input>);

#[derive(Default)]
struct Slot {
    /// The reader while no job runs and the decoder is kept.
    reader: Option<PictureReader>,
    busy: bool,
    /// Frames kept `(pts, picture, asked)`, in stream order, from the last keyframe on when
    /// one came; `asked` until the frame's answer is on its way.
    frames: Vec<(u64, Bytes, bool)>,
    /// The first frame the reader has not decoded (0 without a reader).
    next: usize,
    /// Counts the releases: a job started before one hands back a reader that is dropped.
    epoch: u64,
}

impl Slot {
    fn waiting(&self) -> bool {
        self.frames.iter().any(|(_, _, asked)| *asked)
    }
}

/// Decoding jobs of a session's shares.
#[derive(Default)]
pub(crate) struct Pictures {
    slots: HashMap<ShareId, Slot>,
    running: JoinSet<Done>,
}

impl Pictures {
    /// Output frame `pts` of `share`: decoded and answered when `look`, else kept for the
    /// frames after it.
    pub(crate) fn classify(
        &mut self,
        share: ShareId,
        pts: u64,
        keyframe: bool,
        picture: Bytes,
        look: bool,
    ) {
        let slot = self.slots.entry(share).or_default();
        if keyframe && !slot.waiting() {
            // Nothing before a keyframe is needed to decode what follows it; a reader goes on
            // from it (an IDR resets its references).
            slot.next = slot.next.saturating_sub(slot.frames.len());
            slot.frames.clear();
        }
        slot.frames.push((pts, picture, look));
        if look {
            self.kick(share);
        }
    }

    /// No answer is awaited for `share`: its decoder goes; with `keep_frames` the frames since
    /// the keyframe stay for a later question, else they go too.
    pub(crate) fn end(&mut self, share: ShareId, keep_frames: bool) {
        if let Some(slot) = self.slots.get_mut(&share) {
            if !keep_frames {
                slot.frames.clear();
            }
            slot.reader = None;
            slot.next = 0;
            slot.epoch += 1;
        }
    }

    /// The next finished job's answers (pending forever while none runs).
    pub(crate) async fn next(&mut self) -> Vec<Input> {
        loop {
            let Some(done) = self.running.join_next().await else {
                return std::future::pending().await;
            };
            // Jobs catch their own panics; a cancelled one (the runtime shutting down) has no
            // session left to answer.
            let Ok((share, epoch, reader, inputs)) = done else {
                continue;
            };
            if let Some(slot) = self.slots.get_mut(&share) {
                slot.busy = false;
                if slot.epoch == epoch {
                    slot.reader = reader;
                }
                self.kick(share);
            }
            return inputs;
        }
    }

    fn kick(&mut self, share: ShareId) {
        let Some(slot) = self.slots.get_mut(&share) else {
            return;
        };
        if slot.busy {
            return;
        }
        let Some(last_asked) = slot.frames.iter().rposition(|(_, _, asked)| *asked) else {
            return;
        };
        slot.busy = true;
        // Up to the last frame asked about, from where the reader stands (from the first frame
        // kept for a fresh one); the frames stay kept, their questions go with the job.
        let frames: Vec<(u64, Bytes, bool)> = slot.frames[slot.next..=last_asked]
            .iter_mut()
            .map(|(pts, picture, asked)| (*pts, picture.clone(), std::mem::take(asked)))
            .collect();
        slot.next = last_asked + 1;
        let reader = slot.reader.take();
        let epoch = slot.epoch;
        self.running.spawn_blocking(move || {
            let asked: Vec<u64> = frames
                .iter()
                .filter(|(_, _, asked)| *asked)
                .map(|(pts, _, _)| *pts)
                .collect();
            // A decoder that panics must not leave the core waiting for answers: every frame
            // asked about is answered (undecodable), and the reader is dropped.
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let mut reader = reader.or_else(PictureReader::new);
                let inputs: Vec<Input> = frames
                    .into_iter()
                    .filter_map(|(pts, picture, asked)| {
                        let look = reader.as_mut().and_then(|r| r.look(&picture));
                        asked.then_some(Input::FrameLook { share, pts, look })
                    })
                    .collect();
                (reader, inputs)
            }));
            match decoded {
                Ok((reader, inputs)) => (share, epoch, reader, inputs),
                Err(_) => {
                    let inputs = asked
                        .into_iter()
                        .map(|pts| Input::FrameLook {
                            share,
                            pts,
                            look: None,
                        })
                        .collect();
                    (share, epoch, None, inputs)
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{ClipConfig, encode_clip};

    /// The code each answered frame shows, in answer order (`None`: undecodable).
    async fn answers(pictures: &mut Pictures, count: usize) -> Vec<(u64, Option<u32>)> {
        let mut out = Vec::new();
        while out.len() < count {
            for input in pictures.next().await {
                if let Input::FrameLook { pts, look, .. } = input {
                    out.push((pts, look.and_then(|l| l.code)));
                }
            }
        }
        out
    }

    /// The decoder goes after each answer; with the frames kept, a later question about a
    /// P-frame decodes again from the keyframe with a fresh decoder; without, it cannot.
    #[tokio::test]
    async fn a_released_decoder_decodes_again_from_the_kept_keyframe() {
        let clip = encode_clip(&ClipConfig {
            segments: 2,
            ..ClipConfig::default()
        })
        .expect("clip encodes");
        let frame = |i: usize| {
            (
                i as u64,
                clip.frames[i].keyframe,
                clip.frames[i].data.clone(),
            )
        };
        let mut pictures = Pictures::default();
        // The keyframe asked (as the start watch does), then let go with the frames kept.
        let (pts, key, data) = frame(0);
        pictures.classify(0, pts, key, data, true);
        assert_eq!(answers(&mut pictures, 1).await, vec![(0, Some(0))]);
        pictures.end(0, true);
        for i in 1..20 {
            let (pts, key, data) = frame(i);
            pictures.classify(0, pts, key, data, false);
        }
        let (pts, key, data) = frame(20);
        pictures.classify(0, pts, key, data, true);
        assert_eq!(answers(&mut pictures, 1).await, vec![(20, Some(20))]);

        // Let go without keeping: a P-frame asked next has nothing to decode from.
        pictures.end(0, false);
        let (pts, key, data) = frame(21);
        pictures.classify(0, pts, key, data, true);
        assert_eq!(answers(&mut pictures, 1).await, vec![(21, None)]);
        // The next keyframe (frame 30) starts the kept frames again.
        for i in 22..30 {
            let (pts, key, data) = frame(i);
            pictures.classify(0, pts, key, data, false);
        }
        for i in 30..35 {
            let (pts, key, data) = frame(i);
            pictures.classify(0, pts, key, data, i == 34);
        }
        assert_eq!(answers(&mut pictures, 1).await, vec![(34, Some(34))]);
        assert_eq!(pictures.slots[&0].frames.len(), 5, "kept from the keyframe");
    }
}
