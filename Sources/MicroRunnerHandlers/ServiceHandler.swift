import MicroRunnerProtocol
import MicroRunnerSystem

/// `service.reload`: reload, restart, start, stop, enable or disable a systemd unit.
///
/// The unit's state is read first (`systemctl show`), so `start` on a running unit answers `already_started`
/// with `changed` false, and so on. `reload` of a unit that is not running starts it (as Ansible's
/// `state: reloaded` does). A unit systemd does not know is `NOT_FOUND`. Served only where systemd is the
/// init system (READY's capability is false elsewhere).
package final class ServiceHandler: CommandHandler {
    package var type: CommandType { .serviceReload }

    package init() {}

    package func isAvailable(on host: Host) -> Bool {
        host.effectiveUID == 0 && host.which("systemctl") != nil && FileSystem.status("/run/systemd/system") != nil
    }

    /// Unit names: letters, digits, `: _ . @ -` and `\` escapes, not starting with `-`.
    static func validUnit(_ s: String) -> Bool {
        guard let f = s.utf8.first, f != 0x2D, s.utf8.count <= 256 else { return false }
        return ByteSet.unitName.containsAll(s.utf8)
    }

    struct UnitState {
        var load: String
        var active: String
        var sub: String
        var fileState: String

        var running: Bool { active == "active" || active == "reloading" || active == "activating" }
        var enabled: Bool { fileState == "enabled" || fileState == "enabled-runtime" || fileState == "alias" }
    }

    func state(
        _ unit: String,
        _ run: (String, [String]) throws(RunnerError) -> ProcessOutcome
    ) throws(RunnerError) -> UnitState {
        let out = try run("systemctl", ["show", "-p", "LoadState,ActiveState,SubState,UnitFileState", "--", unit])
        var s = UnitState(load: "", active: "", sub: "", fileState: "")
        for line in ASCII.lines(out.stdout) {
            guard let eq = line.firstIndex(of: 0x3D) else { continue }
            let key = ASCII.string(line[line.startIndex..<eq])
            let value = ASCII.string(ASCII.trim(line[(eq + 1)...]))
            switch key {
            case "LoadState": s.load = value
            case "ActiveState": s.active = value
            case "SubState": s.sub = value
            case "UnitFileState": s.fileState = value
            default: break
            }
        }
        return s
    }

    package func run(_ context: CommandContext) throws(RunnerError) -> JSONValue {
        let p = try context.params(ServiceReloadParams.self)
        guard Self.validUnit(p.name) else { throw .invalid("service.reload: \"\(p.name)\" is not a unit name") }
        guard ServiceAction.all.contains(p.action) else {
            let verbs = ServiceAction.all.map { $0.rawValue }.joined(separator: ", ")
            throw .invalid("service.reload: action must be one of \(verbs), not \"\(p.action)\"")
        }
        let run: (String, [String]) throws(RunnerError) -> ProcessOutcome = { tool, args throws(RunnerError) in
            try context.runTool(tool, args)
        }
        let before = try state(p.name, run)
        guard before.load == "loaded" else {
            throw RunnerError(
                .notFound,
                "service.reload: unit \(p.name) is \(before.load.isEmpty ? "unknown" : before.load) to systemd"
            )
        }
        var verb: String?
        var action: String
        switch p.action {
        case .start: (verb, action) = before.running ? (nil, "already_started") : ("start", "started")
        case .stop: (verb, action) = before.running ? ("stop", "stopped") : (nil, "already_stopped")
        case .restart: (verb, action) = ("restart", "restarted")
        case .reload: (verb, action) = before.running ? ("reload", "reloaded") : ("start", "started")
        case .enable: (verb, action) = before.enabled ? (nil, "already_enabled") : ("enable", "enabled")
        default: (verb, action) = before.enabled ? ("disable", "disabled") : (nil, "already_disabled")
        }
        var after = before
        if let verb, !context.command.dryRun {
            let out = try run("systemctl", [verb, "--", p.name])
            guard out.exitCode == 0 else {
                let tail = out.tail(10)
                throw RunnerError(
                    .execFailed,
                    "service.reload: systemctl \(verb) \(p.name) failed (exit \(out.exitCode)): \(tail)",
                    details: ["stderr_tail": tail]
                )
            }
            after = try state(p.name, run)
        }
        return encodeResult(
            ServiceReloadResult(
                changed: verb != nil,
                action: action,
                status: after.active,
                enabled: after.enabled,
                subState: after.sub
            )
        )
    }
}
