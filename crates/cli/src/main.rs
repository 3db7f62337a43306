//! `kaas`: Kubernetes as a Service for sovereign cloud providers.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod cmd;
mod docs;
mod wait;

/// kaas: one provider-independent description of a Kubernetes cluster (the SCS-API), realised by
/// the provider's backend.
#[derive(Parser, Debug)]
#[command(name = "kaas", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For people.
    #[default]
    Text,
    /// YAML.
    Yaml,
    /// JSON, for machines.
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the SCS-API CRDs (Cluster, Provider).
    Crds {
        /// yaml (default) or json.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Yaml)]
        output: OutputFormat,
        /// Also print the MutatingAdmissionPolicy that gives every new Cluster kaas' finalizer
        /// (Kubernetes 1.36+; only where one operator instance handles every provider).
        #[arg(long)]
        finalizer_policy: bool,
    },
    /// Check Cluster/Provider files: the CRD's schema and CEL rules, and each Cluster against its
    /// Provider offering. Exit 0 valid, 1 invalid, 2 usage or IO error.
    Validate {
        /// Files with Cluster and/or Provider documents (`-` for standard input).
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        /// Files with Provider offerings to check clusters against.
        #[arg(short, long = "provider")]
        providers: Vec<PathBuf>,
        /// text (errors on stderr) or json (a report on stdout).
        #[arg(short, long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Print the Cluster API objects kaas writes for each Cluster (validated first).
    Render {
        /// Files with Cluster documents (and optionally Providers).
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        /// Files with Provider offerings.
        #[arg(short, long = "provider")]
        providers: Vec<PathBuf>,
        /// yaml (default) or json.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Yaml)]
        output: OutputFormat,
    },
    /// What a change to a Cluster will do: the spec diff, what rolls and in which order, upgrade
    /// steps, the maintenance window, the objects that change — or why it is refused (exit 1).
    Plan(cmd::plan::Args),
    /// Black-box SCS KaaS compliance checks of any cluster (exit 0 pass, 1 fail, 2 abort/usage).
    Check(cmd::check::Args),
    /// A local KaaS: management plane, kaas, a demo tenant and cluster.
    #[command(subcommand)]
    Dev(cmd::dev::Dev),
    /// Run the operator (controllers) against the management cluster of the current kubeconfig.
    Operator(cmd::operator::Args),
    /// Run the local-process runtime of hosted control planes (`HostedControlPlane`, runtime `local`).
    HostedRuntime(cmd::hosted_runtime::Args),
    /// Show an object with everything below it: `kaas describe cluster NAME -n NS`.
    #[command(subcommand)]
    Describe(cmd::describe::Describe),
    /// What an SCS Cluster waits for, what failed and what to do. Exit 0 healthy (Ready, nothing
    /// failing); 1 progressing, degraded (Ready, but extensions or compliance fail) or failed;
    /// 2 on error.
    Diagnose(cmd::describe::Target),
    /// Serve the REST API (OpenAPI at /api/v1/openapi.json) and the web GUI (/ui) for the
    /// provider's customers; every call acts with the caller's own token.
    Serve(cmd::serve::Args),
    /// An SCS Cluster from the settings of a KaaS v1 (k8s-cluster-api-provider) cluster
    /// (clusterctl.yaml); the report says what became of every key. Exit 0, 2 on error.
    Migrate(cmd::migrate::Args),
    /// Adopt an existing Cluster API cluster (built on a ClusterClass) as an SCS Cluster managed
    /// by kaas, in place: no machine is recreated or rolled. Exit 0 adopted (or adoptable with
    /// --dry-run), 1 refused (nothing written), 2 on error.
    Adopt(cmd::adopt::Args),
    /// Check a management cluster's prerequisites (Cluster API, kaas CRDs and policies, each
    /// Provider's ClusterClasses, credentials, addon bundles, the operator's lease), each with its
    /// fix. Exit 0 all ok, 1 a problem, 2 could not check.
    Doctor(cmd::doctor::Args),
    /// A short-lived kubeconfig for a workload cluster (`KubeconfigRequest`): waits until the
    /// operator issues it and prints it. Exit 0 issued, 2 refused or on error.
    Kubeconfig(cmd::kubeconfig::Args),
    /// Stack bundles the SCS way: `kaas stack build` renders a stack layout (clusteraddon.yaml,
    /// wrapper charts) with helm into an addon bundle (docs/stacks.md). Exit 0, 2 on error.
    #[command(subcommand)]
    Stack(cmd::stack::Stack),
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("KAAS_LOG").unwrap_or_else(|_| EnvFilter::new("info,kube=warn"));
    let json = std::env::var("KAAS_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => {
            return match runtime().block_on(cmd::check::run(args)) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("kaas: {e:#}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Doctor(args) => {
            return match runtime().block_on(cmd::doctor::run(args)) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("kaas: {e:#}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Dev(dev) => runtime().block_on(cmd::dev::run(dev)).map(|()| true),
        Command::Describe(what) => runtime()
            .block_on(cmd::describe::describe(what))
            .map(|()| true),
        Command::Diagnose(target) => runtime().block_on(cmd::describe::diagnose(target)),
        Command::Serve(args) => {
            init_tracing();
            runtime().block_on(cmd::serve::run(args)).map(|()| true)
        }
        Command::Operator(args) => {
            init_tracing();
            runtime().block_on(cmd::operator::run(args)).map(|()| true)
        }
        Command::HostedRuntime(args) => {
            init_tracing();
            runtime()
                .block_on(cmd::hosted_runtime::run(args))
                .map(|()| true)
        }
        Command::Crds {
            output,
            finalizer_policy,
        } => cmd::crds::run(output, finalizer_policy).map(|()| true),
        Command::Validate {
            files,
            providers,
            output,
        } => cmd::validate::run(&files, &providers, output),
        Command::Migrate(args) => cmd::migrate::run(args),
        Command::Adopt(args) => runtime().block_on(cmd::adopt::run(args)),
        Command::Kubeconfig(args) => runtime()
            .block_on(cmd::kubeconfig::run(args))
            .map(|()| true),
        Command::Render {
            files,
            providers,
            output,
        } => cmd::render::run(&files, &providers, output),
        Command::Plan(args) => runtime().block_on(cmd::plan::run(args)),
        Command::Stack(cmd) => cmd::stack::run(cmd),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kaas: {e:#}");
            ExitCode::from(2)
        }
    }
}
