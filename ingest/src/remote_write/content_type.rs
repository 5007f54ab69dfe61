//! Choosing the schema from `Content-Type` and checking `Content-Encoding`, as the 2.0 spec requires.

use super::decoded::RemoteWriteVersion;
use super::error::RemoteWriteError;

/// `application/x-protobuf` with no `proto` parameter, or `proto=prometheus.WriteRequest`, is 1.0;
/// `proto=io.prometheus.write.v2.Request` is 2.0; anything else is 415. A missing header is taken as 1.0,
/// as Prometheus' own receiver does for old senders.
pub(crate) fn version_from_content_type(header: Option<&str>) -> Result<RemoteWriteVersion, RemoteWriteError> {
    let Some(raw) = header else { return Ok(RemoteWriteVersion::V1) };
    let mut parts = raw.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/x-protobuf") {
        return Err(RemoteWriteError::UnsupportedContentType(raw.to_owned()));
    }
    let mut version = RemoteWriteVersion::V1;
    for param in parts {
        let Some((key, value)) = param.split_once('=') else { continue };
        if key.trim().eq_ignore_ascii_case("proto") {
            version = match value.trim().trim_matches('"') {
                "prometheus.WriteRequest" => RemoteWriteVersion::V1,
                "io.prometheus.write.v2.Request" => RemoteWriteVersion::V2,
                _ => return Err(RemoteWriteError::UnsupportedContentType(raw.to_owned())),
            };
        }
    }
    Ok(version)
}

/// Only snappy is defined for remote write. A missing header is taken as snappy (Prometheus does the same).
pub(crate) fn check_encoding(header: Option<&str>) -> Result<(), RemoteWriteError> {
    match header.map(str::trim) {
        None | Some("") => Ok(()),
        Some(enc) if enc.eq_ignore_ascii_case("snappy") => Ok(()),
        Some(enc) => Err(RemoteWriteError::UnsupportedEncoding(enc.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_spec() {
        use RemoteWriteVersion::*;
        let ok = |h: Option<&str>| version_from_content_type(h).unwrap();
        assert_eq!(ok(None), V1);
        assert_eq!(ok(Some("application/x-protobuf")), V1);
        assert_eq!(ok(Some("application/x-protobuf;proto=prometheus.WriteRequest")), V1);
        assert_eq!(ok(Some("application/x-protobuf; proto=io.prometheus.write.v2.Request")), V2);
        for bad in ["application/json", "image/png", "application/x-protobuf;proto=io.prometheus.write.v3.Request"] {
            assert!(
                matches!(version_from_content_type(Some(bad)), Err(RemoteWriteError::UnsupportedContentType(_))),
                "{bad}"
            );
        }
        assert!(check_encoding(Some("snappy")).is_ok());
        assert!(check_encoding(None).is_ok());
        assert!(check_encoding(Some("gzip")).is_err());
        assert!(check_encoding(Some("deflate")).is_err());
    }
}
