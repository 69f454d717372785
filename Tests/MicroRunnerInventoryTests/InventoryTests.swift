import Foundation
import MicroRunnerClient
import MicroRunnerInventory
import Testing

/// A real-world-shaped INI inventory: groups of groups, ranges, vars at every level, a host in two groups.
let iniInventory = """
    # production
    bastion.example.com ansible_port=2222

    [web]
    web[01:03].example.com
    web-canary.example.com ansible_user=canary ansible_become=yes ansible_become_password='s3cret pw'

    [db]
    db-[a:b].example.com ansible_host=10.0.0.9
    web01.example.com   ; a web host that is also a db replica

    [eu:children]
    web
    db

    [web:vars]
    ansible_user=www
    http_port=8080

    [eu:vars]
    ansible_user=eu-admin
    ansible_ssh_private_key_file=/keys/eu
    region=eu-west

    [all:vars]
    ansible_port=22
    region=global

    [local]
    control ansible_connection=local
    """

/// The same shape in YAML.
let yamlInventory = """
    all:
      vars:
        ansible_port: 22
        region: global
      hosts:
        bastion.example.com:
          ansible_port: 2222
      children:
        eu:
          vars:
            ansible_user: eu-admin
            ansible_ssh_private_key_file: /keys/eu
            region: eu-west
          children:
            web:
              vars:
                ansible_user: www
                http_port: 8080
              hosts:
                web[01:03].example.com:
                web-canary.example.com:
                  ansible_user: canary
                  ansible_become: true
                  ansible_become_password: s3cret pw
            db:
              hosts:
                db-[a:b].example.com:
                  ansible_host: 10.0.0.9
                web01.example.com:
        local:
          hosts:
            control:
              ansible_connection: local
    """

@Suite struct InventoryTests {
    static func both() throws -> [Inventory] {
        [
            try Inventory(
                ini: iniInventory.replacingOccurrences(of: "   ; a web host that is also a db replica", with: "")
            ),
            try Inventory(yaml: yamlInventory),
        ]
    }

