//! The driver's side of the loading overlay watch and of the content check: each share's output
//! frames decoded in order, off the event loop, one batch at a time per share, and only as far
//! as a frame the core asks about.
//!
//! A share's [`PictureReader`] keeps decoder state across frames (P-frames need the frames
//! before them), so its frames must be decoded in order by one decoder. Frames the core only
//! hands over are kept, from their keyframe on (a keyframe with nothing asked before it drops
//! the ones before it), and decoded when a later frame is asked about; frames never asked about
//! cost a reference, not a decode. Holding a thread per share would tie up the blocking pool
//! while sessions wait; instead one blocking job per share decodes whatever has queued, then
//! hands the reader back. When the core ends a hand-over (`Output::ClassifyEnd`: a watch or a
//! check is over) the reader is dropped, which also frees its picture buffers between checks:
//! frames skipped until the next hand-over would leave it with stale references, so that one
//! starts a fresh decoder (which outputs nothing before its first keyframe).

use std::collections::HashMap;

use bytes::Bytes;
use lvt_gateway::session::{Input, ShareId};
use tokio::task::JoinSet;

use crate::encode::PictureReader;

/// What a decoding job gives back: its share, the watch it decoded for, the reader, the
/// answers.
type Done = (ShareId, u64, Option<PictureReader>, Vec<Input>);

#[derive(Default)]
struct Slot {
    /// The reader while no job runs (created by the first job).
    reader: Option<PictureReader>,
    busy: bool,
    /// Frames not decoded yet `(pts, picture, asked)`, in stream order.
    queue: Vec<(u64, Bytes, bool)>,
    /// Counts the watches: a job of an earlier one hands back a reader that is dropped.
    watch: u64,
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
        if keyframe && !slot.queue.iter().any(|(_, _, asked)| *asked) {
            // Nothing before a keyframe is needed to decode what follows it.
            slot.queue.clear();
        }
        slot.queue.push((pts, picture, look));
        if look {
            self.kick(share);
        }
    }

    /// The watch of `share` ended: frames queued are not needed, its decoder goes.
    pub(crate) fn end(&mut self, share: ShareId) {
        if let Some(slot) = self.slots.get_mut(&share) {
            slot.queue.clear();
            slot.reader = None;
            slot.watch += 1;
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
            let Ok((share, watch, reader, inputs)) = done else {
                continue;
            };
            if let Some(slot) = self.slots.get_mut(&share) {
                slot.busy = false;
                if slot.watch == watch {
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
        let Some(last_asked) = slot.queue.iter().rposition(|(_, _, asked)| *asked) else {
            return;
        };
        if slot.busy {
            return;
        }
        slot.busy = true;
        // Up to the last frame asked about; the rest stays kept.
        let frames: Vec<_> = slot.queue.drain(..=last_asked).collect();
        let reader = slot.reader.take();
        let watch = slot.watch;
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
                Ok((reader, inputs)) => (share, watch, reader, inputs),
                Err(_) => {
                    let inputs = asked
                        .into_iter()
                        .map(|pts| Input::FrameLook {
                            share,
                            pts,
                            look: None,
                        })
                        .collect();
                    (share, watch, None, inputs)
                }
            }
        });
    }
}
