//! The access settings: who may reach the daemon from where, and how long
//! a sign-in lasts. Parsed with the rest of [`Settings`](super::Settings);
//! the names and defaults are documented in [`SETTINGS`](super::SETTINGS).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use actix_web::http::header::HeaderName;
use pinkpage_actors::access::Role;

use super::env::{Env, SettingsError};

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`; a bare address is
/// the one-address network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr[/prefix]`.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr.trim().parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Cidr { network, prefix })
    }

    /// Whether `ip` is inside this network (an IPv4-mapped IPv6 address
    /// counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Identity and request-origin settings.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// Origins (`scheme://host[:port]`, lower case) besides the daemon's
    /// own that may open WebSockets, send state-changing requests and read
    /// responses through CORS with credentials.
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted (a name matches any port; `name:port` only
    /// that port). Anything else is refused, which stops DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Reverse proxies whose forwarding headers (and user header) are
    /// believed.
    pub trusted_proxies: Vec<Cidr>,
    /// The header a trusted proxy names the signed-in user with.
    pub proxy_user_header: Option<HeaderName>,
    /// The role given to a proxy user with no local account; `None`
    /// refuses such users.
    pub proxy_autocreate_role: Option<Role>,
    /// Whether the session cookie carries `Secure`.
    pub cookie_secure: bool,
    /// A sign-in session unused this long ends.
    pub session_idle: Duration,
    /// A sign-in session ends this long after sign-in, used or not.
    pub session_max: Duration,
    /// Failed logins (per address, per name) allowed before the next
    /// attempt must wait.
    pub login_max_failures: u32,
    /// How long failures are remembered.
    pub login_window: Duration,
    /// The longest wait imposed on a login attempt.
    pub login_max_delay: Duration,
    /// Sign-in sessions one user may hold; the oldest ends past it.
    pub sessions_per_user: usize,
    /// How often throttled and surplus failed logins are summarised in
    /// the audit trail.
    pub login_audit_interval: Duration,
    /// Failed-login rows written one by one per interval, and summary rows
    /// per interval.
    pub login_audit_rows: usize,
}

impl AccessSettings {
    /// Whether `peer` is a trusted proxy.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(peer))
    }
}

/// Normalises an origin for comparison: lower case, no trailing slash,
/// default ports dropped.
pub fn normalise_origin(origin: &str) -> String {
    let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    if let Some(rest) = o.strip_prefix("http://") {
        format!("http://{}", rest.strip_suffix(":80").unwrap_or(rest))
    } else if let Some(rest) = o.strip_prefix("https://") {
        format!("https://{}", rest.strip_suffix(":443").unwrap_or(rest))
    } else {
        o
    }
}

/// Reads the access settings; `bind` gives the default allowed host.
pub(super) fn parse(env: &Env<'_>, bind: SocketAddr) -> Result<AccessSettings, SettingsError> {
    let list = |name: &str| -> Vec<String> {
        env.get(name)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };

    let mut allowed_origins = Vec::new();
    for o in list("PINKPAGE_ALLOWED_ORIGINS") {
        if o == "*" || !(o.starts_with("http://") || o.starts_with("https://")) {
            return Err(SettingsError::new(
                "PINKPAGE_ALLOWED_ORIGINS",
                format!(
                    "'{o}' is not an origin like https://console.example.com (a wildcard is never allowed)"
                ),
            ));
        }
        allowed_origins.push(normalise_origin(&o));
    }

    let mut allowed_hosts: Vec<String> = list("PINKPAGE_ALLOWED_HOSTS")
        .into_iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    if allowed_hosts.is_empty() {
        allowed_hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "[::1]".to_owned()];
        let ip = bind.ip();
        if !ip.is_unspecified() {
            let own = match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            if !allowed_hosts.contains(&own) {
                allowed_hosts.push(own);
            }
        }
    }

    let mut trusted_proxies = Vec::new();
    for c in list("PINKPAGE_TRUSTED_PROXIES") {
        trusted_proxies.push(Cidr::parse(&c).ok_or_else(|| {
            SettingsError::new(
                "PINKPAGE_TRUSTED_PROXIES",
                format!("'{c}' is not an address or a network like 10.0.0.0/8"),
            )
        })?);
    }

    let proxy_user_header = match env.get("PINKPAGE_AUTH_PROXY_HEADER") {
        None => None,
        Some(h) => Some(HeaderName::from_bytes(h.trim().as_bytes()).map_err(|_| {
            SettingsError::new(
                "PINKPAGE_AUTH_PROXY_HEADER",
                format!("'{h}' is not a header name"),
            )
        })?),
    };
    if proxy_user_header.is_some() && trusted_proxies.is_empty() {
        return Err(SettingsError::new(
            "PINKPAGE_AUTH_PROXY_HEADER",
            "needs PINKPAGE_TRUSTED_PROXIES: the header is only believed from a listed proxy",
        ));
    }
    let proxy_autocreate_role = match env.get("PINKPAGE_AUTH_PROXY_AUTOCREATE_ROLE") {
        None => None,
        Some(r) => Some(
            r.trim()
                .parse::<Role>()
                .map_err(|e| SettingsError::new("PINKPAGE_AUTH_PROXY_AUTOCREATE_ROLE", e))?,
        ),
    };

    let cookie_secure = env.parse_or("PINKPAGE_COOKIE_SECURE", false, |_| true)?;
    let session_idle = env.seconds("PINKPAGE_SESSION_IDLE_S", 1800.0)?;
    let session_max = env.seconds("PINKPAGE_SESSION_MAX_S", 43_200.0)?;
    if session_max < session_idle {
        return Err(SettingsError::new(
            "PINKPAGE_SESSION_MAX_S",
            "must not be shorter than PINKPAGE_SESSION_IDLE_S",
        ));
    }
    Ok(AccessSettings {
        allowed_origins,
        allowed_hosts,
        trusted_proxies,
        proxy_user_header,
        proxy_autocreate_role,
        cookie_secure,
        session_idle,
        session_max,
        login_max_failures: env.parse_or("PINKPAGE_LOGIN_MAX_FAILURES", 5u32, |n| *n > 0)?,
        login_window: env.seconds("PINKPAGE_LOGIN_WINDOW_S", 900.0)?,
        login_max_delay: env.seconds("PINKPAGE_LOGIN_MAX_DELAY_S", 30.0)?,
        sessions_per_user: env.parse_or("PINKPAGE_SESSIONS_PER_USER", 20usize, |n| *n > 0)?,
        login_audit_interval: env.seconds("PINKPAGE_LOGIN_AUDIT_INTERVAL_S", 60.0)?,
        login_audit_rows: env.parse_or("PINKPAGE_LOGIN_AUDIT_ROWS", 100usize, |n| *n > 0)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_contain_what_they_should() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("::1/128").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("example.com").is_none());
    }

    #[test]
    fn origins_are_normalised() {
        assert_eq!(
            normalise_origin("HTTPS://Console.Example:443/"),
            "https://console.example"
        );
        assert_eq!(normalise_origin("http://a:8080"), "http://a:8080");
    }
}
