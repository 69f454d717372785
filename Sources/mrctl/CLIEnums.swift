import ArgumentParser

/// The typed edges of the CLI: a bad value fails here, with the list of valid ones, before any host is
/// contacted, and shell completion knows the values.

/// `pkg --state`.
enum PackageState: String, CaseIterable, ExpressibleByArgument {
    case present, absent, latest
}

/// `pkg --manager`; `auto` lets the runner detect it.
enum PackageManager: String, CaseIterable, ExpressibleByArgument {
    case auto, apt, dnf, yum, zypper

    /// The wire value (empty: detect on the host).
    var wire: String { self == .auto ? "" : rawValue }
}

/// `service ACTION`.
enum ServiceAction: String, CaseIterable, ExpressibleByArgument {
    case reload, restart, start, stop, enable, disable
}

/// `sudoers --state`.
enum RuleState: String, CaseIterable, ExpressibleByArgument {
    case present, absent
}
