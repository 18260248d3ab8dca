//! The scheduling core of hami-rs: the device and request model, HAMi-compatible fit and
//! score, the cluster usage state, and HAMi's annotation codecs. No Python here; the binding
//! crate (`rustcore/py`) only converts types and errors.

pub mod admit;
pub mod ascend;
pub mod burst;
pub mod codec;
pub mod error;
pub mod fit;
pub mod mig;
pub mod model;
pub mod node;
pub mod podlist;
pub mod policy;
pub mod quantity;
pub mod reason;
pub mod request;
pub mod state;
pub mod table;
pub mod vendor;

pub use admit::{admit_pod, quota_request, ContainerAdmission, PodAdmission};
pub use burst::Burst;
pub use error::{Error, Result};
pub use model::{AllocDevice, Device, DeviceMode, PodDevices, Usage};
pub use policy::{GpuPolicy, NodePolicy, Weights};
pub use reason::Reason;
pub use request::{ContainerRequest, DeviceRequest, PodRequest, Selectors};
pub use state::{Cluster, DeviceUsageView, FilterResult, PodAlloc};
pub use vendor::{VendorRules, VendorSpec, Vendors};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
