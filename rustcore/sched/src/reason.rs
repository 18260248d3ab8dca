//! Failure reasons: HAMi's stable strings, so logs, metrics and the UI can count them, and the
//! per-node summary in HAMi's format ("1/4 CardInsufficientMemory, 3/4 CardTimeSlicingExhausted").

/// Why one device (or a whole node) could not take a container. The string of each variant is
/// the constant HAMi uses (`pkg/device/common/common.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    CardNotHealth,
    CardCordoned,
    CardTypeMismatch,
    NumaNotFit,
    CardUuidMismatch,
    CardTimeSlicingExhausted,
    ExclusiveDeviceAllocateConflict,
    ResourceQuotaNotFit,
    CardInsufficientMemory,
    CardInsufficientCore,
    CardComputeUnitsExhausted,
    NodeInsufficientDevice,
    AllocatedCardsInsufficientRequest,
    ModeNotFit,
    CardMigTopologyInfeasible,
}

pub const ALL_REASONS: [Reason; 15] = [
    Reason::CardNotHealth,
    Reason::CardCordoned,
    Reason::CardTypeMismatch,
    Reason::NumaNotFit,
    Reason::CardUuidMismatch,
    Reason::CardTimeSlicingExhausted,
    Reason::ExclusiveDeviceAllocateConflict,
    Reason::ResourceQuotaNotFit,
    Reason::CardInsufficientMemory,
    Reason::CardInsufficientCore,
    Reason::CardComputeUnitsExhausted,
    Reason::NodeInsufficientDevice,
    Reason::AllocatedCardsInsufficientRequest,
    Reason::ModeNotFit,
    Reason::CardMigTopologyInfeasible,
];

/// The reason given for a candidate node that has no device inventory.
pub const NODE_UNREGISTERED: &str = "node unregistered";

impl Reason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::CardNotHealth => "CardNotHealth",
            Reason::CardCordoned => "CardCordoned",
            Reason::CardTypeMismatch => "CardTypeMismatch",
            Reason::NumaNotFit => "NumaNotFit",
            Reason::CardUuidMismatch => "CardUuidMismatch",
            Reason::CardTimeSlicingExhausted => "CardTimeSlicingExhausted",
            Reason::ExclusiveDeviceAllocateConflict => "ExclusiveDeviceAllocateConflict",
            Reason::ResourceQuotaNotFit => "ResourceQuotaNotFit",
            Reason::CardInsufficientMemory => "CardInsufficientMemory",
            Reason::CardInsufficientCore => "CardInsufficientCore",
            Reason::CardComputeUnitsExhausted => "CardComputeUnitsExhausted",
            Reason::NodeInsufficientDevice => "NodeInsufficientDevice",
            Reason::AllocatedCardsInsufficientRequest => "AllocatedCardsInsufficientRequest",
            Reason::ModeNotFit => "ModeNotFit",
            Reason::CardMigTopologyInfeasible => "CardMigTopologyInfeasible",
        }
    }
}

/// Counts of reasons over the devices of one node for one container, summarised as HAMi does:
/// `"<count>/<devices> <Reason>"` entries, sorted as strings and joined with `", "`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReasonCounts {
    counts: [u32; ALL_REASONS.len()],
}

impl ReasonCounts {
    pub fn add(&mut self, reason: Reason, n: u32) {
        self.counts[reason as usize] += n;
    }

    pub fn get(&self, reason: Reason) -> u32 {
        self.counts[reason as usize]
    }

    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&c| c == 0)
    }

    /// The reasons present, most frequent first (ties by name), for metrics and events.
    pub fn reasons(&self) -> Vec<(Reason, u32)> {
        let mut out: Vec<(Reason, u32)> = ALL_REASONS
            .iter()
            .filter(|r| self.get(**r) > 0)
            .map(|r| (*r, self.get(*r)))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.as_str().cmp(b.0.as_str())));
        out
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &ReasonCounts) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
    }

    pub fn summary(&self, devices: usize) -> String {
        let mut present = ALL_REASONS.iter().filter(|r| self.get(**r) > 0);
        if let (Some(only), None) = (present.next(), present.next()) {
            // The common case (every device short of the same thing): one allocation.
            return format!("{}/{} {}", self.get(*only), devices, only.as_str());
        }
        let mut parts: Vec<String> = ALL_REASONS
            .iter()
            .filter(|r| self.get(**r) > 0)
            .map(|r| format!("{}/{} {}", self.get(*r), devices, r.as_str()))
            .collect();
        parts.sort();
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_hami_format() {
        let mut c = ReasonCounts::default();
        c.add(Reason::CardTimeSlicingExhausted, 3);
        c.add(Reason::CardInsufficientMemory, 1);
        assert_eq!(c.summary(4), "1/4 CardInsufficientMemory, 3/4 CardTimeSlicingExhausted");
        let mut one = ReasonCounts::default();
        one.add(Reason::CardInsufficientMemory, 8);
        assert_eq!(one.summary(8), "8/8 CardInsufficientMemory");
        one.merge(&c);
        assert_eq!(
            one.summary(12),
            "3/12 CardTimeSlicingExhausted, 9/12 CardInsufficientMemory"
        );
    }

    #[test]
    fn reason_strings_are_stable() {
        for r in ALL_REASONS {
            assert_eq!(format!("{r:?}"), r.as_str());
        }
    }
}
