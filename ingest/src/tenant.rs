//! The tenant of a request: `X-Scope-OrgID`, as Tempo, Loki and Mimir read it. Every receiver uses these
//! rules, so a tenant accepted by one signal is accepted by all.

use std::sync::Arc;

/// Header (HTTP) and metadata key (gRPC) naming the tenant.
pub const HEADER: &str = "x-scope-orgid";

/// Tempo's (dskit's) tenant id rules: at most 150 bytes of `[A-Za-z0-9!-_.*'()]`, not `.` or `..`. Checked
/// here so a bad id is refused to the sender instead of being dropped later by the backend.
pub fn validate_tenant(tenant: &str) -> Result<(), String> {
    if tenant.is_empty() || tenant.len() > 150 {
        return Err(format!("tenant id must be 1 to 150 bytes, got {}", tenant.len()));
    }
    if tenant == "." || tenant == ".." {
        return Err("tenant id must not be \".\" or \"..\"".into());
    }
    if let Some(c) = tenant.chars().find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(*c))) {
        return Err(format!("tenant id contains {c:?}; allowed: letters, digits and !-_.*'()"));
    }
    Ok(())
}

/// The header's tenant, or `default` when the header is absent.
pub fn tenant_of(header: Option<&[u8]>, default: &str) -> Result<Arc<str>, String> {
    match header {
        Some(raw) => checked(raw).map(Arc::from),
        None => Ok(Arc::from(default)),
    }
}

/// A header value as a tenant id, if it is a valid one.
fn checked(raw: &[u8]) -> Result<&str, String> {
    let tenant = std::str::from_utf8(raw).map_err(|_| "tenant id is not UTF-8".to_owned())?.trim();
    validate_tenant(tenant)?;
    Ok(tenant)
}

/// Why a metrics request's tenant was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TenantError {
    #[error("invalid X-Scope-OrgID: {0}")]
    Invalid(String),
    #[error("{0}")]
    Limit(#[from] crate::series::RegistryError),
}

/// The series tenant named by a metrics request's `X-Scope-OrgID` header, or the registry's default tenant
/// when there is none.
pub fn series_tenant(
    header: Option<&[u8]>,
    registry: &crate::series::SeriesRegistry,
) -> Result<crate::series::Tenant, TenantError> {
    let Some(raw) = header else { return Ok(registry.default_tenant()) };
    Ok(registry.tenant(checked(raw).map_err(TenantError::Invalid)?)?)
}
