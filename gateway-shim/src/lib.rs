//! lvt-gateway: the decisions a Livepeer gateway makes, for lvt's sessions.
//!
//! It owns [`discovery`] (candidate orchestrators from a static list, a webhook, the NaaP API
//! or the chain, and the inventory of which are usable), [`gateway`] (the sans-IO selection and
//! swap cores, the observations a session reports, the go-livepeer analytics events made
//! from them, and the relay that carries a live stream to orchestrators through them),
//! [`start`] (GetOrchestrator, payment and job start, typed at the edge), [`session`] (the sans-IO `SessionCore` that every transport drives) and
//! [`measure`] (the recorder that computes every metric of docs/metrics.md) and [`identity`]
//! (claimed orchestrator addresses checked against the on-chain ServiceRegistry). The bytes on the
//! wire are `lvt-wire`'s; the simulated orchestrator is `lvt-sim`, which the session tests use.

pub mod discovery;
pub mod gateway;
pub mod identity;
pub mod measure;
pub mod session;
pub mod start;
