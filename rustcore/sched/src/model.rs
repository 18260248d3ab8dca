//! The device model: what a node registers (inventory) and what is in use (usage).

use serde_json::Value;

/// How a physical device is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeviceMode {
    /// Shared through the in-container hook (HAMi-core): memory and SM limits.
    #[default]
    HamiCore,
    /// Partitioned by the hardware (NVIDIA Multi-Instance GPU).
    Mig,
    /// Shared through NVIDIA MPS.
    Mps,
    /// Hard-split by templates made by the vendor's runtime (Ascend vNPU templates): a node
    /// whose NPUs take no soft-split (hami-core) pods. Never on the wire: the extender sets it
    /// from the node's `hami-vnpu-core` annotation.
    Template,
}

impl DeviceMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceMode::HamiCore => "hami-core",
            DeviceMode::Mig => "mig",
            DeviceMode::Mps => "mps",
            DeviceMode::Template => "template",
        }
    }

    /// Any mode by name, `template` included (which no register annotation carries).
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "template" => Some(DeviceMode::Template),
            other => Self::parse(other),
        }
    }

    /// Parses the register annotation's `mode`; an empty value is HAMi's default, hami-core.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "hami-core" => Some(DeviceMode::HamiCore),
            "mig" => Some(DeviceMode::Mig),
            "mps" => Some(DeviceMode::Mps),
            _ => None,
        }
    }
}

/// One physical device as a node registers it (one entry of the register annotation).
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: String,
    pub index: u32,
    /// Split slots: how many containers may share the device.
    pub count: u32,
    /// Total MiB after memory scaling.
    pub devmem: u64,
    /// Total cores after core scaling (100 = one whole device).
    pub devcore: u32,
    /// The model, e.g. `NVIDIA-Tesla V100-PCIE-32GB`; the vendor key is a substring of it.
    pub type_: String,
    pub numa: i32,
    pub mode: DeviceMode,
    pub health: bool,
    /// The vendor key this device registered under (`NVIDIA`, `MLU`, ...): the annotation it
    /// came from, not a field of the annotation.
    pub vendor: String,
    /// The annotation's own `devicevendor` field (the NVIDIA plugin leaves it empty).
    pub device_vendor: String,
    /// Vendor extras kept verbatim for round-trips (`migProfiles`, `custominfo`, ...).
    pub mig_profiles: Option<Value>,
    pub custominfo: Option<Value>,
}

impl Device {
    pub fn new(id: &str, vendor: &str, type_: &str, count: u32, devmem: u64, devcore: u32) -> Self {
        Device {
            id: id.to_string(),
            index: 0,
            count,
            devmem,
            devcore,
            type_: type_.to_string(),
            numa: 0,
            mode: DeviceMode::HamiCore,
            health: true,
            vendor: vendor.to_string(),
            device_vendor: String::new(),
            mig_profiles: None,
            custominfo: None,
        }
    }
}

/// What is in use on one device: slots (containers), MiB and cores, and on a MIG-mode GPU the
/// memory slices its instances occupy (bit i = slice i) and how many of its users hold it with
/// no MIG reservation (a MIG-mode GPU with such a user is refused: what it holds is unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub used: u32,
    pub usedmem: u64,
    pub usedcores: u32,
    pub mig: u8,
    pub unreserved: u16,
}

impl Usage {
    pub const fn new(used: u32, usedmem: u64, usedcores: u32) -> Self {
        Usage {
            used,
            usedmem,
            usedcores,
            mig: 0,
            unreserved: 0,
        }
    }

    pub fn add(&mut self, other: &Usage) {
        self.used += other.used;
        self.usedmem += other.usedmem;
        self.usedcores += other.usedcores;
        self.mig |= other.mig;
        self.unreserved = self.unreserved.saturating_add(other.unreserved);
    }

    /// Reservations never share a memory slice, so removing one frees exactly its slices.
    pub fn sub(&mut self, other: &Usage) {
        self.used = self.used.saturating_sub(other.used);
        self.usedmem = self.usedmem.saturating_sub(other.usedmem);
        self.usedcores = self.usedcores.saturating_sub(other.usedcores);
        self.mig &= !other.mig;
        self.unreserved = self.unreserved.saturating_sub(other.unreserved);
    }

    pub fn max(&self, other: &Usage) -> Usage {
        Usage {
            used: self.used.max(other.used),
            usedmem: self.usedmem.max(other.usedmem),
            usedcores: self.usedcores.max(other.usedcores),
            mig: self.mig | other.mig,
            unreserved: self.unreserved.max(other.unreserved),
        }
    }
}

/// One device given to one container: what the pod annotation records
/// (`UUID,Type,Usedmem,Usedcores:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AllocDevice {
    pub uuid: String,
    /// The vendor key (`NVIDIA`), not the model.
    pub vendor: String,
    pub usedmem: u64,
    pub usedcores: u32,
}

/// The devices of each container of a pod, init containers first, then app containers.
pub type PodDevices = Vec<Vec<AllocDevice>>;
