//! Render throughput: validate + render of one realistic cluster (clusters/s = 1 / time).
//! `cargo bench -p kaas-render --bench render`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaas_api::{Cluster, Provider};

fn bench(c: &mut Criterion) {
    let provider: Provider =
        serde_yaml::from_str(include_str!("../../../examples/provider-openstack.yaml")).unwrap();
    let cluster: Cluster =
        serde_yaml::from_str(include_str!("../../../examples/cluster-full.yaml")).unwrap();
    let mut g = c.benchmark_group("render");
    g.throughput(Throughput::Elements(1));
    g.bench_function("validate+render openstack-scs2 (cluster-full.yaml)", |b| {
        b.iter(|| {
            let r = kaas_validate::validate(black_box(&cluster), black_box(&provider)).unwrap();
            black_box(kaas_render::render(&cluster, &r).unwrap())
        })
    });
    let resolved = kaas_validate::validate(&cluster, &provider).unwrap();
    g.bench_function("render only", |b| {
        b.iter(|| {
            black_box(kaas_render::render(black_box(&cluster), black_box(&resolved)).unwrap())
        })
    });
    g.bench_function("render + serialise to JSON", |b| {
        b.iter(|| {
            let r = kaas_render::render(black_box(&cluster), black_box(&resolved)).unwrap();
            black_box(serde_json::to_vec(&r.objects()).unwrap())
        })
    });
    // Baseline in the same run: serialising objects that are already rendered — the floor any
    // controller writing these objects pays, whatever it does before.
    let prerendered = kaas_render::render(&cluster, &resolved).unwrap().objects();
    g.bench_function("baseline: serialise pre-rendered objects to JSON", |b| {
        b.iter(|| black_box(serde_json::to_vec(black_box(&prerendered)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
