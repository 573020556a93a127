//! TLS client settings shared by the network transports: the server certificate is always
//! verified, against the system roots plus an optional CA file (upstream skips verification).

use native_tls::{Certificate, TlsConnector};

/// A connector trusting the system roots and, if given, the PEM certificates in `ca_file`.
/// Errors name the file.
pub fn connector(ca_file: Option<&str>) -> Result<TlsConnector, String> {
    connector_with(ca_file, true)
}

/// [`connector`]; with `verify` false the server certificate and host name are not checked
/// (an explicit opt-out, warned by the configuration at every start).
pub fn connector_with(ca_file: Option<&str>, verify: bool) -> Result<TlsConnector, String> {
    let mut b = TlsConnector::builder();
    if !verify {
        b.danger_accept_invalid_certs(true);
        b.danger_accept_invalid_hostnames(true);
    }
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("{ca}: {e}"))?;
        let cert = Certificate::from_pem(&pem).map_err(|e| format!("{ca}: {e}"))?;
        b.add_root_certificate(cert);
    }
    b.build().map_err(|e| e.to_string())
}
