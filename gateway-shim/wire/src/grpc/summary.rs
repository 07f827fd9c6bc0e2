//! The parts of an `OrchestratorInfo` a report shows: where to send work, who the orchestrator
//! is, which live models it serves with how much capacity, its GPUs, prices and auth token.

use serde::{Deserialize, Serialize};

use super::{CAPABILITY_LIVE_VIDEO_TO_VIDEO, has_capability, proto};

/// One live video-to-video model an orchestrator advertises.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveModelSummary {
    pub model_id: String,
    /// The model is loaded and ready.
    pub warm: bool,
    /// Idle runner containers.
    pub capacity: u32,
    /// Runner containers in use.
    pub capacity_in_use: u32,
    pub runner_version: String,
}

/// One GPU from the orchestrator's hardware report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuSummary {
    /// Pipeline the GPU serves.
    pub pipeline: String,
    /// Model the GPU serves.
    pub model_id: String,
    pub id: String,
    pub name: String,
    pub memory_total_bytes: i64,
    pub memory_free_bytes: i64,
    /// Compute capability, `major.minor`.
    pub compute_major: u32,
    pub compute_minor: u32,
}

/// A live video-to-video price from `capabilities_prices`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivePrice {
    /// Model the price is for (empty: every model).
    pub model_id: String,
    /// Wei per `pixels_per_unit` pixels.
    pub price_per_unit: i64,
    pub pixels_per_unit: i64,
}

/// What a report needs from an `OrchestratorInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrchestratorSummary {
    /// Service URI jobs are started at.
    pub transcoder_uri: String,
    /// `0x`-prefixed lowercase hex, absent when the orchestrator sent no address.
    pub eth_address: Option<String>,
    /// Capability 35 is set in the advertised bit string.
    pub advertises_live_video_to_video: bool,
    /// Sorted by model id.
    pub live_models: Vec<LiveModelSummary>,
    /// Sorted by pipeline, model and GPU id.
    pub gpus: Vec<GpuSummary>,
    /// General price, wei per `pixels_per_unit` pixels.
    pub price_per_unit: Option<i64>,
    pub pixels_per_unit: Option<i64>,
    /// Sorted by model id.
    pub live_prices: Vec<LivePrice>,
    pub auth_token_present: bool,
    pub auth_token_expiration_unix_s: Option<i64>,
    /// Other node URIs of this orchestrator.
    pub nodes: Vec<String>,
}

