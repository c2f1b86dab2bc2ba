//! Loading certificates and keys. Used by `compile` to check them, and by
//! the proxy to reload them when their files change.

use std::path::Path;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Reads a PEM certificate chain and its key, checks they belong together,
/// and returns them with the DNS names the leaf certificate covers.
pub fn load_certificate(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<CertifiedKey>, Vec<String>), String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| {
            format!(
                "cannot read the certificate file \"{}\": {e}",
                cert.display()
            )
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "the certificate file \"{}\" is not valid PEM: {e}",
                cert.display()
            )
        })?;
    let Some(leaf) = chain.first() else {
        return Err(format!(
            "the certificate file \"{}\" holds no certificate",
            cert.display()
        ));
    };
    let names = dns_names(leaf).map_err(|e| {
        format!(
            "the certificate in \"{}\" cannot be parsed: {e}",
            cert.display()
        )
    })?;
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read a private key from \"{}\": {e}", key.display()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(chain, key_der, &provider).map_err(|e| {
        format!(
            "the key \"{}\" does not fit the certificate \"{}\": {e}",
            key.display(),
            cert.display()
        )
    })?;
    Ok((Arc::new(certified), names))
}

/// Reads every certificate of a PEM bundle (a CA file).
pub fn load_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the CA file \"{}\": {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the CA file \"{}\" is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "the CA file \"{}\" holds no certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// Certificate revocation lists from a PEM file.
pub fn load_crls(
    path: &Path,
) -> Result<Vec<rustls_pki_types::CertificateRevocationListDer<'static>>, String> {
    let crls: Vec<_> = rustls_pki_types::CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the CRL file \"{}\": {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the CRL file \"{}\" is not valid PEM: {e}", path.display()))?;
    if crls.is_empty() {
        return Err(format!("the CRL file \"{}\" holds no CRL", path.display()));
    }
    Ok(crls)
}

fn dns_names(leaf: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    Ok(names)
}
