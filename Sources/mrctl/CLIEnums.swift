import ArgumentParser
import MicroRunnerProtocol

/// The typed edges of the CLI: a bad value fails here, with the list of valid ones, before any host is
/// contacted, and shell completion knows the values. The values are the protocol's own wire names (shared with
/// the runner's handlers and the client), so the CLI has no second copy of any vocabulary.
protocol CLIWireName: WireName, ExpressibleByArgument {
    /// What the CLI accepts.
    static var cliValues: [Self] { get }
}

extension CLIWireName {
    public init?(argument: String) {
        guard let value = Self.cliValues.first(where: { $0.rawValue == argument }) else { return nil }
        self = value
    }

    public static var allValueStrings: [String] { cliValues.map(\.rawValue) }

    public var defaultValueDescription: String { rawValue }
}

/// `pkg --state`.
extension PackageState: CLIWireName {
    static var cliValues: [Self] { all }
}

/// `pkg --manager`; `auto` lets the runner detect it.
extension PackageManager: CLIWireName {
    static var cliValues: [Self] { ["auto"] + all }

    /// The wire value (empty: detect on the host).
    var wire: Self { rawValue == "auto" ? "" : self }
}

/// `service ACTION`.
extension ServiceAction: CLIWireName {
    static var cliValues: [Self] { all }
}

/// `sudoers --state`.
extension RuleState: CLIWireName {
    static var cliValues: [Self] { [.present, .absent] }
}
