//! What every `lvt` command shares: the exit codes, `CliError` (why a command stopped, which
//! picks the exit code), the duration parser of every time flag, and the payment flag.
//!
//! Exit codes are part of the interface: 0 success (a probe passed), 1 the command ran but the
//! system under test failed or was unscored, or the command could not proceed, 2 bad usage or
//! configuration (clap's own usage errors also exit 2), 99 (`lvt run`) a threshold failed.

use std::time::Duration;

/// Exit code: the command succeeded (for a probe: the session passed).
pub const EXIT_OK: u8 = 0;
/// Exit code: the session failed or was unscored, or the command could not proceed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage, input or configuration.
pub const EXIT_USAGE: u8 = 2;

/// Why a command stopped: the user's input, or something that kept it from proceeding.
#[derive(Debug)]
pub enum CliError {
    Usage(String),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Failed(e)
    }
}

/// Offchain without `--remote-signer`, else paid through that signer.
pub fn payment_config(
    remote_signer: Option<&str>,
) -> Result<lvt_wire::payment::PaymentConfig, CliError> {
    let Some(url) = remote_signer else {
        return Ok(lvt_wire::payment::PaymentConfig::default());
    };
    let signer_url = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            CliError::Usage(format!("--remote-signer {url:?}: expected an http(s) URL"))
        })?;
    Ok(lvt_wire::payment::PaymentConfig {
        signer_url: Some(signer_url),
    })
}

/// Parses `30s`, `2m`, `500ms`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 30s, 2m, 500ms)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("{s:?} must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 days").is_err());
    }
}

/// The flags that check orchestrators' claimed addresses on chain (`lvt run`, `lvt probe`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct VerifyArgs {
    /// Check each orchestrator's claimed address against the on-chain ServiceRegistry through
    /// this Ethereum JSON-RPC URL (without a URL: Arbitrum One's public endpoint): an address
    /// counts as the orchestrator's only when it registered the URI connected to
    /// (docs/result-record.md, "Identity"). Without it, claims are recorded unverified, and
    /// network runs with an on-chain source check through that source.
    #[arg(long, value_name = "RPC_URL", num_args = 0..=1, default_missing_value = "")]
    pub verify_addresses: Option<String>,
    /// The Livepeer Controller for --verify-addresses (default: Arbitrum One's).
    #[arg(long, value_name = "ADDR", requires = "verify_addresses")]
    pub verify_controller: Option<String>,
    /// The ServiceRegistry for --verify-addresses instead of the Controller's; `ai` is the AI
    /// service registry on Arbitrum One, where AI orchestrators register.
    #[arg(long, value_name = "ADDR", requires = "verify_addresses")]
    pub verify_service_registry: Option<String>,
}

/// The address verifier the flags ask for, if any; a bad value is a usage error.
pub fn address_verifier(
    args: &VerifyArgs,
    http: &reqwest::Client,
) -> Result<Option<std::sync::Arc<lvt_gateway::identity::AddressVerifier>>, CliError> {
    use lvt_gateway::discovery::{ChainConfig, ChainSource};
    let Some(rpc_url) = &args.verify_addresses else {
        return Ok(None);
    };
    let defaults = ChainConfig::default();
    let config = ChainConfig {
        rpc_url: if rpc_url.is_empty() {
            defaults.rpc_url.clone()
        } else {
            rpc_url.clone()
        },
        controller: args
            .verify_controller
            .clone()
            .unwrap_or(defaults.controller.clone()),
        service_registry: args.verify_service_registry.clone(),
        ..defaults
    };
    let chain = ChainSource::try_from(config)
        .map_err(|e| CliError::Usage(format!("--verify-addresses: {e}")))?;
    Ok(Some(std::sync::Arc::new(
        lvt_gateway::identity::AddressVerifier::new(chain, http.clone()),
    )))
}
