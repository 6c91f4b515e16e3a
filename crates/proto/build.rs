//! Compiles `proto/failover/v1/failover.proto`, and the subset of etcd's v3 API that
//! failover-arbiter's etcd store speaks (`etcd/etcd_v3_subset.proto`), with protox (pure Rust,
//! no system `protoc`).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let file = "failover/v1/failover.proto";
    println!("cargo:rerun-if-changed={proto_root}/{file}");
    let descriptors = protox::compile([file], [proto_root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    let etcd_root = concat!(env!("CARGO_MANIFEST_DIR"), "/etcd");
    let etcd_file = "etcd_v3_subset.proto";
    println!("cargo:rerun-if-changed={etcd_root}/{etcd_file}");
    let etcd = protox::compile([etcd_file], [etcd_root])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_fds(etcd)?;
    Ok(())
}
