//! The HTTP client every forwarder shares: keep-alive connection pool, HTTP/1.1, no TLS yet.

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(std::time::Duration::from_secs(10)));
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build(connector)
}

/// Parses a destination URL from the configuration at `key` (e.g. `forward.loki`): what [`client`] can
/// reach, that is `http://` with a host (no TLS yet).
pub fn parse_url(key: &str, url: &str) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|e| format!("{key} url {url:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(format!("{key} url {url:?}: https is not supported yet")),
        _ => return Err(format!("{key} url {url:?} must start with http://")),
    }
    if uri.host().is_none() {
        return Err(format!("{key} url {url:?} has no host"));
    }
    Ok(uri)
}
