//! Connections to targets: TCP with a connect timeout, optionally TLS with
//! the certificate verified against the configured roots and name.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use portcullis_config::runtime::{Target, Upstream};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A connection to a target.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Opens connections to an upstream's targets.
pub struct Connector {
    tls: Option<(TlsConnector, Option<ServerName<'static>>)>,
    connect_timeout: Duration,
}

impl Connector {
    pub fn new(spec: &Upstream) -> Result<Self, String> {
        let tls = match &spec.tls {
            None => None,
            Some(t) => {
                let mut roots = rustls::RootCertStore::empty();
                if t.ca_certs.is_empty() {
                    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                } else {
                    for c in &t.ca_certs {
                        roots
                            .add(c.clone())
                            .map_err(|e| format!("a CA certificate is not usable: {e}"))?;
                    }
                }
                let mut config =
                    rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                        .with_safe_default_protocol_versions()
                        .map_err(|e| e.to_string())?
                        .with_root_certificates(roots)
                        .with_no_client_auth();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                let name = match &t.server_name {
                    Some(n) => Some(
                        ServerName::try_from(n.clone()).map_err(|e| format!("server name: {e}"))?,
                    ),
                    None => None,
                };
                Some((TlsConnector::from(Arc::new(config)), name))
            }
        };
        Ok(Connector {
            tls,
            connect_timeout: spec.connect_timeout,
        })
    }

    /// Connects (and handshakes) within the connect timeout.
    pub async fn connect(&self, target: &Target) -> io::Result<Stream> {
        let work = async {
            let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
            tcp.set_nodelay(true)?;
            match &self.tls {
                None => Ok(Stream::Plain(tcp)),
                Some((connector, name)) => {
                    let name = match name {
                        Some(n) => n.clone(),
                        None => ServerName::try_from(target.host.clone())
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
                    };
                    let tls = connector.connect(name, tcp).await?;
                    Ok(Stream::Tls(Box::new(tls)))
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        }
    }
}