    @Test func rangesGroupsAndChildrenResolveTheSameFromINIAndYAML() throws {
        for inv in try Self.both() {
            #expect(
                try inv.select("web") == [
                    "web01.example.com", "web02.example.com", "web03.example.com", "web-canary.example.com",
                ]
            )
            #expect(try inv.select("db") == ["web01.example.com", "db-a.example.com", "db-b.example.com"])
            #expect(try inv.select("eu").count == 6)
            #expect(try inv.select("all").count == 8)
        }
    }

    @Test(arguments: [
        ("web:db", 6),  // union
        ("web,db", 6),
        ("web:&db", 1),  // intersection: web01 is in both
        ("eu:!db", 3),  // exclusion
        ("web*:!web-canary.example.com", 3),  // glob over host names
        ("e*", 6),  // glob over group names
        ("all:!eu", 2),
    ])
    func patterns(_ pattern: String, _ count: Int) throws {
        for inv in try Self.both() { #expect(try inv.select(pattern).count == count, "\(pattern)") }
    }

    /// Regular expressions, positions and character classes, as Ansible resolves them (`re.match` from the
    /// start of a name; positions with both ends included; fnmatch classes), with the exact hosts in order.
    @Test(arguments: [
        ("~web0[12]", ["web01.example.com", "web02.example.com"]),
        (
            "~(db|web)$",
            [  // group names match: their hosts, in inventory order
                "web01.example.com", "web02.example.com", "web03.example.com", "web-canary.example.com",
                "db-a.example.com", "db-b.example.com",
            ]
        ),
        ("web[0]", ["web01.example.com"]),
        ("web[-1]", ["web-canary.example.com"]),
        ("web[1:]", ["web02.example.com", "web03.example.com", "web-canary.example.com"]),
        ("web[0:1]", ["web01.example.com", "web02.example.com"]),
        ("web0[13].example.com", ["web01.example.com", "web03.example.com"]),
        ("web0[!1]*", ["web02.example.com", "web03.example.com"]),
        ("db-[a-z].example.com", ["db-a.example.com", "db-b.example.com"]),
        ("web[0],db[-1]", ["web01.example.com", "db-b.example.com"]),
    ])
    func regexPositionsAndClasses(_ pattern: String, _ hosts: [String]) throws {
        for inv in try Self.both() { #expect(try inv.select(pattern) == hosts, "\(pattern)") }
    }

    @Test(arguments: ["web[9]", "web[5:]", "~web(", "web0[9]*"])
    func badPositionsAndExpressionsAreErrors(_ pattern: String) throws {
        for inv in try Self.both() {
            #expect(throws: Inventory.ParseError.self, "\(pattern)") { try inv.select(pattern) }
        }
    }

    /// `--limit @FILE`: Ansible's retry files, one pattern per line.
    @Test func aLimitFileListsPatterns() throws {
        let file = NSTemporaryDirectory() + "mr-limit-\(UUID().uuidString).retry"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try "web02.example.com\ndb-b.example.com\n".write(toFile: file, atomically: true, encoding: .utf8)
        for inv in try Self.both() {
            #expect(try inv.select("@\(file)") == ["web02.example.com", "db-b.example.com"])
            #expect(throws: Inventory.ParseError.self) { try inv.select("@\(file).missing") }
        }
    }

    @Test func aPatternTermThatMatchesNothingIsAnError() throws {
        for inv in try Self.both() {
            #expect(throws: Inventory.ParseError.self) { try inv.select("web:typo") }
        }
    }

    @Test func variablePrecedenceHostOverChildGroupOverParentOverAll() throws {
        for inv in try Self.both() {
            let web02 = try inv.target("web02.example.com")
            #expect(web02.spec.user == "www")  // web (child) over eu (parent)
            #expect(web02.spec.port == 22)  // from all
            #expect(web02.identityFile == "/keys/eu")  // from eu
            #expect(web02.variables["region"] == "eu-west")  // eu over all
            #expect(web02.variables["http_port"] == "8080")  // unknown variables kept
            #expect(web02.become == false)
            let canary = try inv.target("web-canary.example.com")
            #expect(canary.spec.user == "canary")  // host over groups
            #expect(canary.become)
            #expect(canary.becomePassword == "s3cret pw")
            let db = try inv.target("db-a.example.com")
            #expect(db.spec.host == "10.0.0.9")
            #expect(db.spec.user == "eu-admin")
            let bastion = try inv.target("bastion.example.com")
            #expect(bastion.spec.port == 2222)
            #expect(bastion.variables["region"] == "global")
            #expect(try inv.target("control").isLocal)
        }
    }

    /// Scope decides, not spelling: a host's `ansible_ssh_user` wins over its group's `ansible_user` (mrctl
    /// connected as the group's user), and so for host and port; `-e` wins over both.
    @Test func aliasesTakeTheirScopesPrecedence() throws {
        let inv = try Inventory(
            ini: """
                [web]
                w1 ansible_ssh_user=hostuser ansible_ssh_host=10.0.0.9 ansible_ssh_port=2201 ansible_sudo=yes
                w2

                [web:vars]
                ansible_user=groupuser
                ansible_host=10.0.0.1
                ansible_port=22
                ansible_become=no
                """
        )
        let w1 = try inv.target("w1")
        #expect(w1.spec.user == "hostuser" && w1.spec.host == "10.0.0.9" && w1.spec.port == 2201)
        #expect(w1.become && w1.becomeDeclared)
        let w2 = try inv.target("w2")
        #expect(w2.spec.user == "groupuser" && w2.spec.port == 22 && !w2.become)
        let extra = try inv.target(
            "w1",
            extraVariables: ["ansible_ssh_user": "extrauser", "ansible_become_user": "db"]
        )
        #expect(extra.spec.user == "extrauser" && extra.becomeUser == "db")
    }

    @Test func aMalformedLineNamesTheFileAndLine() {
        do {
            _ = try Inventory(ini: "[web]\nweb1 ansible_port\n", file: "hosts.ini")
            Issue.record("parsed a host line with a bare word")
        } catch let error as Inventory.ParseError {
            #expect(error.description.hasPrefix("hosts.ini:2:"))
        } catch {
            Issue.record("unexpected \(error)")
        }
        do {
            _ = try Inventory(yaml: "all:\n  hosts:\n    - a\n    - b\n", file: "hosts.yml")
            Issue.record("parsed a list of hosts")
        } catch let error as Inventory.ParseError {
            #expect(error.description.hasPrefix("hosts.yml:"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func rangesKeepLeadingZerosAndStride() throws {
        #expect(try Inventory.expandRange("n[08:10]") == ["n08", "n09", "n10"])
        #expect(try Inventory.expandRange("n[1:7:3]") == ["n1", "n4", "n7"])
        #expect(try Inventory.expandRange("r[a:b]-[1:2]") == ["ra-1", "ra-2", "rb-1", "rb-2"])
    }

    @Test func mrctlsOneHostPerLineFilesStillRead() throws {
        let inv = try Inventory(ini: "# mine\nweb1\nweb2.example.com\n")
        #expect(try inv.select("all") == ["web1", "web2.example.com"])
    }
}

/// Ansible's container connections (and their collection names) become container hosts.
@Suite struct ContainerConnectionTests {
    @Test func eachConnectionNamesItsRuntimeAndTarget() throws {
        let inventory = try Inventory(
            ini: """
                web ansible_connection=community.docker.docker ansible_user=app
                db ansible_connection=containers.podman.podman ansible_host=db-1
                build ansible_connection=machinectl
                hostns ansible_connection=community.general.nsenter
                ctr ansible_connection=nsenter ansible_nsenter_pid=4242
                api ansible_connection=kubernetes.core.kubectl ansible_kubectl_namespace=prod ansible_kubectl_container=app
                solo ansible_connection=kubectl ansible_kubectl_pod=api-7f9c
                """
        )
        let specs = Dictionary(uniqueKeysWithValues: try inventory.targets().map { ($0.name, $0.spec) })
        #expect(specs["web"] == HostSpec(user: "app", host: "web", container: .docker))
        #expect(specs["db"] == HostSpec(host: "db-1", container: .podman))
        #expect(specs["build"] == HostSpec(host: "build", container: .nspawn))
        #expect(specs["hostns"] == HostSpec(host: "1", container: .nsenter), "Ansible's default: PID 1")
        #expect(specs["ctr"] == HostSpec(host: "4242", container: .nsenter))
        #expect(specs["api"] == HostSpec(host: "prod/api/app", container: .kubectl))
        #expect(specs["solo"] == HostSpec(host: "api-7f9c", container: .kubectl))
        #expect(try inventory.targets().allSatisfy { !$0.isLocal })
    }

    @Test func anUnknownConnectionIsRefusedByName() {
        #expect(throws: Inventory.ParseError.self) {
            try Inventory(ini: "w ansible_connection=winrm").targets()
        }
    }
}
