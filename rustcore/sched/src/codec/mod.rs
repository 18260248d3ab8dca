//! HAMi's annotation formats, byte-compatible with v2.10 (`hami-control-plane.md` §3), and
//! volcano's vGPU formats (`volcano`).
//! Decoders take any text and return a typed error naming the field and position; they never
//! panic (proptest feeds them random bytes).

mod ascend;
mod extender;
pub(crate) mod gojson;
mod mig;
mod node;
mod pair;
mod pod;
mod volcano;

pub use ascend::{decode_ascend_runtime, encode_ascend_runtime, RuntimeInfo};
pub use extender::{decode_extender_args, ExtenderArgs, NodeNames};
pub use mig::{decode_mig_allocations, encode_mig_allocations, MigAlloc, MigRuntime, MIG_ALLOCATIONS};
pub use node::{
    decode_node_devices, decode_node_devices_legacy, encode_node_devices, encode_node_devices_as,
    encode_node_devices_legacy,
};
pub use pair::{decode_pair_scores, encode_pair_scores, PairScores};
pub use pod::{decode_pod_devices, encode_pod_devices};
pub use volcano::{
    decode_volcano_node_devices, decode_volcano_pod_devices, encode_volcano_node_devices, encode_volcano_pod_devices,
    VOLCANO_DEVICE_CORES,
};

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}
