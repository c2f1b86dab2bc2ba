//! The `portcullis` command line. Everything it does lives in the library
//! crates; this file only parses arguments, sets up logging and the runtime,
//! and reports errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

mod manage;
mod waf;

// A proxy allocates and frees small buffers for every request; mimalloc's
// thread-local free lists make that markedly cheaper than glibc's malloc
// (measured with bench/proxy.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "portcullis", version, about = "An API security gateway")]
struct Cli {
    /// Diagnostic log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Json, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand)]
enum Command {
    /// Serve with a configuration file; reload on SIGHUP or when the file
    /// changes; drain and stop on SIGTERM or SIGINT.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Compile a configuration file and report every error.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Start a sample API and the gateway in front of it, and print a tour.
    Demo {
        /// Address of the demo gateway.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Address of the admin listener.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
        /// Print the demo's configuration and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Print the JSON Schema of the configuration file.
    Schema,
    /// Generate a bearer token for the management API and print it with
    /// the `admin.token_hash` line for the configuration.
    AdminToken,
    /// Manage consumers in the configured credential store.
    #[command(subcommand)]
    Consumers(manage::ConsumersCommand),
    /// Manage API keys in the configured credential store.
    #[command(subcommand)]
    Keys(manage::KeysCommand),
    /// Manage HTTP Basic credentials in the configured credential store.
    #[command(subcommand)]
    Basic(manage::BasicCommand),
    /// The WAF engine: conformance with the Core Rule Set's regression
    /// tests, and what rules a request matches.
    #[command(subcommand)]
    Waf(waf::WafCommand),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.compact().init(),
    }
}

fn runtime(workers: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let workers =
        workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut builder = if workers <= 1 {
        // One worker: a single-threaded scheduler with no work stealing.
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    // Worker threads batch their log lines and hand them over whenever
    // they go idle (see `portcullis_telemetry::thread_idle`).
    builder
        .enable_all()
        .on_thread_park(portcullis_telemetry::thread_idle)
        .build()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Schema => {
            match serde_json::to_string_pretty(portcullis_config::schema()) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Command::AdminToken => report(manage::admin_token()),
        Command::Consumers(c) => report(manage::consumers(c)),
        Command::Keys(k) => report(manage::keys(k)),
        Command::Basic(b) => report(manage::basic(b)),
        Command::Waf(w) => waf::run(w),
        Command::Run { config } => {
            init_logging(cli.log_format);
            report(run(&config))
        }
        Command::Demo {
            listen,
            admin,
            print_config,
        } => {
            if print_config {
                let addrs = portcullis_demo::DemoAddresses {
                    gateway: listen,
                    admin,
                };
                print!(
                    "{}",
                    portcullis_demo::config_text("127.0.0.1:3000".parse().unwrap_or(listen), addrs)
                );
                return ExitCode::SUCCESS;
            }
            init_logging(cli.log_format);
            report(demo(listen, admin))
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match portcullis_config::load(path) {
        Ok(c) => {
            println!(
                "{}: ok ({} listener{}, {} upstream{}, {} route{})",
                path.display(),
                c.listeners.len(),
                plural(c.listeners.len()),
                c.upstreams.len(),
                plural(c.upstreams.len()),
                c.routes.len(),
                plural(c.routes.len()),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn run(path: &std::path::Path) -> anyhow::Result<()> {
    // Fingerprinted before reading, so a change racing the load is seen.
    let read_as = portcullis_proxy::watch::Fingerprint::of(path);
    let config = portcullis_config::load(path)
        .map_err(|e| anyhow::anyhow!("the configuration does not compile\n{e}"))?;
    let rt = runtime(config.runtime.workers)?;
    rt.block_on(async {
        let gateway = portcullis_proxy::Gateway::start(config).await?;
        portcullis_proxy::watch::spawn(&gateway, Duration::from_secs(1), Some(read_as));
        tracing::info!("gateway ready");
        gateway.run_until_signal().await?;
        Ok(())
    })
}

fn demo(listen: SocketAddr, admin: SocketAddr) -> anyhow::Result<()> {
    let rt = runtime(None)?;
    rt.block_on(async {
        let issuer = portcullis_demo::DemoIssuer::generate().map_err(|e| anyhow::anyhow!(e))?;
        let api = portcullis_demo::SampleApi::start(issuer.jwks()).await?;
        let addrs = portcullis_demo::DemoAddresses { gateway: listen, admin };
        let config = portcullis_demo::config(api.address, addrs).map_err(|e| anyhow::anyhow!("{e}"))?;
        let gateway = portcullis_proxy::Gateway::start(config).await.map_err(|e| {
            anyhow::anyhow!("{e} (is another program using the port? choose others with --listen and --admin)")
        })?;
        let gw_addr = gateway.addresses().first().map_or(listen, |(_, a)| *a);
        let admin_addr = gateway.admin_address().unwrap_or(admin);
        let (settings, auth) = gateway.auth();
        let key = portcullis_demo::seed(&settings, &auth).map_err(|e| anyhow::anyhow!(e))?;
        let token = issuer
            .token("demo-user", "orders:read")
            .map_err(|e| anyhow::anyhow!(e))?;
        eprintln!("{}", portcullis_demo::tour(gw_addr, admin_addr, &key, &token));
        gateway.run_until_signal().await?;
        Ok(())
    })
}
