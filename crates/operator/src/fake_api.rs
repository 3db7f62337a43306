//! Unit-test support: a kube `Client` whose requests a function answers instead of an API server
//! (the real API server is in the integration tests; this covers what one cannot make fail).

use std::sync::Arc;

type Request = http::Request<kube::client::Body>;
type Answer = Arc<dyn Fn(&Request) -> (u16, String) + Send + Sync>;

#[derive(Clone)]
struct FakeApi(Answer);

impl tower::Service<Request> for FakeApi {
    type Response = http::Response<kube::client::Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let (status, body) = (self.0)(&req);
        std::future::ready(Ok(http::Response::builder()
            .status(status)
            .body(kube::client::Body::from(body.into_bytes()))
            .expect("a status code and a body make a response")))
    }
}

/// A client (default namespace `default`) whose every request `answer` answers with a status
/// code and a JSON body.
pub(crate) fn client(
    answer: impl Fn(&Request) -> (u16, String) + Send + Sync + 'static,
) -> kube::Client {
    kube::Client::new(FakeApi(Arc::new(answer)), "default")
}

/// An operator context around `client` (every cache empty unless given: `clusters`, `capi`).
pub(crate) fn context(
    client: kube::Client,
    clusters: kube::runtime::reflector::Store<kaas_api::Cluster>,
    capi: crate::backend::capi::CapiCache,
) -> crate::Context {
    crate::Context {
        client: client.clone(),
        recorder: crate::events::Publisher::new(
            client,
            kube::runtime::events::Reporter {
                controller: "kaas-operator".into(),
                instance: None,
            },
        ),
        metrics: Default::default(),
        providers: Default::default(),
        provider_store: kube::runtime::reflector::store().0,
        clusters,
        written: Default::default(),
        settled: Arc::new(crate::settled::memo()),
        settled_requeue: std::time::Duration::from_secs(300),
        namespaces: Default::default(),
        echoes: Default::default(),
        capi: Arc::new(capi),
        release_data: None,
        fence: None,
    }
}

/// A reflector store filled with `objects`, as a watch's first list leaves it.
pub(crate) fn filled<K>(objects: &[K]) -> kube::runtime::reflector::Store<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    use kube::runtime::watcher::Event;
    let (store, mut writer) = kube::runtime::reflector::store();
    writer.apply_watcher_event(&Event::Init);
    for o in objects {
        writer.apply_watcher_event(&Event::InitApply(o.clone()));
    }
    writer.apply_watcher_event(&Event::InitDone);
    store
}
