//! TLS client settings shared by the network transports: the server certificate is always
//! verified, against the system roots plus an optional CA file (upstream skips verification).

use native_tls::{Certificate, TlsConnector};

/// TLS settings that cannot be used; errors name the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {reason}")]
    Pem { file: String, reason: String },
    #[error("{0}")]
    Build(#[from] native_tls::Error),
}

/// A connector trusting the system roots and, if given, the PEM certificates in `ca_file`.
pub fn connector(ca_file: Option<&str>) -> Result<TlsConnector, TlsError> {
    let mut b = TlsConnector::builder();
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca).map_err(|source| TlsError::Read {
            file: ca.into(),
            source,
        })?;
        let cert = Certificate::from_pem(&pem).map_err(|e| TlsError::Pem {
            file: ca.into(),
            reason: e.to_string(),
        })?;
        b.add_root_certificate(cert);
    }
    Ok(b.build()?)
}