/// Summarizes an `OrchestratorInfo`.
pub fn summarize(info: &proto::OrchestratorInfo) -> OrchestratorSummary {
    let capabilities = info.capabilities.as_ref();
    let advertises_live_video_to_video =
        capabilities.is_some_and(|c| has_capability(&c.bitstring, CAPABILITY_LIVE_VIDEO_TO_VIDEO));

    let mut live_models: Vec<LiveModelSummary> = capabilities
        .and_then(|c| c.constraints.as_ref())
        .and_then(|c| c.per_capability.get(&CAPABILITY_LIVE_VIDEO_TO_VIDEO))
        .map(|per| {
            per.models
                .iter()
                .map(|(model_id, m)| LiveModelSummary {
                    model_id: model_id.clone(),
                    warm: m.warm,
                    capacity: m.capacity,
                    capacity_in_use: m.capacity_in_use,
                    runner_version: m.runner_version.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    live_models.sort_by(|a, b| a.model_id.cmp(&b.model_id));

    let mut gpus: Vec<GpuSummary> = info
        .hardware
        .iter()
        .flat_map(|hw| {
            hw.gpu_info.values().map(move |gpu| GpuSummary {
                pipeline: hw.pipeline.clone(),
                model_id: hw.model_id.clone(),
                id: gpu.id.clone(),
                name: gpu.name.clone(),
                memory_total_bytes: gpu.memory_total,
                memory_free_bytes: gpu.memory_free,
                compute_major: gpu.major,
                compute_minor: gpu.minor,
            })
        })
        .collect();
    gpus.sort_by(|a, b| (&a.pipeline, &a.model_id, &a.id).cmp(&(&b.pipeline, &b.model_id, &b.id)));

    let mut live_prices: Vec<LivePrice> = info
        .capabilities_prices
        .iter()
        .filter(|p| p.capability == CAPABILITY_LIVE_VIDEO_TO_VIDEO)
        .map(|p| LivePrice {
            model_id: p.constraint.clone(),
            price_per_unit: p.price_per_unit,
            pixels_per_unit: p.pixels_per_unit,
        })
        .collect();
    live_prices.sort_by(|a, b| a.model_id.cmp(&b.model_id));

    OrchestratorSummary {
        transcoder_uri: info.transcoder.clone(),
        eth_address: (!info.address.is_empty())
            .then(|| format!("0x{}", hex::encode(&info.address))),
        advertises_live_video_to_video,
        live_models,
        gpus,
        price_per_unit: info.price_info.as_ref().map(|p| p.price_per_unit),
        pixels_per_unit: info.price_info.as_ref().map(|p| p.pixels_per_unit),
        live_prices,
        auth_token_present: info.auth_token.is_some(),
        auth_token_expiration_unix_s: info.auth_token.as_ref().map(|t| t.expiration),
        nodes: info.nodes.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::{capability_bitstring, proto::capabilities};

    fn info() -> proto::OrchestratorInfo {
        let model =
            |warm, capacity, in_use| capabilities::capability_constraints::ModelConstraint {
                warm,
                capacity,
                runner_version: "0.14.1".to_string(),
                capacity_in_use: in_use,
            };
        let per = capabilities::CapabilityConstraints {
            models: [
                ("streamdiffusion".to_string(), model(true, 1, 2)),
                ("noop".to_string(), model(false, 0, 0)),
            ]
            .into_iter()
            .collect(),
        };
        let gpu = proto::GpuComputeInfo {
            id: "GPU-1".to_string(),
            name: "NVIDIA GeForce RTX 4090".to_string(),
            major: 8,
            minor: 9,
            memory_free: 1 << 30,
            memory_total: 24 << 30,
        };
        proto::OrchestratorInfo {
            transcoder: "https://o.example:8935".to_string(),
            address: vec![0xab; 20],
            capabilities: Some(proto::Capabilities {
                bitstring: capability_bitstring(&[CAPABILITY_LIVE_VIDEO_TO_VIDEO]),
                constraints: Some(capabilities::Constraints {
                    min_version: String::new(),
                    per_capability: [(CAPABILITY_LIVE_VIDEO_TO_VIDEO, per)]
                        .into_iter()
                        .collect(),
                }),
                ..Default::default()
            }),
            price_info: Some(proto::PriceInfo {
                price_per_unit: 1200,
                pixels_per_unit: 1,
                ..Default::default()
            }),
            hardware: vec![proto::HardwareInformation {
                pipeline: "live-video-to-video".to_string(),
                model_id: "streamdiffusion".to_string(),
                gpu_info: [("0".to_string(), gpu)].into_iter().collect(),
            }],
            capabilities_prices: vec![
                proto::PriceInfo {
                    price_per_unit: 5,
                    pixels_per_unit: 2,
                    capability: CAPABILITY_LIVE_VIDEO_TO_VIDEO,
                    constraint: "streamdiffusion".to_string(),
                },
                proto::PriceInfo {
                    price_per_unit: 9,
                    pixels_per_unit: 1,
                    capability: 27,
                    constraint: "other".to_string(),
                },
            ],
            auth_token: Some(proto::AuthToken {
                token: vec![1; 32],
                session_id: "abc".to_string(),
                expiration: 1_700_001_800,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn summary_extracts_report_fields() {
        let s = summarize(&info());
        assert_eq!(s.transcoder_uri, "https://o.example:8935");
        assert_eq!(
            s.eth_address.as_deref(),
            Some(&*format!("0x{}", "ab".repeat(20)))
        );
        assert!(s.advertises_live_video_to_video);
        let ids: Vec<_> = s.live_models.iter().map(|m| m.model_id.as_str()).collect();
        assert_eq!(ids, ["noop", "streamdiffusion"]);
        assert_eq!(s.live_models[1].capacity, 1);
        assert_eq!(s.live_models[1].capacity_in_use, 2);
        assert!(s.live_models[1].warm);
        assert_eq!(s.gpus.len(), 1);
        assert_eq!(s.gpus[0].name, "NVIDIA GeForce RTX 4090");
        assert_eq!(s.gpus[0].memory_total_bytes, 24 << 30);
        assert_eq!(s.price_per_unit, Some(1200));
        assert_eq!(
            s.live_prices,
            vec![LivePrice {
                model_id: "streamdiffusion".to_string(),
                price_per_unit: 5,
                pixels_per_unit: 2
            }]
        );
        assert!(s.auth_token_present);
        assert_eq!(s.auth_token_expiration_unix_s, Some(1_700_001_800));
    }

    #[test]
    fn empty_info_summarizes_to_absences() {
        let s = summarize(&proto::OrchestratorInfo::default());
        assert_eq!(s.eth_address, None);
        assert!(!s.advertises_live_video_to_video);
        assert!(s.live_models.is_empty() && s.gpus.is_empty() && s.live_prices.is_empty());
        assert_eq!(s.price_per_unit, None);
        assert!(!s.auth_token_present);
    }
}
