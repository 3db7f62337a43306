//! One module per `kaas` subcommand.

pub mod adopt;
pub mod check;
pub mod crds;
pub mod describe;
pub mod dev;
pub mod doctor;
pub mod hosted_runtime;
pub mod kubeconfig;
pub mod migrate;
pub mod operator;
pub mod plan;
pub mod render;
pub mod serve;
pub mod stack;
pub mod validate;

/// The client configuration of `--kubeconfig`, else `$KUBECONFIG`, else the usual inference
/// (`~/.kube/config`, in-cluster); `hint` says what to do when there is none.
pub async fn kube_config(
    kubeconfig: Option<&std::path::Path>,
    hint: &'static str,
) -> anyhow::Result<kube::Config> {
    use anyhow::Context as _;
    let path = kubeconfig
        .map(std::path::Path::to_path_buf)
        .or_else(|| std::env::var_os("KUBECONFIG").map(std::path::PathBuf::from));
    Ok(match &path {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)
                .with_context(|| format!("reading {}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?
        }
        None => kube::Config::infer().await.context(hint)?,
    })
}
