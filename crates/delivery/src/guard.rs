//! SSRF protection: webhook targets on loopback, private, link-local or metadata addresses are
//! refused, on the addresses a host name resolves to at the time of each delivery (so a name
//! that later resolves inward is still refused), unless private targets are allowed.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use wagroups_core::webhook::{forbidden_reason, is_forbidden_ip, is_forbidden_name};

/// How long a registration waits for a host name to resolve before accepting it (it is
/// checked again at every delivery).
const REGISTRATION_LOOKUP: std::time::Duration = std::time::Duration::from_secs(3);

/// A DNS resolver that drops forbidden addresses (and fails when none is left).
#[derive(Clone)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs = resolve_allowed(&host, allow).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The addresses of `host` a webhook may be sent to.
pub async fn resolve_allowed(
    host: &str,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    if !allow_private && is_forbidden_name(host) {
        return Err(format!("refused: {host} names this machine ({})", forbidden_reason()).into());
    }
    let all: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
    let allowed: Vec<SocketAddr> = all
        .iter()
        .copied()
        .filter(|a| allow_private || !is_forbidden_ip(a.ip()))
        .collect();
    if allowed.is_empty() {
        let ips: Vec<String> = all.iter().map(|a| a.ip().to_string()).collect();
        return Err(format!(
            "refused: {host} resolves to {} ({})",
            ips.join(", "),
            forbidden_reason()
        )
        .into());
    }
    Ok(allowed)
}

/// Refuses an IP-literal target in a forbidden range (host names are checked by the
/// resolver when the request is sent).
pub fn check_literal(url: &reqwest::Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    if is_forbidden_ip(ip) {
        Err(format!("refused: {ip} is a {}", forbidden_reason()))
    } else {
        Ok(())
    }
}

/// Checks a target before it is registered: IP literals directly, host names on what they
/// resolve to now. A name that does not resolve now is accepted (it is checked again at
/// every delivery). Returns the reason for a refusal.
pub async fn check_target(url: &reqwest::Url, allow_private: bool) -> Result<(), String> {
    check_literal(url, allow_private)?;
    if allow_private {
        return Ok(());
    }
    match url.host() {
        Some(url::Host::Domain(d)) => {
            match tokio::time::timeout(REGISTRATION_LOOKUP, resolve_allowed(d, false)).await {
                Ok(Err(e)) if e.to_string().starts_with("refused") => Err(e.to_string()),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// The HTTP client for deliveries: no redirects (a 3xx is a failure), the guarded resolver,
/// and room to keep alive a connection for every attempt that may be in flight (many
/// endpoints may share a host).
pub fn client(allow_private: bool, max_in_flight: usize) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // A proxy from the environment would resolve the target itself, past the guard.
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .user_agent(concat!("wagroups-webhooks/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(max_in_flight.max(1))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn localhost_is_refused_unless_allowed() {
        let url: reqwest::Url = "http://localhost:9/hook".parse().unwrap();
        let err = check_target(&url, false).await.unwrap_err();
        assert!(err.starts_with("refused") && err.contains("localhost"), "{err}");
        assert!(check_target(&url, true).await.is_ok());
        let lit: reqwest::Url = "http://169.254.169.254/latest".parse().unwrap();
        assert!(check_target(&lit, false).await.is_err());
        assert!(resolve_allowed("localhost", false).await.is_err());
        assert!(resolve_allowed("localhost", true).await.is_ok());
    }

    /// At delivery, every spelling of a forbidden target is refused before a connection is
    /// made: IP literals by `check_literal`, names by the resolver.
    #[tokio::test]
    async fn every_spelling_of_a_forbidden_target_is_refused_at_delivery() {
        for lit in [
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b:1::a00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[::ffff:0:7f00:1]/",
        ] {
            let url: reqwest::Url = lit.parse().unwrap();
            assert!(check_literal(&url, false).is_err(), "{lit} passed at delivery");
            assert!(check_literal(&url, true).is_ok());
        }
        for name in ["localhost.", "LocalHost", "x.localhost."] {
            let err = resolve_allowed(name, false).await.unwrap_err().to_string();
            assert!(err.starts_with("refused"), "{name}: {err}");
        }
    }
}
