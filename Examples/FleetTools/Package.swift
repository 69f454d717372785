// swift-tools-version: 6.2
import PackageDescription

// A package outside micro-runner that depends on it as a user's would, and builds with its public API only:
// three programs from the library's Getting Started (DocC). Its runners come from micro-runner's command plugin:
//   swift build
//   swift package --allow-writing-to-package-directory build-runners
//   .build/debug/fleet-uptime local
// scripts/test builds it, checks that nothing of it links libsodium, and runs it (ExamplePackageTests).
let package = Package(
    name: "fleet-tools",
    dependencies: [
        // By path here; elsewhere: .package(url: "https://…/micro-runner", from: "…").
        .package(name: "micro-runner", path: "../..")
    ],
    targets: [
        // What the three programs share: reading their few options, the runners, the hosts.
        .target(
            name: "ExampleSupport",
            dependencies: [.product(name: "MicroRunnerClient", package: "micro-runner")]
        ),
        .executableTarget(
            name: "fleet-uptime",
            dependencies: ["ExampleSupport", .product(name: "MicroRunnerClient", package: "micro-runner")]
        ),
        .executableTarget(
            name: "deploy-if-changed",
            dependencies: ["ExampleSupport", .product(name: "MicroRunnerClient", package: "micro-runner")]
        ),
        .executableTarget(
            name: "stream-command",
            dependencies: ["ExampleSupport", .product(name: "MicroRunnerClient", package: "micro-runner")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
