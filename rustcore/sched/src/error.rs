//! The crate's one error type. Every failure a caller can cause is a variant with the field
//! and position that was wrong; the binding turns it into a Python exception once, at the edge.

use std::fmt;

/// Which wire format a decode error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    NodeRegister,
    NodeRegisterLegacy,
    PodDevices,
    PairScores,
    ScoringWeights,
    Policy,
    PodSpec,
    PodList,
    Quantity,
    ExtenderArgs,
    AscendRuntime,
    VolcanoNodeRegister,
    VolcanoPodDevices,
    MigAllocations,
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::NodeRegister => "node register annotation",
            Codec::NodeRegisterLegacy => "node register annotation (legacy colon format)",
            Codec::PodDevices => "pod device annotation",
            Codec::PairScores => "pair-score annotation",
            Codec::ScoringWeights => "hami.io/device-scoring-weights",
            Codec::Policy => "scheduler policy",
            Codec::PodSpec => "pod",
            Codec::PodList => "pod list page",
            Codec::Quantity => "resource quantity",
            Codec::ExtenderArgs => "ExtenderArgs",
            Codec::AscendRuntime => "Ascend runtime annotation (huawei.com/<CW>)",
            Codec::VolcanoNodeRegister => "volcano node register annotation (volcano.sh/node-vgpu-register)",
            Codec::VolcanoPodDevices => "volcano pod device annotation",
            Codec::MigAllocations => "MIG reservation annotation (hami.io/vgpu-mig-allocations)",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Malformed input: which format, which field, where, and what was wrong.
    #[error("{codec}: {field} at {position}: {message}")]
    Decode {
        codec: Codec,
        field: String,
        position: String,
        message: String,
    },
    /// A request that can never be valid (negative count, percentage over 100, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A resource value a container gives that no request can take; the message names the
    /// container and the resource and says what to write instead.
    #[error("{0}")]
    Resource(String),
    /// A filter that would reserve devices for a pod the state holds as bound: the bound
    /// allocation is the truth (the pod's annotations say so), and replacing it would free
    /// devices the pod still uses.
    #[error("pod {pod} is bound to node {node} already; it is not placed again")]
    AlreadyBound { pod: String, node: String },
    /// A vendor key that no backend serves.
    #[error("unknown vendor {0:?}: no vendor of this cluster's device config has that key")]
    UnknownVendor(String),
}

impl Error {
    pub fn decode(
        codec: Codec,
        field: impl Into<String>,
        position: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Decode {
            codec,
            field: field.into(),
            position: position.into(),
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
