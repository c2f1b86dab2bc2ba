//! A throwaway certificate authority for TLS tests.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Portcullis Test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        let pem = cert.pem();
        TestCa {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// The CA certificate as PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A leaf certificate for `names`: (certificate PEM, key PEM).
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.pem.as_bytes()).unwrap())
            .unwrap();
        roots
    }

    /// A rustls client trusting this CA, limited to `versions`, offering `alpn`.
    pub fn client_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut c = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(self.roots())
            .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        Arc::new(c)
    }

    /// A client certificate: common name `cn`, SAN e-mail `email`; returns
    /// (certificate PEM, key PEM, serial number).
    pub fn issue_client(&self, cn: &str, email: &str, serial: u64) -> (String, String, u64) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = vec![rcgen::SanType::Rfc822Name(email.try_into().unwrap())];
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), serial)
    }

    /// A CRL of this CA revoking these serial numbers, as PEM.
    pub fn crl(&self, revoked: &[u64]) -> String {
        let now = rcgen::date_time_ymd(2026, 1, 1);
        let params = rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: rcgen::date_time_ymd(2036, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*s),
                    revocation_time: now,
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().pem().unwrap()
    }

    /// An HTTPS client trusting this CA, presenting `identity` (certificate
    /// and key PEM) when given, resolving `names` to `addr`.
    pub fn reqwest_with_identity(
        &self,
        names: &[&str],
        addr: SocketAddr,
        identity: Option<(&str, &str)>,
    ) -> reqwest::Client {
        use rustls_pki_types::PrivateKeyDer;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots());
        let mut config = match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(cert.as_bytes())
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap(),
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut b = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .timeout(std::time::Duration::from_secs(10));
        for n in names {
            b = b.resolve(n, addr);
        }
        b.build().unwrap()
    }

    /// An HTTPS client trusting this CA that resolves `names` to `addr`.
    pub fn reqwest(&self, names: &[&str], addr: SocketAddr, http2: bool) -> reqwest::Client {
        let alpn: &[&[u8]] = if http2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        let config = self.client_config(&[&rustls::version::TLS13, &rustls::version::TLS12], alpn);
        let mut b = reqwest::Client::builder()
            .tls_backend_preconfigured((*config).clone())
            .timeout(std::time::Duration::from_secs(10));
        for n in names {
            b = b.resolve(n, addr);
        }
        b.build().unwrap()
    }
}
