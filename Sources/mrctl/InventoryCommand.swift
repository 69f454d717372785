import ArgumentParser
import Foundation
import MicroRunnerClient
import MicroRunnerInventory
import MicroRunnerProtocol

/// `mrctl inventory`: the hosts an inventory and a pattern resolve to, before anything runs.
struct InventoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inventory",
        abstract: "Show the hosts and variables an inventory resolves to (like ansible-inventory)."
    )

    @Option(name: [.short, .customLong("inventory")], help: "An Ansible inventory (INI or YAML) or one host per line.")
    var inventory: String

    @Option(name: [.short, .customLong("limit")], help: "Ansible host pattern (default all).")
    var limit = "all"

    @Flag(help: "The groups as a tree.") var graph = false

    @Flag(help: "Every selected host with where mrctl connects and its variables (JSON; the default).") var list = false

    func run() throws {
        let inv: Inventory
        let targets: [InventoryHost]
        do {
            inv = try Inventory(path: inventory)
            targets = try inv.targets(limit)
        } catch let error as Inventory.ParseError {
            throw ValidationError(error.description)
        }
        if graph {
            print(TerminalText.visible(inv.graph()), terminator: "")
            return
        }
        var hosts: [(key: String, value: JSONValue)] = []
        for t in targets {
            var o = JSONObject()
            o["connect"] = .string(t.isLocal ? "local" : t.spec.description)
            if let key = t.identityFile { o["identity_file"] = .string(key) }
            if t.become { o["become"] = .bool(true) }
            o["vars"] = .object(
                JSONObject(
                    t.variables.sorted { $0.key < $1.key }.map { ($0.key, .string(Self.redact($0.key, $0.value))) }
                )
            )
            hosts.append((t.name, .object(o)))
        }
        print(String(decoding: JSONWriter.serialize(.object(JSONObject(hosts))), as: UTF8.self))
    }

    /// Passwords are never printed.
    static func redact(_ key: String, _ value: String) -> String {
        key.contains("pass") ? "(redacted)" : value
    }
}
